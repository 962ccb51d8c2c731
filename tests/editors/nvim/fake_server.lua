--- The extmark renderer against an in-process fake server (no model): debounce, $/cancelRequest of
--- stale requests, multi-line ghost text, accept next word / next line / all, dismiss, and the
--- statusline and command arguments (LSP positions in UTF-16).
local H = require('harness')
local gearshift = require('gearshift')
local ghost = require('gearshift.ghost')

local SUGGESTION = 'a - b\n    # done'
local log = { requests = {}, cancelled = {}, commands = {}, hints = {} }

--- An in-process server (`cmd` as a function): answers inlineCompletion after 300 ms unless cancelled.
local function fake_server(dispatchers)
  local closing, next_id = false, 0
  local pending = {}
  local srv = {}
  function srv.request(method, params, callback)
    next_id = next_id + 1
    local id = next_id
    if method == 'initialize' then
      callback(nil, { capabilities = {
        inlineCompletionProvider = true, textDocumentSync = { openClose = true, change = 2 },
        executeCommandProvider = { commands = { 'gearshift.explain', 'gearshift.status' } },
      } })
    elseif method == 'textDocument/inlineCompletion' then
      table.insert(log.requests, { id = id, position = params.position })
      pending[id] = true
      vim.defer_fn(function()
        if pending[id] then
          pending[id] = nil
          callback(nil, { items = { { insertText = SUGGESTION,
            range = { start = params.position, ['end'] = params.position } } } })
          dispatchers.notification('gearshift/status', { state = 'ready', tier = 'fake-tier',
            tokensPerSecond = 41.6, generatedTokens = 12, cacheHit = false })
        end
      end, 300)
    elseif method == 'workspace/executeCommand' then
      table.insert(log.commands, params)
      callback(nil, { title = 'Explanation', markdown = 'It adds.', source = 'local', model = 'fake' })
    elseif method == 'shutdown' then
      callback(nil, nil)
    else
      callback(nil, nil)
    end
    return true, id
  end
  function srv.notify(method, params)
    if method == 'gearshift/cursor' then
      table.insert(log.hints, params)
    elseif method == '$/cancelRequest' then
      table.insert(log.cancelled, params.id)
      pending[params.id] = nil
    elseif method == 'exit' then
      closing = true
    end
    return true
  end
  function srv.is_closing() return closing end
  function srv.terminate() closing = true end
  return srv
end

gearshift.setup({ cmd = fake_server, renderer = 'extmark', debounce_ms = 100, root_markers = {} })

local function line(bufnr, row)
  return vim.api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1]
end

H.run(function()
  local path = assert(os.getenv('GEARSHIFT_WORKDIR')) .. '/fake.py'
  vim.fn.writefile({ 'x = "é"', 'def subtract(a, b):', '    return' }, path)
  vim.cmd.edit(vim.fn.fnameescape(path))
  local bufnr = vim.api.nvim_get_current_buf()
  H.wait_for('the client to attach', 5000, function() return gearshift.get_client(bufnr) end)

  -- Cursor hints: where the cursor comes to rest, once, in UTF-16 ("é" is one unit), after the debounce.
  H.wait_for('the hint on attach', 2000, function() return #log.hints >= 1 end)
  vim.api.nvim_win_set_cursor(0, { 1, 1 })
  H.sleep(50)
  vim.api.nvim_win_set_cursor(0, { 1, 7 }) -- the closing quote of 'x = "é"': byte 7, UTF-16 character 6
  H.sleep(600)
  vim.api.nvim_win_set_cursor(0, { 1, 7 }) -- the same place again: nothing new to say
  H.sleep(400)
  H.fact('hints', vim.deepcopy(log.hints))

  -- Three quick keystrokes: one debounced request, not three.
  vim.api.nvim_win_set_cursor(0, { 3, 0 })
  vim.api.nvim_input('A')
  H.sleep(50)
  vim.api.nvim_input(' ')
  H.sleep(30)
  vim.api.nvim_input('a')
  H.sleep(30)
  vim.api.nvim_input('<BS>')
  H.wait_for('ghost text', 5000, function() return ghost.current(bufnr) end)
  H.fact('requests_after_burst', #log.requests)
  H.fact('ghost_text', H.extmark_text(bufnr, ghost.ns))

  -- A keystroke while a request runs cancels it ($/cancelRequest).
  vim.api.nvim_input('x')
  H.sleep(150) -- past the debounce: a request is now in flight
  vim.api.nvim_input('<BS>')
  H.wait_for('ghost text again', 5000, function() return ghost.current(bufnr) end)
  H.fact('cancelled', #log.cancelled)
  H.fact('requests', #log.requests)

  -- Typing the suggestion's first character shrinks it without a request.
  local before = #log.requests
  vim.api.nvim_input('a')
  H.sleep(250)
  H.fact('typed_ahead_ghost', H.extmark_text(bufnr, ghost.ns))
  H.fact('typed_ahead_requests', #log.requests - before)

  -- Accept the next word, then the line, then the rest.
  vim.api.nvim_input('<M-w>')
  H.wait_for('word accepted', 2000, function() return line(bufnr, 3) == '    return a -' end)
  H.fact('after_word', line(bufnr, 3))
  H.fact('ghost_after_word', H.extmark_text(bufnr, ghost.ns))
  vim.api.nvim_input('<M-l>')
  H.wait_for('line accepted', 2000, function() return line(bufnr, 3) == '    return a - b' end)
  H.fact('ghost_after_line', H.extmark_text(bufnr, ghost.ns))
  vim.api.nvim_input('<Tab>')
  H.wait_for('rest accepted', 2000, function() return line(bufnr, 4) == '    # done' end)
  H.fact('buffer', vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  H.fact('cursor', vim.api.nvim_win_get_cursor(0))
  H.fact('ghost_after_all', H.extmark_text(bufnr, ghost.ns))

  -- Tab with nothing shown inserts a Tab; <C-]> dismisses.
  vim.api.nvim_input('<CR>')
  H.wait_for('ghost text on the new line', 5000, function() return ghost.current(bufnr) end)
  vim.api.nvim_input('<C-]>')
  H.sleep(100)
  H.fact('ghost_after_dismiss', H.extmark_text(bufnr, ghost.ns))
  vim.api.nvim_input('<Tab>')
  H.sleep(100)
  H.fact('line_after_plain_tab', line(bufnr, 5))
  vim.api.nvim_input('<Esc>')
  H.wait_for('normal mode', 2000, function() return vim.api.nvim_get_mode().mode == 'n' end)
  H.fact('ghost_after_leave', H.extmark_text(bufnr, ghost.ns))

  H.fact('statusline', gearshift.statusline())

  -- Command arguments: a line range, in UTF-16 positions ("é" is 2 bytes, 1 UTF-16 unit).
  vim.cmd('1GearshiftExplain')
  H.wait_for('the answer window', 2000, function()
    local b = vim.fn.bufnr('gearshift://answer')
    return b ~= -1 and vim.fn.bufwinid(b) ~= -1
  end)
  H.fact('explain_params', log.commands[1])
  H.fact('answer', vim.api.nvim_buf_get_lines(vim.fn.bufnr('gearshift://answer'), 0, -1, false))

  -- :checkhealth gearshift runs and reports the client.
  vim.cmd('checkhealth gearshift')
  H.fact('health', table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n'))
end, 30000)
