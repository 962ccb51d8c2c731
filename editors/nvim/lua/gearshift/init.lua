--- Gearshift for Neovim: the LSP client config, ghost text, commands and a statusline component.
---
--- Neovim 0.11+ (`vim.lsp.config` / `vim.lsp.enable`). Ghost text comes from Neovim's own
--- Gearshift's extmark renderer by default (0.11 and 0.12), or from Neovim's own
--- `vim.lsp.inline_completion` on 0.12+ when `renderer = "builtin"` is asked for. See `:help gearshift`.

local M = {}

M.name = 'gearshift'

--- Filetypes the server has a parser for; anything else still completes as plain text.
M.default_filetypes = {
  'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact',
  'go', 'rust', 'c', 'cpp', 'java', 'lua', 'sh',
}

M.defaults = {
  --- Server command (list). nil: `<cwd>/.venv/bin/gearshift serve` if executable, else `gearshift serve`.
  cmd = nil,
  --- Server settings (camelCase form of lsp_server/settings.py), sent as init_options and settings.
  settings = {},
  --- "auto" or "extmark": Gearshift's extmark renderer, on every Neovim. "builtin": Neovim 0.12's
  --- vim.lsp.inline_completion, which redraws an old item at a new cursor and accepts it until the next
  --- reply (typing through ghost text then Tab duplicated text), so it is opt-in.
  renderer = 'auto',
  --- Debounce for the extmark renderer, in milliseconds.
  debounce_ms = 150,
  filetypes = M.default_filetypes,
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml' },
  --- Where :GearshiftExplain / :GearshiftEscalate answers go: "split" or "float".
  answer = 'split',
  --- Insert-mode keys; set one to false to leave it unmapped.
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-w>',
    accept_line = '<M-l>',
    next = '<M-]>',
    prev = '<M-[>',
    dismiss = '<C-]>',
  },
}

M.config = vim.deepcopy(M.defaults)

--- The latest `gearshift/status` notification, or nil before the first one.
M.last_status = nil

local function warn(msg, level)
  vim.notify('Gearshift: ' .. msg, level or vim.log.levels.WARN)
end

--- The server command: opts.cmd, else the project's venv, else `gearshift` on PATH.
function M.resolve_cmd(cmd)
  if type(cmd) == 'string' then
    return vim.split(cmd, ' ', { trimempty = true })
  elseif type(cmd) == 'table' or type(cmd) == 'function' then
    return cmd
  end
  local venv = vim.fs.joinpath(vim.fn.getcwd(), '.venv', 'bin', 'gearshift')
  if vim.fn.executable(venv) == 1 then
    return { venv, 'serve' }
  end
  return { 'gearshift', 'serve' }
end

--- "builtin" or "extmark", from the configured renderer and this Neovim.
function M.renderer()
  local wanted = M.config.renderer
  local has_builtin = vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
  if wanted == 'builtin' and has_builtin then
    return 'builtin'
  end
  return 'extmark'
end

--- Handler for the server's `gearshift/status` notification.
function M.on_status(_, params, ctx)
  if type(params) ~= 'table' then
    return
  end
  M.last_status = vim.tbl_extend('force', params, { client_id = ctx and ctx.client_id })
  if params.state == 'error' and params.message then
    warn(params.message, vim.log.levels.ERROR)
  end
  vim.schedule(function()
    pcall(vim.api.nvim_exec_autocmds, 'User', { pattern = 'GearshiftStatus', modeline = false })
    pcall(vim.cmd.redrawstatus)
  end)
end

--- Statusline component from the latest `gearshift/status`, e.g. "⚡ qwen2.5-coder-0.5b 21 tok/s".
function M.statusline()
  local s = M.last_status
  if not s then
    return ''
  end
  local tier = s.tier or 'gearshift'
  if s.state == 'loading' then
    return ('⚡ %s loading…'):format(tier)
  elseif s.state == 'error' then
    return ('⚡ %s error'):format(tier)
  end
  local parts = { '⚡', tier }
  if type(s.tokensPerSecond) == 'number' then
    table.insert(parts, ('%d tok/s'):format(math.floor(s.tokensPerSecond + 0.5)))
  end
  if s.cacheHit then
    table.insert(parts, '(cached)')
  end
  return table.concat(parts, ' ')
end

--- The Gearshift client attached to {bufnr} (default: current buffer).
function M.get_client(bufnr)
  return vim.lsp.get_clients({ name = M.name, bufnr = bufnr or vim.api.nvim_get_current_buf() })[1]
end

