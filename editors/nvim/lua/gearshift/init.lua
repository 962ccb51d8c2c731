--- Gearshift for Neovim: the LSP client config, ghost text, commands and a statusline component.
---
--- Neovim 0.11+ (`vim.lsp.config` / `vim.lsp.enable`). Ghost text comes from Neovim's own
--- Gearshift's extmark renderer by default (0.11 and 0.12), or from Neovim's own
--- `vim.lsp.inline_completion` on 0.12+ when `renderer = "builtin"` is asked for. See `:help gearshift`.

local M = {}

M.name = 'gearshift'

--- Filetypes the plugin attaches to by default: those the server has a parser for (generated from the
--- server's language registry). Any other filetype (markdown, text, ...) is not served unless added to
--- `filetypes`; then it completes with the plain template. Status and :checkhealth say when the current
--- buffer is not served.
M.default_filetypes = require('gearshift.languages').filetypes

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
  --- Server log file, passed as `--log-file` to a command list that has none. The server logs INFO
  --- lines; on stderr Neovim records every one of them as [ERROR] in :LspLog. false: keep stderr.
  --- nil: stdpath('log')/gearshift.log.
  log_file = nil,
  --- Tell the server where the cursor rests (gearshift/cursor), so the prompt there is evaluated
  --- before the first keystroke. false: never.
  cursor_hints = true,
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

--- The speed of the last suggestion the model generated: `{tok_s, ttft_ms, tier}`, or nil before one.
--- Accepts, cache hits and suggestions filtered before any token carry no speed and do not replace it.
M.last_speed = nil

--- Counted from the status notifications: suggestions generated, served from the typed-ahead cache,
--- and hidden (filtered) by the server.
M.counts = { generated = 0, cache_hits = 0, hidden = 0 }

local function warn(msg, level)
  vim.notify('Gearshift: ' .. msg, level or vim.log.levels.WARN)
end

--- A JSON null (vim.NIL) as nil.
local function value(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

--- A progress message on the command line, not kept in :messages; `progress(nil)` clears it.
local progress_shown = nil
function M.progress(msg)
  if msg then
    progress_shown = msg
    vim.api.nvim_echo({ { 'Gearshift: ' .. msg } }, false, {})
  elseif progress_shown then
    progress_shown = nil
    vim.api.nvim_echo({ { '' } }, false, {})
  end
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

--- The server's log file, or nil when it logs to stderr (`log_file = false`, or a function `cmd`).
function M.log_file()
  if M.config.log_file == false or type(M.resolve_cmd(M.config.cmd)) ~= 'table' then
    return nil
  end
  return M.config.log_file or vim.fs.joinpath(vim.fn.stdpath('log'), 'gearshift.log')
end

--- {cmd} with `--log-file` added (see `log_file`), unless it names one already.
function M.with_log_file(cmd)
  local file = M.log_file()
  if type(cmd) ~= 'table' or not file or vim.tbl_contains(cmd, '--log-file') then
    return cmd
  end
  local out = vim.list_extend({}, cmd)
  vim.list_extend(out, { '--log-file', file })
  return out
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
  local tok_s, generated = value(params.tokensPerSecond), value(params.generatedTokens)
  if value(params.cacheHit) then
    M.counts.cache_hits = M.counts.cache_hits + 1
  elseif type(tok_s) == 'number' and tok_s > 0 and type(generated) == 'number' and generated > 0 then
    M.counts.generated = M.counts.generated + 1
    M.last_speed = { tok_s = tok_s, ttft_ms = value(params.timeToFirstTokenMs), tier = value(params.tier) }
  end
  if value(params.hidden) and value(params.hidden) ~= 'cancelled' then
    M.counts.hidden = M.counts.hidden + 1
  end
  if params.state == 'error' and params.message then
    warn(params.message, vim.log.levels.ERROR)
  end
  vim.schedule(function()
    pcall(vim.api.nvim_exec_autocmds, 'User', { pattern = 'GearshiftStatus', modeline = false })
    pcall(vim.cmd.redrawstatus)
  end)
end

--- A rung name made short for the statusline: "smollm2-135m/0.125x-context/1-thread" ->
--- "smollm2-135m 1/8ctx 1t" (the model, then what was cut to keep the speed up).
function M.short_tier(name)
  if type(name) ~= 'string' then
    return 'gearshift'
  end
  local parts = vim.split(name, '/', { plain = true })
  local out = { parts[1] }
  local function scale(x, unit)
    local n = tonumber(x)
    if n and n > 0 and n < 1 and math.abs(1 / n - math.floor(1 / n + 0.5)) < 1e-6 then
      return ('1/%d%s'):format(math.floor(1 / n + 0.5), unit)
    end
    return x .. 'x' .. unit
  end
  for i = 2, #parts do
    local tag = parts[i]
    local threads = tag:match('^(%d+)%-thread$')
    local ctx = tag:match('^([%d.]+)x%-context$')
    local tok = tag:match('^([%d.]+)x%-tokens$')
    if threads then
      table.insert(out, threads .. 't')
    elseif ctx then
      table.insert(out, scale(ctx, 'ctx'))
    elseif tok then
      table.insert(out, scale(tok, 'tok'))
    else
      table.insert(out, tag)
    end
  end
  return table.concat(out, ' ')
end

--- Whether Gearshift serves {bufnr}: a gearshift client is attached to it.
function M.served(bufnr)
  return M.get_client(bufnr) ~= nil
end

--- Why {bufnr} is not served, or nil when it is.
function M.not_served_reason(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if M.served(bufnr) then
    return nil
  end
  local ft = vim.bo[bufnr].filetype
  if vim.bo[bufnr].buftype ~= '' then
    return ('not a file buffer (buftype=%s)'):format(vim.bo[bufnr].buftype)
  end
  if M.config.filetypes and not vim.tbl_contains(M.config.filetypes, ft) then
    return ('filetype %q is not in `filetypes`; add it to complete it with the plain template'):format(ft)
  end
  if #vim.lsp.get_clients({ name = M.name }) == 0 then
    return 'no gearshift client is running'
  end
  return 'no gearshift client is attached'
end

--- Statusline component, e.g. "⚡ qwen2.5-coder-0.5b 21 tok/s": the tier and the speed of the last
--- suggestion the model generated (none before the first); "⚡ off" in a buffer Gearshift does not serve.
function M.statusline()
  local s = M.last_status
  if not s and #vim.lsp.get_clients({ name = M.name }) == 0 then
    return ''
  end
  if not M.served(vim.api.nvim_get_current_buf()) then
    return '⚡ off'
  end
  if not s then
    return '⚡ starting…'
  end
  local tier = M.short_tier(value(s.tier))
  if s.state == 'loading' then
    return ('⚡ %s loading…'):format(tier)
  elseif s.state == 'error' then
    return ('⚡ %s error'):format(tier)
  end
  local parts = { '⚡', tier }
  if M.last_speed then
    table.insert(parts, ('%d tok/s'):format(math.floor(M.last_speed.tok_s + 0.5)))
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

--- The built-in renderer, enabled in the current buffer only. Its per-buffer state (0.12-dev) listens
--- to InsertEnter / CursorMovedI in every buffer (the autocommands name no buffer): enabled in a
--- hidden buffer, it asked for that buffer at the current window's cursor and drew into window -1
--- ("Invalid window id: -1" after `:e other.md`). Per buffer: the filter takes `bufnr` or
--- `client_id`, not both.
local function builtin_follow_current(bufnr)
  local ic = vim.lsp.inline_completion
  local group = vim.api.nvim_create_augroup('gearshift.builtin.' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd('BufEnter', {
    group = group, buffer = bufnr,
    callback = function() ic.enable(true, { bufnr = bufnr }) end,
  })
  vim.api.nvim_create_autocmd('BufLeave', {
    group = group, buffer = bufnr,
    callback = function() ic.enable(false, { bufnr = bufnr }) end,
  })
  vim.api.nvim_create_autocmd('LspDetach', {
    group = group, buffer = bufnr,
    callback = function() pcall(vim.api.nvim_del_augroup_by_id, group) end,
  })
  ic.enable(vim.api.nvim_get_current_buf() == bufnr, { bufnr = bufnr })
end

local function on_attach(client, bufnr)
  if M.renderer() == 'builtin' then
    builtin_follow_current(bufnr)
  else
    require('gearshift.ghost').attach(bufnr, client.id)
  end
  if M.config.cursor_hints ~= false then
    require('gearshift.hints').attach(bufnr, client)
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
  -- The file buffer the user was last in: what :checkhealth (which opens its own buffer) reports on.
  vim.api.nvim_create_autocmd('BufEnter', {
    group = vim.api.nvim_create_augroup('gearshift_last_buffer', { clear = true }),
    callback = function(args)
      if vim.bo[args.buf].buftype == '' then
        M.last_file_buffer = args.buf
      end
    end,
  })
  local settings = M.config.settings or {}
  vim.lsp.config(M.name, {
    cmd = M.with_log_file(M.resolve_cmd(M.config.cmd)),
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

--- Byte range {srow, scol, erow, ecol} (0-based, end exclusive) of lines {line1}..{line2} (1-based,
--- inclusive) of {bufnr}, or of the `'<`/`'>` positions in {charwise}.
local function byte_range(bufnr, line1, line2, charwise)
  if charwise then
    local s, e = charwise[1], charwise[2] -- {row 1-based, col 0-based byte}
    local last = vim.api.nvim_buf_get_lines(bufnr, e[1] - 1, e[1], false)[1] or ''
    -- '> points at the last selected byte; include the whole character.
    local e_col = e[2] < #last and (vim.str_utf_end(last, e[2] + 1) + e[2] + 1) or #last
    local first = vim.api.nvim_buf_get_lines(bufnr, s[1] - 1, s[1], false)[1] or ''
    return { s[1] - 1, math.min(s[2], #first), e[1] - 1, e_col }
  end
  local last = vim.api.nvim_buf_get_lines(bufnr, line2 - 1, line2, false)[1] or ''
  return { line1 - 1, 0, line2 - 1, #last }
end

--- LSP `{uri, range}` of byte range {r} in {bufnr}.
local function lsp_selection(bufnr, r, encoding)
  encoding = encoding or 'utf-16'
  local function pos(row, byte_col)
    local text = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
    byte_col = math.min(byte_col, #text)
    return { line = row, character = vim.str_utfindex(text, encoding, byte_col, false) }
  end
  return { uri = vim.uri_from_bufnr(bufnr), range = { start = pos(r[1], r[2]), ['end'] = pos(r[3], r[4]) } }
end

--- LSP `{uri, range}` for lines {line1}..{line2} (1-based, inclusive) of {bufnr}.
--- When {charwise} holds `'<`/`'>` positions, the range follows them instead of whole lines.
function M.selection(bufnr, line1, line2, encoding, charwise)
  return lsp_selection(bufnr, byte_range(bufnr, line1, line2, charwise), encoding)
end

--- The selection a command was given, as `{uri, range}`, and its byte range.
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
  local r = byte_range(bufnr, line1, line2, charwise)
  return lsp_selection(bufnr, r, client.offset_encoding), r
end

M.actions_ns = vim.api.nvim_create_namespace('gearshift.actions')

--- The last task asked on a selection: `{task, bufnr, marks = {start, end}, instruction}`. Its range
--- is two extmarks, read back each time it is escalated, so edits since (a refactor applied to it)
--- move it with the text instead of leaving a stale range behind.
M.last_action = nil

local function remember_action(task, bufnr, r, instruction)
  local old = M.last_action
  if old and vim.api.nvim_buf_is_valid(old.bufnr) then
    vim.api.nvim_buf_clear_namespace(old.bufnr, M.actions_ns, 0, -1)
  end
  local start = vim.api.nvim_buf_set_extmark(bufnr, M.actions_ns, r[1], r[2], { right_gravity = false })
  local finish = vim.api.nvim_buf_set_extmark(bufnr, M.actions_ns, r[3], r[4], { right_gravity = true })
  M.last_action = { task = task, bufnr = bufnr, marks = { start, finish }, instruction = instruction }
end

--- The last action's `{uri, range, task[, instruction]}` as its text stands now, or nil.
function M.last_action_argument()
  local a = M.last_action
  if not a or not vim.api.nvim_buf_is_valid(a.bufnr) then
    return nil
  end
  local s = vim.api.nvim_buf_get_extmark_by_id(a.bufnr, M.actions_ns, a.marks[1], {})
  local e = vim.api.nvim_buf_get_extmark_by_id(a.bufnr, M.actions_ns, a.marks[2], {})
  if not s[1] or not e[1] then
    return nil
  end
  local client = M.get_client(a.bufnr)
  local arg = lsp_selection(a.bufnr, { s[1], s[2], e[1], e[2] }, client and client.offset_encoding)
  arg.task = a.task
  arg.instruction = a.instruction
  return arg
end

--- {v} with every vim.NIL (JSON null) left out.
local function without_nil(v)
  if v == vim.NIL then
    return nil
  elseif type(v) == 'table' then
    local out = {}
    for k, x in pairs(v) do
      out[k] = without_nil(x)
    end
    return out
  end
  return v
end

--- Readable `key: value` lines for a result of no known shape.
local function describe(result)
  local lines = {}
  for _, key in ipairs(vim.tbl_keys(without_nil(result) or {})) do
    local v = without_nil(result[key])
    local text = type(v) == 'table' and vim.inspect(v, { newline = ' ', indent = '' }) or tostring(v)
    table.insert(lines, ('%s: %s'):format(key, text))
  end
  table.sort(lines)
  return table.concat(lines, '\n')
end

--- Show an explain/escalate/review answer (`{title, markdown, source, model}`) in the answer window:
--- a scratch split, or a float with `answer = "float"`. Text wraps at word boundaries.
function M.show_answer(result)
  M.progress(nil)
  result = type(result) == 'table' and result or { markdown = tostring(result) }
  local title = value(result.title) or 'Gearshift'
  local text = value(result.markdown) or value(result.answer)
  if type(text) ~= 'string' then
    text = describe(result)
  end
  local lines = vim.split(text, '\n', { plain = true })
  local float = M.config.answer == 'float'
  -- One title: the server's answer starts with it ("**Explanation** · local (...)"); otherwise a
  -- heading in the split, or the float's border.
  local titled = (lines[1] or ''):find(title, 1, true) ~= nil
  if not titled and not float then
    table.insert(lines, 1, '# ' .. title)
    table.insert(lines, 2, '')
  end

  local name = 'gearshift://answer'
  local bufnr = vim.fn.bufnr(name)
  if bufnr == -1 then
    bufnr = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(bufnr, name)
    vim.bo[bufnr].bufhidden = 'hide'
    vim.bo[bufnr].filetype = 'markdown'
    vim.keymap.set('n', 'q', '<Cmd>close<CR>', { buffer = bufnr, nowait = true, desc = 'Gearshift: close' })
  end
  vim.bo[bufnr].modifiable = true
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.bo[bufnr].modifiable = false

  local win = vim.fn.bufwinid(bufnr)
  if float then
    local width = math.min(100, math.floor(vim.o.columns * 0.8))
    local height = math.max(1, math.min(#lines + 1, math.floor(vim.o.lines * 0.7)))
    local cfg = {
      relative = 'editor', width = width, height = height, border = 'rounded',
      row = math.floor((vim.o.lines - height) / 2), col = math.floor((vim.o.columns - width) / 2),
      title = not titled and (' ' .. title .. ' ') or '',
    }
    if win == -1 then
      cfg.style = 'minimal'
      win = vim.api.nvim_open_win(bufnr, false, cfg)
    else
      vim.api.nvim_win_set_config(win, cfg)
    end
  elseif win == -1 then
    win = vim.api.nvim_open_win(bufnr, false, { split = 'below', win = 0 })
  end
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true -- wrap between words, not inside one
  vim.wo[win].breakindent = true
  vim.wo[win].conceallevel = 2
  return bufnr, win
end

--- Show a command's result by its kind: a refactor's outcome (`{applied, message}`) as a message,
--- an answer (`{title, markdown}`) in the answer window.
function M.show_result(result)
  M.progress(nil)
  if type(result) ~= 'table' then
    return warn('the server sent no answer')
  end
  if result.applied ~= nil then
    local msg = value(result.message) or (result.applied and 'refactored' or 'nothing changed')
    local note = value(result.note)
    if type(note) == 'string' and note ~= '' then
      msg = msg .. ' ' .. note
    end
    vim.notify('Gearshift: ' .. msg, result.applied and vim.log.levels.INFO or vim.log.levels.WARN)
    return
  end
  return M.show_answer(result)
end

--- `workspace/executeCommand` {command} with {arguments}; {on_result} gets the result.
function M.execute(command, arguments, on_result, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = M.get_client(bufnr) or vim.lsp.get_clients({ name = M.name })[1]
  if not client then
    M.progress(nil)
    warn('no gearshift client is running (see :checkhealth gearshift)')
    return false
  end
  local ok = client:request('workspace/executeCommand', { command = command, arguments = arguments },
    function(err, result)
      if err then
        M.progress(nil)
        warn(err.message or vim.inspect(err), vim.log.levels.ERROR)
        return
      end
      if on_result then
        on_result(result)
      end
    end, bufnr)
  return ok
end

local function attached_client()
  local client = M.get_client()
  if not client then
    warn(('this buffer is not served: %s (see :checkhealth gearshift)'):format(M.not_served_reason()))
  end
  return client
end

function M.explain(cmd_opts)
  local client = attached_client()
  if not client then
    return
  end
  local arg, r = command_selection(cmd_opts, client)
  remember_action('explain', vim.api.nvim_get_current_buf(), r)
  M.progress('explaining…')
  M.execute('gearshift.explain', { arg }, M.show_result)
end

function M.refactor(cmd_opts)
  local client = attached_client()
  if not client then
    return
  end
  local arg, r = command_selection(cmd_opts, client)
  if cmd_opts.args and cmd_opts.args ~= '' then
    arg.instruction = cmd_opts.args
  end
  remember_action('refactor', vim.api.nvim_get_current_buf(), r, arg.instruction)
  M.progress('refactoring…')
  M.execute('gearshift.refactor', { arg }, M.show_result)
end

--- Why escalating would not reach the cloud, from `gearshift.status` and this client's settings, or nil.
local function no_cloud_reason(report)
  local cloud = type(report) == 'table' and value(report.cloud)
  local settings = M.config.settings and M.config.settings.cloud or {}
  if settings.localOnly then
    return 'cloud.localOnly is set'
  end
  if type(cloud) == 'table' and value(cloud.available) == false then
    return 'no cloud API key (ANTHROPIC_API_KEY or cloud.apiKey)'
  end
  return nil
end

--- :GearshiftEscalate: the range (and task) given, else the last task on its range as the text
--- stands now. Asks the server first whether the cloud can be reached: without it, re-running the
--- local model would only repeat the answer the user already has.
function M.escalate(cmd_opts)
  local bufnr = vim.api.nvim_get_current_buf()
  local arg
  if cmd_opts.range and cmd_opts.range > 0 then
    local client = attached_client()
    if not client then
      return
    end
    local r
    arg, r = command_selection(cmd_opts, client)
    arg.task = cmd_opts.args ~= '' and cmd_opts.args or 'explain'
    remember_action(arg.task, bufnr, r)
  else
    arg = M.last_action_argument()
    if arg and cmd_opts.args and cmd_opts.args ~= '' then
      arg.task = cmd_opts.args
    end
  end
  local target = arg and vim.uri_to_bufnr(arg.uri) or bufnr
  M.execute('gearshift.status', {}, function(report)
    local why = no_cloud_reason(report)
    if why then
      -- One short line: a longer one would stop at a hit-enter prompt.
      warn(('not escalated: %s'):format(why))
      return
    end
    M.progress('asking the cloud…')
    M.execute('gearshift.escalate', arg and { arg } or {}, M.show_result, target)
  end, target)
end

--- The short `:GearshiftStatus` summary of a `gearshift.status` report, as lines.
function M.format_status(report, bufnr)
  report = without_nil(report) or {}
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local lines = {}
  local function add(label, text)
    table.insert(lines, ('%-12s %s'):format(label, text))
  end
  local state = report.state or 'unknown'
  local tier = report.tier or (report.guard and report.guard.current) or '?'
  add('Tier', ('%s (%s)'):format(tier, state))
  if report.modelError then
    add('Error', report.modelError)
  end
  local speed = M.last_speed
  if speed then
    local ttft = type(speed.ttft_ms) == 'number' and (', first token in %d ms'):format(math.floor(speed.ttft_ms + 0.5)) or ''
    add('Speed', ('%d tok/s%s (last suggestion generated)'):format(math.floor(speed.tok_s + 0.5), ttft))
  else
    add('Speed', 'no suggestion generated yet')
  end
  add('Suggestions', ('%d generated, %d from the typed-ahead cache, %d hidden by the server'):format(
    M.counts.generated, M.counts.cache_hits, M.counts.hidden))
  local guard = report.guard
  if type(guard) == 'table' then
    if guard.enabled == false then
      add('Guard', 'off')
    else
      local rungs, at = guard.rungs or {}, nil
      for i, rung in ipairs(rungs) do
        if rung.name == guard.current then
          at = i
        end
      end
      local text = ('on, target %s tok/s'):format(guard.targetTokS or '?')
      if at then
        text = text .. (', rung %d of %d'):format(at, #rungs)
      end
      local last = guard.shifts and guard.shifts[#guard.shifts]
      text = text .. (last and ('; last shift %s → %s: %s'):format(
        M.short_tier(last.from), M.short_tier(last.to), last.reason or '') or '; no shifts')
      add('Guard', text)
    end
  end
  if type(report.loadedModels) == 'table' and #report.loadedModels > 0 then
    add('Models', table.concat(report.loadedModels, ', ') .. ' loaded')
  end
  local cloud = report.cloud
  if type(cloud) == 'table' then
    if cloud.available then
      add('Cloud', ('%s: %d requests, $%.4f'):format(cloud.model or '?', cloud.requests or 0, cloud.costUsd or 0))
    else
      add('Cloud', 'no API key: everything runs locally')
    end
  end
  local why = M.not_served_reason(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  name = name ~= '' and vim.fn.fnamemodify(name, ':t') or ('buffer ' .. bufnr)
  add('This buffer', why and ('%s is not served: %s'):format(name, why)
    or ('%s (%s) is served'):format(name, vim.bo[bufnr].filetype))
  if M.log_file() then
    add('Server log', M.log_file())
  end
  table.insert(lines, '')
  table.insert(lines, 'Full detail: :GearshiftStatus!')
  return lines
end

--- :GearshiftStatus (a short summary) and :GearshiftStatus! (the whole report).
function M.status(cmd_opts)
  local bufnr = vim.api.nvim_get_current_buf()
  M.execute('gearshift.status', {}, function(report)
    if cmd_opts and cmd_opts.bang then
      M.show_answer({ title = 'Gearshift status (full)',
        markdown = '```lua\n' .. vim.inspect(without_nil(report)) .. '\n```' })
    else
      M.show_answer({ title = 'Gearshift status', markdown = table.concat(M.format_status(report, bufnr), '\n') })
    end
  end, bufnr)
end

return M
