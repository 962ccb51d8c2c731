--- Ghost text for Neovim without `vim.lsp.inline_completion` (0.11), or when `renderer = "extmark"`.
---
--- One state per buffer: a debounce timer, the id of the request in flight (cancelled when a newer
--- keystroke makes it stale), and the suggestion on display, anchored where it was asked for.
--- The suggestion is drawn as an extmark: the first line `virt_text` inline at the cursor, the others
--- `virt_lines`, highlighted `GearshiftGhost`. Typing the suggestion's own characters keeps it
--- and shortens it; anything else clears it and asks again after the debounce.
---
--- Also holds the partial-accept helpers for the built-in renderer (0.12+).

local M = {}

M.ns = vim.api.nvim_create_namespace('gearshift.ghost')

local METHOD = 'textDocument/inlineCompletion'
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2

---@class gearshift.GhostItem
---@field row integer 0-based row where the suggestion starts (the cursor when it was asked for)
---@field col integer 0-based byte column of that position
---@field text string the whole suggestion, from (row, col)

---@class gearshift.GhostState
---@field client_id integer
---@field augroup integer
---@field timer? uv.uv_timer_t
---@field request_id? integer
---@field item? gearshift.GhostItem
---@field extmark? integer

---@type table<integer, gearshift.GhostState>
M.states = {}

local function config()
  return require('gearshift').config
end

local function stop_timer(state)
  if state.timer then
    state.timer:stop()
    if not state.timer:is_closing() then
      state.timer:close()
    end
    state.timer = nil
  end
end

local function cancel_request(state)
  if state.request_id then
    local client = vim.lsp.get_client_by_id(state.client_id)
    if client then
      client:cancel_request(state.request_id)
    end
    state.request_id = nil
  end
end