local function set_keymaps(bufnr)
  local keys = M.config.keymaps or {}
  local ghost = require('gearshift.ghost')
  local builtin = M.renderer() == 'builtin'
  local function map(lhs, fn, desc, fallback)
    if not lhs then
      return
    end
    vim.keymap.set('i', lhs, function()
      if fn() then
        return ''
      end
      return fallback and vim.keycode(lhs) or ''
    end, { buffer = bufnr, expr = true, replace_keycodes = false, desc = 'Gearshift: ' .. desc })
  end
  if builtin then
    local ic = vim.lsp.inline_completion
    map(keys.accept, function() return ic.get() end, 'accept suggestion', true)
    map(keys.accept_word, function() return ghost.builtin_accept_part('word') end, 'accept next word', true)
    map(keys.accept_line, function() return ghost.builtin_accept_part('line') end, 'accept line', true)
    map(keys.next, function() ic.select({ count = 1 }) return true end, 'next suggestion')
    map(keys.prev, function() ic.select({ count = -1 }) return true end, 'previous suggestion')
    map(keys.dismiss, function() return ghost.builtin_dismiss() end, 'dismiss', true)
  else
    map(keys.accept, function() return ghost.accept('all') end, 'accept suggestion', true)
    map(keys.accept_word, function() return ghost.accept('word') end, 'accept next word', true)
    map(keys.accept_line, function() return ghost.accept('line') end, 'accept line', true)
    map(keys.next, function() return ghost.request_now() end, 'request a suggestion now')
    map(keys.dismiss, function() return ghost.dismiss() end, 'dismiss', true)
  end
end

local function on_attach(client, bufnr)
  if M.renderer() == 'builtin' then
    -- Per buffer: the filter takes `bufnr` or `client_id`, not both (0.12).
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  else
    require('gearshift.ghost').attach(bufnr, client.id)
  end
  set_keymaps(bufnr)
end

--- Ghost text must not look like code in any terminal: a grey italic with both GUI and
--- cterm colours (linking to Comment gave guifg only under some colour schemes, so a
--- 256-colour terminal drew the ghost in the syntax colour of the word before it).
--- `default = true`: a user's own GearshiftGhost wins.
function M.define_highlights()
  vim.api.nvim_set_hl(0, 'GearshiftGhost', {
    fg = '#808080', ctermfg = 244, italic = true, cterm = { italic = true }, default = true,
  })
end

--- `:help gearshift` without a plugin manager: generate doc/tags when it is missing (E149 otherwise).
function M.ensure_helptags()
  local help = vim.api.nvim_get_runtime_file('doc/gearshift.txt', false)[1]
  local doc = help and vim.fs.dirname(help)
  if doc and vim.fn.filereadable(vim.fs.joinpath(doc, 'tags')) == 0 and vim.fn.filewritable(doc) == 2 then
    pcall(vim.cmd.helptags, vim.fn.fnameescape(doc))
  end
end

--- Configure and enable the `gearshift` LSP client.
---@param opts? table see |gearshift-setup|
function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  if opts and opts.keymaps == false then
    M.config.keymaps = {}
  end
  if opts and opts.filetypes == false then
    M.config.filetypes = nil -- every filetype
  end
  if vim.fn.has('nvim-0.11') ~= 1 or not vim.lsp.config then
    warn('needs Neovim 0.11 or newer (vim.lsp.config)', vim.log.levels.ERROR)
    return
  end
  M.define_highlights()
  M.ensure_helptags()
  vim.api.nvim_create_autocmd('ColorScheme', {
    group = vim.api.nvim_create_augroup('gearshift_highlights', { clear = true }),
    callback = M.define_highlights,
  })
  local settings = M.config.settings or {}
  vim.lsp.config(M.name, {
    cmd = M.resolve_cmd(M.config.cmd),
    filetypes = M.config.filetypes,
    root_markers = M.config.root_markers,
    init_options = settings,
    -- Sent with workspace/didChangeConfiguration; the server accepts the {gearshift = ...} wrapper.
    settings = { gearshift = settings },
    handlers = { ['gearshift/status'] = M.on_status },
    on_attach = on_attach,
  })
  vim.lsp.enable(M.name)
end

-- Commands --------------------------------------------------------------------

