--- Cursor hints (`gearshift/cursor`, docs/protocol.md): where the cursor rests in the current buffer.
---
--- LSP tells a server nothing about the cursor until the first request, so the first keystroke in a
--- file paid for evaluating its whole prompt window. With a hint the server evaluates it while the
--- user reads. Sent when a buffer is entered and when the cursor comes to rest (debounced), once per
--- position; never while typing in Insert mode (each keystroke asks for a completion anyway).
local M = {}

M.debounce_ms = 300

local timers = {} ---@type table<integer, uv.uv_timer_t>
local last_sent = {} ---@type table<integer, string>

local function send(client, bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_get_current_buf() ~= bufnr then
    return
  end
  if client:is_stopped() then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local key = params.textDocument.uri .. ':' .. params.position.line .. ':' .. params.position.character
  if last_sent[bufnr] == key then
    return
  end
  last_sent[bufnr] = key
  client:notify('gearshift/cursor', params)
end

local function schedule(client, bufnr)
  local timer = timers[bufnr]
  if not timer then
    timer = assert(vim.uv.new_timer())
    timers[bufnr] = timer
  end
  timer:stop()
  timer:start(M.debounce_ms, 0, vim.schedule_wrap(function() send(client, bufnr) end))
end

--- Start sending hints for `bufnr` to `client`.
function M.attach(bufnr, client)
  local group = vim.api.nvim_create_augroup('gearshift.hints.' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd({ 'BufEnter', 'CursorMoved', 'InsertEnter' }, {
    group = group, buffer = bufnr,
    callback = function(args)
      if args.event == 'BufEnter' then
        last_sent[bufnr] = nil -- back in the file: its prompt may have left the server's cache meanwhile
      end
      schedule(client, bufnr)
    end,
  })
  vim.api.nvim_create_autocmd({ 'LspDetach', 'BufWipeout' }, {
    group = group, buffer = bufnr,
    callback = function()
      if timers[bufnr] then
        timers[bufnr]:stop()
        timers[bufnr]:close()
        timers[bufnr] = nil
      end
      last_sent[bufnr] = nil
      pcall(vim.api.nvim_del_augroup_by_id, group)
    end,
  })
  schedule(client, bufnr)
end

return M