local function hide(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
  local state = M.states[bufnr]
  if state then
    state.extmark = nil
  end
end

--- Clear the suggestion, the pending request and the timer.
function M.clear(bufnr)
  local state = M.states[bufnr]
  if not state then
    return
  end
  stop_timer(state)
  cancel_request(state)
  state.item = nil
  hide(bufnr)
end

--- The window showing {bufnr}: the current one when it does.
local function window_of(bufnr)
  local win = vim.api.nvim_get_current_win()
  if vim.api.nvim_win_get_buf(win) == bufnr then
    return win
  end
  local found = vim.fn.bufwinid(bufnr)
  return found ~= -1 and found or nil
end

--- Cursor of {bufnr}'s window as 0-based (row, byte col).
local function cursor(bufnr)
  local win = window_of(bufnr)
  if not win then
    return nil
  end
  local pos = vim.api.nvim_win_get_cursor(win)
  return pos[1] - 1, pos[2]
end

--- The part of the suggestion not typed yet, or nil when the buffer no longer agrees with it.
function M.remaining(bufnr)
  local state = M.states[bufnr]
  local item = state and state.item
  if not item then
    return nil
  end
  local row, col = cursor(bufnr)
  if not row or row < item.row or (row == item.row and col < item.col) then
    return nil
  end
  local ok, typed = pcall(vim.api.nvim_buf_get_text, bufnr, item.row, item.col, row, col, {})
  if not ok then
    return nil
  end
  typed = table.concat(typed, '\n')
  if item.text:sub(1, #typed) ~= typed then
    return nil
  end
  local rest = item.text:sub(#typed + 1)
  return rest ~= '' and rest or nil
end

local function expand_tabs(s)
  return (s:gsub('\t', string.rep(' ', vim.bo.tabstop > 0 and vim.bo.tabstop or 8)))
end

--- Draw {text} at the cursor of {bufnr}.
local function render(bufnr, text)
  hide(bufnr)
  local row, col = cursor(bufnr)
  if not row then
    return
  end
  local lines = vim.split(text, '\n', { plain = true })
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { expand_tabs(lines[i]), 'GearshiftGhost' } }
  end
  local opts = { hl_mode = 'combine', right_gravity = false }
  if lines[1] ~= '' then
    opts.virt_text = { { lines[1], 'GearshiftGhost' } }
    opts.virt_text_pos = 'inline'
  end
  if #virt_lines > 0 then
    opts.virt_lines = virt_lines
  end
  M.states[bufnr].extmark = vim.api.nvim_buf_set_extmark(bufnr, M.ns, row, col, opts)
end

--- Show what is left of the suggestion; false when there is nothing left to show.
local function show(bufnr)
  local rest = M.remaining(bufnr)
  if not rest then
    hide(bufnr)
    return false
  end
  render(bufnr, rest)
  return true
end

--- The text a `textDocument/inlineCompletion` item inserts at (row, col), or nil if it does not fit.
local function item_text(bufnr, client, item, row, col)
  local insert = item.insertText
  local text = type(insert) == 'table' and insert.value or insert
  if type(text) ~= 'string' or text == '' then
    return nil
  end
  if type(insert) == 'table' and insert.kind == 'snippet' then
    -- Show the snippet's text; placeholders ($1, ${1:x}) are not ghost text.
    local ok, parsed = pcall(function()
      return tostring(require('vim.lsp._snippet_grammar').parse(text))
    end)
    text = ok and parsed or text
  end
  local range = item.range
  if range and range.start then
    -- A range starting before the cursor repeats what was typed since; keep the new part only.
    local line = vim.api.nvim_buf_get_lines(bufnr, range.start.line, range.start.line + 1, false)[1] or ''
    local ok, start_col = pcall(vim.str_byteindex, line, client.offset_encoding or 'utf-16',
      range.start.character, false)
    if ok and range.start.line == row and start_col < col then
      local typed = line:sub(start_col + 1, col)
      if text:sub(1, #typed) ~= typed then
        return nil
      end
      text = text:sub(#typed + 1)
    end
  end
  return text ~= '' and text or nil
end

--- Ask the server for a suggestion at the cursor now.
---@param trigger? integer InlineCompletionTriggerKind (default Automatic)
function M.request(bufnr, trigger)
  local state = M.states[bufnr]
  if not state or vim.api.nvim_get_current_buf() ~= bufnr then
    return false
  end
  stop_timer(state)
  cancel_request(state)
  local client = vim.lsp.get_client_by_id(state.client_id)
  if not client then
    return false
  end
  local win = window_of(bufnr)
  if not win then
    return false
  end
  local row, col = cursor(bufnr)
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.context = { triggerKind = trigger or TRIGGER_AUTOMATIC }
  local ok, id
  ok, id = client:request(METHOD, params, function(err, result)
    if state.request_id ~= id then
      return -- superseded
    end
    state.request_id = nil
    if err or not result or not vim.api.nvim_buf_is_valid(bufnr) then
      return
    end
    -- Stale: the buffer or the cursor moved on while the server computed.
    local now_row, now_col = cursor(bufnr)
    if vim.api.nvim_buf_get_changedtick(bufnr) ~= tick or now_row ~= row or now_col ~= col then
      return
    end
    if not vim.api.nvim_get_mode().mode:match('^i') then
      return
    end
    local items = result.items or result
    for _, item in ipairs(items) do
      local text = item_text(bufnr, client, item, row, col)
      if text then
        state.item = { row = row, col = col, text = text }
        show(bufnr)
        vim.api.nvim_exec_autocmds('User', { pattern = 'GearshiftGhostShown', modeline = false })
        return
      end
    end
  end, bufnr)
  if ok then
    state.request_id = id
  end
  return ok
end

--- Ask now, skipping the debounce (mapped to `keymaps.next` in the extmark renderer).
function M.request_now()
  return M.request(vim.api.nvim_get_current_buf(), TRIGGER_INVOKED) and true or false
end

--- After a keystroke: keep the suggestion if it was typed through, else clear it and ask again later.
local function on_change(bufnr)
  local state = M.states[bufnr]
  if not state then
    return
  end
  if state.item and show(bufnr) then
    return
  end
  state.item = nil
  hide(bufnr)
  cancel_request(state)
  stop_timer(state)
  state.timer = vim.uv.new_timer()
  state.timer:start(config().debounce_ms or 150, 0, vim.schedule_wrap(function()
    stop_timer(state)
    if M.states[bufnr] == state and vim.api.nvim_get_mode().mode:match('^i') then
      M.request(bufnr, TRIGGER_AUTOMATIC)
    end
  end))
end

--- Render ghost text in {bufnr} from client {client_id}.
function M.attach(bufnr, client_id)
  if M.states[bufnr] then
    M.states[bufnr].client_id = client_id
    return
  end
  local group = vim.api.nvim_create_augroup('gearshift.ghost.' .. bufnr, { clear = true })
  M.states[bufnr] = { client_id = client_id, augroup = group }
  vim.api.nvim_create_autocmd({ 'TextChangedI', 'CursorMovedI' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      on_change(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.clear(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd('LspDetach', {
    group = group,
    buffer = bufnr,
    callback = function(args)
      if args.data and args.data.client_id == client_id then
        M.detach(bufnr)
      end
    end,
  })
end

function M.detach(bufnr)
  local state = M.states[bufnr]
  if not state then
    return
  end
  M.clear(bufnr)
  pcall(vim.api.nvim_del_augroup_by_id, state.augroup)
  M.states[bufnr] = nil
end

--- The first {kind} ("all", "word", "line") piece of {text}.
function M.split_part(text, kind)
  if kind == 'word' then
    return text:match('^%s*[%w_]+') or text:match('^%s*[^%w_%s]+') or text:match('^%s+') or text
  elseif kind == 'line' then
    -- The rest of this line; at its end, the next line (with the line break before it).
    if text:sub(1, 1) == '\n' then
      return text:match('^\n[^\n]*')
    end
    return text:match('^[^\n]+')
  end
  return text
end

--- Insert {text} at the cursor of the current window and move the cursor after it.
local function insert_at_cursor(bufnr, text)
  local win = window_of(bufnr)
  if not win then
    return
  end
  local pos = vim.api.nvim_win_get_cursor(win)
  local row, col = pos[1] - 1, pos[2]
  local lines = vim.split(text, '\n', { plain = true })
  vim.api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local last_row = row + #lines - 1
  local last_col = (#lines == 1 and col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(win, { last_row + 1, last_col })
end

--- Accept the suggestion, or its next word or line. Returns false when none is shown (so a
--- mapping can fall back to the key's own meaning). The edit is scheduled: this runs from
--- an `<expr>` mapping, where the buffer cannot be changed.
---@param kind? "all"|"word"|"line"
function M.accept(kind)
  local bufnr = vim.api.nvim_get_current_buf()
  local state = M.states[bufnr]
  local rest = state and state.extmark and M.remaining(bufnr)
  if not rest then
    return false
  end
  local part = M.split_part(rest, kind or 'all')
  if part == rest then
    -- All of it: nothing left to show; the next keystroke asks again.
    stop_timer(state)
    cancel_request(state)
    state.item = nil
    hide(bufnr)
  end
  vim.schedule(function()
    if vim.api.nvim_buf_is_valid(bufnr) then
      insert_at_cursor(bufnr, part)
      -- What is left of a partly accepted suggestion stays on display.
      if state.item then
        show(bufnr)
      end
    end
  end)
  return true
end

--- Hide the suggestion; false when there was none.
function M.dismiss()
  local bufnr = vim.api.nvim_get_current_buf()
  local state = M.states[bufnr]
  local shown = state and state.extmark ~= nil
  M.clear(bufnr)
  return shown and true or false
end

--- The suggestion on display in {bufnr} (what is left of it), or nil.
function M.current(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local state = M.states[bufnr]
  return state and state.extmark and M.remaining(bufnr) or nil
end

-- Built-in renderer (vim.lsp.inline_completion, Neovim 0.12+) ----------------------------------

--- The built-in renderer's namespace (nvim_create_namespace returns the existing one by name).
M.builtin_ns = vim.api.nvim_create_namespace('nvim.lsp.inline_completion')

--- Whether the built-in renderer is showing a suggestion in {bufnr}.
function M.builtin_shown(bufnr)
  return #vim.api.nvim_buf_get_extmarks(bufnr or 0, M.builtin_ns, 0, -1, { limit = 1 }) > 0
end

--- Accept the next word or line of the built-in renderer's suggestion.
---@param kind "word"|"line"
function M.builtin_accept_part(kind)
  local bufnr = vim.api.nvim_get_current_buf()
  if not M.builtin_shown(bufnr) then
    return false
  end
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      local text = type(item.insert_text) == 'table' and item.insert_text.value or item.insert_text
      if type(text) ~= 'string' then
        return
      end
      -- The item was asked for at its range start; drop what was typed since.
      local win = window_of(bufnr)
      if not win then
        return
      end
      local pos = vim.api.nvim_win_get_cursor(win)
      local row, col = pos[1] - 1, pos[2]
      local start = item.range and item.range.start
      if start and start.row == row and start.col <= col then
        local typed = vim.api.nvim_buf_get_text(bufnr, row, start.col, row, col, {})[1] or ''
        if text:sub(1, #typed) == typed then
          text = text:sub(#typed + 1)
        end
      end
      if text ~= '' then
        insert_at_cursor(bufnr, M.split_part(text, kind))
      end
    end,
  })
end

--- Dismiss the built-in renderer's suggestion (it has no API for that: re-enable it on the buffer).
function M.builtin_dismiss()
  local bufnr = vim.api.nvim_get_current_buf()
  if not M.builtin_shown(bufnr) then
    return false
  end
  vim.schedule(function()
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  end)
  return true
end

return M