--- LSP `{uri, range}` for lines {line1}..{line2} (1-based, inclusive) of {bufnr}.
--- When {charwise} holds `'<`/`'>` positions, the range follows them instead of whole lines.
function M.selection(bufnr, line1, line2, encoding, charwise)
  encoding = encoding or 'utf-16'
  local function pos(row, byte_col)
    local text = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
    byte_col = math.min(byte_col, #text)
    return { line = row, character = vim.str_utfindex(text, encoding, byte_col, false) }
  end
  local start, finish
  if charwise then
    local s, e = charwise[1], charwise[2] -- {row 1-based, col 0-based byte}
    local last = vim.api.nvim_buf_get_lines(bufnr, e[1] - 1, e[1], false)[1] or ''
    -- '> points at the last selected byte; include the whole character.
    local e_col = e[2] < #last and (vim.str_utf_end(last, e[2] + 1) + e[2] + 1) or #last
    start, finish = pos(s[1] - 1, s[2]), pos(e[1] - 1, e_col)
  else
    local last = vim.api.nvim_buf_get_lines(bufnr, line2 - 1, line2, false)[1] or ''
    start, finish = pos(line1 - 1, 0), pos(line2 - 1, #last)
  end
  return { uri = vim.uri_from_bufnr(bufnr), range = { start = start, ['end'] = finish } }
end

local function command_selection(cmd_opts, client)
  local bufnr = vim.api.nvim_get_current_buf()
  local line1, line2 = cmd_opts.line1, cmd_opts.line2
  local charwise
  if cmd_opts.range and cmd_opts.range > 0 and vim.fn.visualmode() == 'v' then
    local s, e = vim.api.nvim_buf_get_mark(bufnr, '<'), vim.api.nvim_buf_get_mark(bufnr, '>')
    if s[1] == line1 and e[1] == line2 then
      charwise = { s, e }
    end
  end
  return M.selection(bufnr, line1, line2, client.offset_encoding, charwise)
end

--- Show an explain/escalate/review answer (`{title, markdown, source, model}`).
function M.show_answer(result)
  local text = result.markdown or result.answer or vim.inspect(result)
  local lines = vim.split(text, '\n', { plain = true })
  local title = result.title or 'Gearshift'
  table.insert(lines, 1, '# ' .. title)
  table.insert(lines, 2, '')

  local name = 'gearshift://answer'
  local bufnr = vim.fn.bufnr(name)
  if bufnr == -1 then
    bufnr = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(bufnr, name)
    vim.bo[bufnr].bufhidden = 'hide'
    vim.bo[bufnr].filetype = 'markdown'
  end
  vim.bo[bufnr].modifiable = true
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.bo[bufnr].modifiable = false

  local win = vim.fn.bufwinid(bufnr)
  if win == -1 then
    if M.config.answer == 'float' then
      local width = math.min(100, math.floor(vim.o.columns * 0.8))
      local height = math.min(#lines + 1, math.floor(vim.o.lines * 0.7))
      win = vim.api.nvim_open_win(bufnr, false, {
        relative = 'editor', width = width, height = height, style = 'minimal', border = 'rounded',
        row = math.floor((vim.o.lines - height) / 2), col = math.floor((vim.o.columns - width) / 2),
        title = ' ' .. title .. ' ',
      })
      vim.keymap.set('n', 'q', '<Cmd>close<CR>', { buffer = bufnr, nowait = true })
    else
      win = vim.api.nvim_open_win(bufnr, false, { split = 'below', win = 0 })
    end
    vim.wo[win].wrap = true
    vim.wo[win].conceallevel = 2
  end
  return bufnr, win
end

--- `workspace/executeCommand` {command} with {arguments}; {on_result} gets the result.
function M.execute(command, arguments, on_result, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = M.get_client(bufnr) or vim.lsp.get_clients({ name = M.name })[1]
  if not client then
    warn('no gearshift client is running (see :checkhealth gearshift)')
    return false
  end
  local ok = client:request('workspace/executeCommand', { command = command, arguments = arguments },
    function(err, result)
      if err then
        warn(('%s failed: %s'):format(command, err.message or vim.inspect(err)), vim.log.levels.ERROR)
        return
      end
      if on_result then
        on_result(result)
      end
    end, bufnr)
  return ok
end

function M.explain(cmd_opts)
  local client = M.get_client()
  if not client then
    return warn('no gearshift client attached to this buffer (see :checkhealth gearshift)')
  end
  vim.notify('Gearshift: explaining…', vim.log.levels.INFO)
  M.execute('gearshift.explain', { command_selection(cmd_opts, client) }, M.show_answer)
end

function M.refactor(cmd_opts)
  local client = M.get_client()
  if not client then
    return warn('no gearshift client attached to this buffer (see :checkhealth gearshift)')
  end
  local arg = command_selection(cmd_opts, client)
  if cmd_opts.args and cmd_opts.args ~= '' then
    arg.instruction = cmd_opts.args
  end
  vim.notify('Gearshift: refactoring…', vim.log.levels.INFO)
  M.execute('gearshift.refactor', { arg }, function(result)
    local level = result and result.applied and vim.log.levels.INFO or vim.log.levels.WARN
    vim.notify('Gearshift: ' .. ((result and result.message) or 'no answer'), level)
  end)
end

function M.escalate(cmd_opts)
  local args = {}
  local client = M.get_client()
  if cmd_opts.range and cmd_opts.range > 0 and client then
    local arg = command_selection(cmd_opts, client)
    arg.task = cmd_opts.args ~= '' and cmd_opts.args or 'explain'
    args = { arg }
  end
  vim.notify('Gearshift: asking the cloud…', vim.log.levels.INFO)
  M.execute('gearshift.escalate', args, M.show_answer)
end

function M.status()
  M.execute('gearshift.status', {}, function(result)
    M.show_answer({
      title = 'Gearshift status',
      markdown = '```lua\n' .. vim.inspect(result) .. '\n```',
      source = 'local',
      model = result and result.tier,
    })
  end)
end

return M
