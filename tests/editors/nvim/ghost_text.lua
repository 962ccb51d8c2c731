--- One editing session against the real server, for the renderer named by $GEARSHIFT_RENDERER
--- ("builtin": vim.lsp.inline_completion, "extmark": Gearshift's own). Records, as JSON facts:
--- the ghost text shown while typing, the buffer after accepting it, the statusline after the
--- completion, and the :GearshiftExplain answer window.
local H = require('harness')
local gearshift = require('gearshift')
local ghost = require('gearshift.ghost')

local renderer = os.getenv('GEARSHIFT_RENDERER') or 'builtin'
local workdir = assert(os.getenv('GEARSHIFT_WORKDIR'), 'set GEARSHIFT_WORKDIR')
local model = os.getenv('GEARSHIFT_E2E_MODEL') or 'qwen2.5-coder-0.5b'
local cmd = os.getenv('GEARSHIFT_SERVER_CMD') -- default: <cwd>/.venv/bin/gearshift serve

vim.o.statusline = "%f %{v:lua.require'gearshift'.statusline()}"

gearshift.setup({
  cmd = cmd and vim.split(cmd, ' ', { trimempty = true }) or nil,
  renderer = renderer,
  root_markers = {}, -- the sample lives in a temp dir: no project root, single-file mode
  settings = {
    models = { defaultModel = model, ladder = { model } },
    guard = { enabled = false },
    completion = { minConfidence = 0.0, timeBudgetMs = 30000, firstAnswerMs = 30000 },
    actions = { maxTokens = 48 },
    cloud = { localOnly = true },
  },
})

local SAMPLE = {
  'def add(a, b):',
  '    """Return the sum of a and b."""',
  '    return a + b',
  '',
  '',
  'def subtract(a, b):',
  '    """Return a minus b."""',
  '    return',
}

H.run(function()
  H.fact('renderer', gearshift.renderer())
  if gearshift.renderer() ~= renderer and renderer ~= 'auto' then
    return -- asked for the built-in renderer on a Neovim without one (0.11): the test skips
  end
  local path = workdir .. '/obvious.py'
  vim.fn.writefile(SAMPLE, path)
  vim.cmd.edit(vim.fn.fnameescape(path))
  local bufnr = vim.api.nvim_get_current_buf()
  H.fact('filetype', vim.bo[bufnr].filetype)

  local client = H.wait_for('the gearshift client to attach', 20000, function()
    return gearshift.get_client(bufnr)
  end)
  H.fact('cmd', client.config.cmd)
  H.fact('init_options', client.config.init_options)
  local ready = H.wait_for('the model to load (gearshift/status ready)', 60000, function()
    local s = gearshift.last_status
    return s and (s.state == 'ready' or s.state == 'error') and s
  end)
  H.fact('ready_status', ready)
  H.fact('statusline_ready', gearshift.statusline())

  -- Type like a user: to the end of the last line, then a space after `return`.
  H.step = 'typing'
  vim.api.nvim_win_set_cursor(0, { #SAMPLE, 0 })
  vim.api.nvim_input('A ')
  H.wait_for('insert mode', 2000, function() return vim.api.nvim_get_mode().mode == 'i' end)

  local ns = renderer == 'extmark' and ghost.ns or ghost.builtin_ns
  local started = vim.uv.now()
  local shown = H.wait_for('ghost text', 60000, function()
    local text = H.extmark_text(bufnr, ns)
    return text ~= '' and text
  end)
  H.fact('ghost_ms', vim.uv.now() - started)
  H.fact('ghost_text', shown)
  H.fact('ghost_extmarks', vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true }))
  H.fact('other_ns_text', H.extmark_text(bufnr, renderer == 'extmark' and ghost.builtin_ns or ghost.ns))
  H.fact('status_after_completion', gearshift.last_status)
  H.fact('statusline_after_completion', gearshift.statusline())
  H.fact('statusline_rendered', vim.api.nvim_eval_statusline(vim.o.statusline, {}).str)

  -- Accept it with the configured key (<Tab>).
  H.step = 'accepting'
  vim.api.nvim_input('<Tab>')
  local accepted = H.wait_for('the suggestion in the buffer', 5000, function()
    local line = vim.api.nvim_buf_get_lines(bufnr, #SAMPLE - 1, #SAMPLE, false)[1]
    return line ~= '    return ' and line
  end)
  H.fact('accepted_line', accepted)
  H.fact('buffer_after_accept', table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), '\n'))
  H.fact('cursor_after_accept', vim.api.nvim_win_get_cursor(0))
  H.sleep(100)
  H.fact('ghost_after_accept', H.extmark_text(bufnr, ns))

  -- Leave insert mode: nothing stays drawn.
  vim.api.nvim_input('<Esc>')
  H.wait_for('normal mode', 2000, function() return vim.api.nvim_get_mode().mode == 'n' end)
  H.sleep(300)
  H.fact('ghost_after_leave', H.extmark_text(bufnr, ns))

  -- :GearshiftExplain on the first function's lines.
  H.step = 'explain'
  vim.cmd('1,3GearshiftExplain')
  local answer = H.wait_for('the explain answer window', 75000, function()
    local b = vim.fn.bufnr('gearshift://answer')
    if b == -1 or vim.fn.bufwinid(b) == -1 then
      return nil
    end
    return { buf = b, lines = vim.api.nvim_buf_get_lines(b, 0, -1, false) }
  end)
  H.fact('answer_lines', answer.lines)
  H.fact('answer_filetype', vim.bo[answer.buf].filetype)
  H.fact('windows', #vim.api.nvim_tabpage_list_wins(0))

  -- Escalating that explanation while the cloud is off limits (localOnly): the server, asked directly
  -- (the plugin itself would say "not escalated" without asking), answers without the model.
  H.step = 'escalate kept local'
  local escalated
  gearshift.execute('gearshift.escalate', {}, function(result) escalated = result end, bufnr)
  escalated = H.wait_for('the escalate answer', 75000, function() return escalated end)
  H.fact('escalate_markdown', escalated.markdown)
  H.fact('explain_markdown_body', table.concat(answer.lines, '\n'))

  -- The server's own log lines: in its log file, not on stderr (which :LspLog records as [ERROR]).
  local function read(path)
    return vim.fn.filereadable(path) == 1 and vim.fn.readfile(path) or {}
  end
  local stderr_errors = {}
  for _, line in ipairs(read(vim.lsp.log.get_filename())) do
    if line:find('[ERROR]', 1, true) and line:find('stderr', 1, true) then
      table.insert(stderr_errors, line)
    end
  end
  H.fact('lsp_log_stderr_errors', stderr_errors)
  H.fact('server_log_file', gearshift.log_file())
  H.fact('server_log_lines', #read(gearshift.log_file() or ''))
end, tonumber(os.getenv('GEARSHIFT_NVIM_TIMEOUT_MS') or '150000'))
