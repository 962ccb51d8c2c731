--- Commands, status and buffers the plugin does not serve, against an in-process fake server (no model):
--- the statusline across the statuses a session sends, the :GearshiftStatus summary, the explain answer
--- window (one title, word wrap, the progress message gone), :GearshiftEscalate after a refactor changed
--- the file (the range read afresh, the outcome shown as a message), escalating without a cloud key,
--- and a markdown buffer next to a Python one (no requests for it, :checkhealth says it is not served).
local H = require('harness')
local gearshift = require('gearshift')
local ghost = require('gearshift.ghost')

local log = { requests = {}, commands = {} }
local server = { cloud_available = true }

local NIL = vim.NIL
local STATUS_REPORT = {
  state = 'ready', tier = 'qwen2.5-coder-0.5b', tokensPerSecond = 0.0, generatedTokens = 0, cacheHit = true,
  timeToFirstTokenMs = NIL, hidden = NIL, modelError = NIL, loadedModels = { 'qwen2.5-coder-0.5b' },
  guard = {
    enabled = true, targetTokS = 40, current = 'qwen2.5-coder-0.5b', top = 'qwen2.5-coder-0.5b', probing = NIL,
    upshiftBlockedS = NIL, shifts = {},
    rungs = {
      { name = 'qwen2.5-coder-0.5b', model = 'qwen2.5-coder-0.5b', nThreads = 2, medianTokS = 21.3,
        medianTtftMs = 120.0, referenceTokS = NIL, samples = 4, promptLookup = true, contextScale = 1,
        maxTokensScale = 1 },
      { name = 'qwen2.5-coder-0.5b/1-thread', model = 'qwen2.5-coder-0.5b', nThreads = 1, medianTokS = NIL,
        medianTtftMs = NIL, referenceTokS = NIL, samples = 0, promptLookup = true, contextScale = 1,
        maxTokensScale = 1 },
    },
  },
}

local function fake_server(dispatchers)
  server.dispatchers = dispatchers
  local closing, next_id = false, 0
  local srv = {}
  function srv.request(method, params, callback)
    next_id = next_id + 1
    local id = next_id
    if method == 'initialize' then
      callback(nil, { capabilities = {
        inlineCompletionProvider = true, textDocumentSync = { openClose = true, change = 2 },
        executeCommandProvider = { commands = { 'gearshift.explain', 'gearshift.refactor', 'gearshift.escalate',
          'gearshift.status' } },
      } })
    elseif method == 'textDocument/inlineCompletion' then
      table.insert(log.requests, { uri = params.textDocument.uri, position = params.position })
      vim.defer_fn(function()
        callback(nil, { items = { { insertText = 'a - b' } } })
      end, 50)
    elseif method == 'workspace/executeCommand' then
      table.insert(log.commands, vim.deepcopy(params))
      local arg = params.arguments and params.arguments[1]
      if params.command == 'gearshift.status' then
        local report = vim.deepcopy(STATUS_REPORT)
        report.cloud = { available = server.cloud_available, model = 'claude-x', requests = 0, inputTokens = 0,
          outputTokens = 0, costUsd = 0.0, recent = {} }
        callback(nil, report)
      elseif params.command == 'gearshift.explain' then
        vim.defer_fn(function()
          callback(nil, { title = 'Explanation', source = 'local', model = 'fake', routeReason = 'explain runs locally',
            markdown = '**Explanation** · local (fake)\n\n' .. string.rep('Subtracts b from a and returns it. ', 12) })
        end, 200)
      elseif params.command == 'gearshift.refactor' then
        -- The server applies its edit through workspace/applyEdit: three lines in place of one.
        local r = arg.range
        dispatchers.server_request('workspace/applyEdit', { label = 'Gearshift refactor', edit = { changes = {
          [arg.uri] = { { range = r, newText = 'def subtract(a: int, b: int) -> int:\n    """a minus b."""\n    return a - b' } },
        } } })
        callback(nil, { applied = true, message = 'Refactored; the file still parses.', source = 'local',
          model = 'fake', note = '' })
      elseif params.command == 'gearshift.escalate' then
        callback(nil, { applied = false, message = 'The model proposed no change.', source = 'cloud',
          model = 'claude-x', note = '' })
      else
        callback(nil, nil)
      end
    else
      callback(nil, nil)
    end
    return true, id
  end
  function srv.notify(method)
    if method == 'exit' then
      closing = true
    end
    return true
  end
  function srv.is_closing() return closing end
  function srv.terminate() closing = true end
  return srv
