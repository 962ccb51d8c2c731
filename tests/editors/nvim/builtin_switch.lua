--- The built-in renderer (Neovim 0.12+) across a buffer switch, against an in-process fake server: a
--- ghost in a Python buffer, <Esc>, `:e notes.md`, typing there. Records the inline completion
--- requests sent after the switch and the messages (a Lua error there was "Invalid window id: -1").
local H = require('harness')
local gearshift = require('gearshift')
local ghost = require('gearshift.ghost')

local log = { requests = {} }

local function fake_server()
  local closing, next_id = false, 0
  local srv = {}
  function srv.request(method, params, callback)
    next_id = next_id + 1
    if method == 'initialize' then
      callback(nil, { capabilities = {
        inlineCompletionProvider = true, textDocumentSync = { openClose = true, change = 2 },
      } })
    elseif method == 'textDocument/inlineCompletion' then
      table.insert(log.requests, { uri = params.textDocument.uri, position = params.position })
      vim.defer_fn(function()
        callback(nil, { items = { { insertText = 'a - b' } } })
      end, 50)
    else
      callback(nil, nil)
    end
    return true, next_id
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

gearshift.setup({ cmd = fake_server, renderer = 'builtin', root_markers = {}, filetypes = { 'python' } })

H.run(function()
  H.fact('renderer', gearshift.renderer())
  if gearshift.renderer() ~= 'builtin' then
    return
  end
  local dir = assert(os.getenv('GEARSHIFT_WORKDIR'))
  vim.fn.writefile({ 'def subtract(a, b):', '    return ' }, dir .. '/calc.py')
  vim.cmd.edit(vim.fn.fnameescape(dir .. '/calc.py'))
  local py = vim.api.nvim_get_current_buf()
  H.wait_for('the client to attach', 5000, function() return gearshift.get_client(py) end)
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.api.nvim_input('A')
  H.wait_for('a ghost', 5000, function() return ghost.builtin_shown(py) end)
  vim.api.nvim_input('<Esc>')
  H.wait_for('normal mode', 2000, function() return vim.api.nvim_get_mode().mode == 'n' end)
  vim.fn.writefile({ '# Notes', '' }, dir .. '/notes.md')
  vim.cmd.edit(vim.fn.fnameescape(dir .. '/notes.md'))
  local before = #log.requests
  vim.api.nvim_input('A')
  for _, key in ipairs({ ' ', 'n', 'o', 't', 'e' }) do
    vim.api.nvim_input(key)
    H.sleep(120)
  end
  H.sleep(500)
  local after = {}
  for i = before + 1, #log.requests do
    table.insert(after, log.requests[i])
  end
  H.fact('requests_after_switch', after)
  H.fact('messages_after_switch', vim.api.nvim_exec2('messages', { output = true }).output)
  vim.api.nvim_input('<Esc>')
  H.sleep(100)
  -- Back in the Python buffer, the built-in renderer works again.
  vim.cmd.buffer(py)
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.api.nvim_input('A')
  H.wait_for('a ghost back in the Python buffer', 5000, function() return ghost.builtin_shown(py) end)
  H.fact('ghost_back', true)
  vim.api.nvim_input('<Esc>')
  H.sleep(100)
end, 30000)