end

gearshift.setup({ cmd = fake_server, debounce_ms = 50, root_markers = {} })
vim.o.statusline = "%f %{v:lua.require'gearshift'.statusline()}"

local function status(params)
  server.dispatchers.notification('gearshift/status', params)
end

local function answer_lines()
  return vim.api.nvim_buf_get_lines(vim.fn.bufnr('gearshift://answer'), 0, -1, false)
end

--- The command line as drawn on the screen (the last row).
local function cmdline()
  vim.cmd.redraw()
  local chars = {}
  for col = 1, vim.o.columns do
    table.insert(chars, vim.fn.screenstring(vim.o.lines, col))
  end
  return vim.trim(table.concat(chars))
end

local function messages()
  return vim.api.nvim_exec2('messages', { output = true }).output
end

H.run(function()
  local dir = assert(os.getenv('GEARSHIFT_WORKDIR'))
  local py = dir .. '/calc.py'
  vim.fn.writefile({ 'import math', 'def subtract(a, b):', '    return', '' }, py)
  vim.cmd.edit(vim.fn.fnameescape(py))
  local bufnr = vim.api.nvim_get_current_buf()
  H.wait_for('the client to attach', 5000, function() return gearshift.get_client(bufnr) end)

  -- Statusline: no speed before one was measured; an accept or a cache hit (no tokens generated)
  -- keeps the last measured speed and adds nothing; a guard rung name is shortened.
  H.part('statusline', function()
    status({ state = 'ready', tier = 'qwen2.5-coder-0.5b' })
    H.fact('statusline_ready', gearshift.statusline())
    status({ state = 'ready', tier = 'qwen2.5-coder-0.5b', tokensPerSecond = 0.0, generatedTokens = 0,
      cacheHit = false, hidden = 'low confidence' })
    H.fact('statusline_filtered_first', gearshift.statusline())
    status({ state = 'ready', tier = 'qwen2.5-coder-0.5b', tokensPerSecond = 21.4, generatedTokens = 9,
      cacheHit = false })
    H.fact('statusline_generated', gearshift.statusline())
    status({ state = 'ready', tier = 'qwen2.5-coder-0.5b', tokensPerSecond = NIL, generatedTokens = 0,
      cacheHit = true })
    H.fact('statusline_cache_hit', gearshift.statusline())
    status({ state = 'ready', tier = 'qwen2.5-coder-0.5b', tokensPerSecond = 0.0, generatedTokens = 0,
      cacheHit = false })
    H.fact('statusline_accept', gearshift.statusline())
    status({ state = 'ready', tier = 'smollm2-135m/0.125x-context/1-thread', tokensPerSecond = 45.2,
      generatedTokens = 6, cacheHit = false })
    H.fact('statusline_low_rung', gearshift.statusline())
  end)

  -- :GearshiftStatus: a short summary, readable; the whole report behind the bang.
  H.part('status', function()
    vim.cmd('GearshiftStatus')
    H.wait_for('the status window', 2000, function()
      return vim.fn.bufnr('gearshift://answer') ~= -1 and answer_lines()[1] ~= ''
    end)
    H.fact('status_lines', answer_lines())
    vim.cmd('GearshiftStatus!')
    H.wait_for('the full status', 2000, function() return #answer_lines() > 20 end)
    H.fact('status_full', table.concat(answer_lines(), '\n'))
    vim.cmd('only')
  end)

  -- :GearshiftExplain: the progress message goes when the answer comes; one title; word wrap.
  H.part('explain', function()
    vim.cmd('2,3GearshiftExplain')
    H.fact('cmdline_while_explaining', cmdline())
    H.wait_for('the explain answer', 3000, function()
      return vim.fn.bufnr('gearshift://answer') ~= -1 and table.concat(answer_lines()):find('Subtracts') ~= nil
    end)
    H.fact('cmdline_after_answer', cmdline())
    H.fact('messages_after_answer', messages())
    H.fact('explain_lines', answer_lines())
    local win = vim.fn.bufwinid(vim.fn.bufnr('gearshift://answer'))
    H.fact('answer_wrap', vim.wo[win].wrap)
    H.fact('answer_linebreak', vim.wo[win].linebreak)
    vim.cmd('only')
  end)

  -- Refactor line 2 (the edit replaces it with three lines), then escalate with no range: the range
  -- sent is the refactored text's, and the outcome is a message, not a Lua table.
  H.part('refactor and escalate', function()
    vim.api.nvim_win_set_cursor(0, { 1, 0 })
    vim.cmd('2GearshiftRefactor add type hints')
    H.wait_for('the refactor applied', 3000, function()
      return vim.api.nvim_buf_get_lines(bufnr, 1, 2, false)[1] == 'def subtract(a: int, b: int) -> int:'
    end)
    H.wait_for('the refactor message', 2000, function() return messages():find('Refactored', 1, true) end)
    H.fact('buffer_after_refactor', vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
    vim.cmd('GearshiftEscalate')
    H.wait_for('the escalate request', 3000, function()
      return log.commands[#log.commands].command == 'gearshift.escalate'
    end)
    H.fact('escalate_params', log.commands[#log.commands])
    H.sleep(200)
    H.fact('answer_window_after_escalate', vim.fn.bufwinid(vim.fn.bufnr('gearshift://answer')) ~= -1)
    H.fact('messages_after_escalate', messages())
    vim.cmd('only')
  end)

  -- No cloud key: escalating says so and does not ask the server to run the local model again.
  H.part('escalate without a key', function()
    server.cloud_available = false
    local before = #log.commands
    vim.cmd('GearshiftEscalate')
    H.sleep(500)
    local sent = {}
    for i = before + 1, #log.commands do
      table.insert(sent, log.commands[i].command)
    end
    H.fact('commands_without_key', sent)
    H.fact('messages_without_key', messages())
    vim.cmd('only')
  end)

  -- A ghost in the Python buffer, then a markdown buffer: nothing is requested for either while
  -- typing there, no error, the statusline and :checkhealth say it is not served.
  H.part('markdown', function()
    vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(bufnr), 0 })
    vim.api.nvim_input('A')
    vim.api.nvim_input('x')
    H.wait_for('a ghost in the Python buffer', 3000, function() return ghost.current(bufnr) end)
    vim.api.nvim_input('<Esc>')
    H.wait_for('normal mode', 2000, function() return vim.api.nvim_get_mode().mode == 'n' end)
    local md = dir .. '/notes.md'
    vim.fn.writefile({ '# Notes', '' }, md)
    vim.cmd.edit(vim.fn.fnameescape(md))
    local md_buf = vim.api.nvim_get_current_buf()
    local requests_before = #log.requests
    vim.api.nvim_input('Go')
    for _, key in ipairs({ 'S', 'o', 'm', 'e', ' ', 't', 'e', 'x', 't' }) do
      vim.api.nvim_input(key)
      H.sleep(120)
    end
    H.sleep(300)
    H.fact('md_filetype', vim.bo[md_buf].filetype)
    H.fact('md_requests', #log.requests - requests_before)
    H.fact('md_statusline', gearshift.statusline())
    local msgs = messages()
    H.fact('md_errors', (msgs:find('E%d+:') or msgs:find('Error')) and msgs or '')
    vim.api.nvim_input('<Esc>')
    H.wait_for('normal mode', 2000, function() return vim.api.nvim_get_mode().mode == 'n' end)
    vim.cmd('GearshiftStatus')
    H.wait_for('the status window', 2000, function()
      return table.concat(answer_lines(), '\n'):find('This buffer', 1, true)
    end)
    H.fact('md_status', table.concat(answer_lines(), '\n'))
  end)
  H.part('checkhealth', function()
    vim.cmd('only')
    vim.cmd('checkhealth gearshift')
    H.fact('md_health', table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n'))
  end)
end, 40000)
