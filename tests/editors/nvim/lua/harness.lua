--- A tiny test runner for headless Neovim: runs a test body as a coroutine driven by the main
--- loop (so keys sent with nvim_input are processed like typing), records facts, writes them as JSON
--- to $GEARSHIFT_NVIM_RESULT and quits.
local H = { facts = {}, step = 'start' }

local result_path = assert(os.getenv('GEARSHIFT_NVIM_RESULT'), 'set GEARSHIFT_NVIM_RESULT')
local finished = false

function H.finish(ok, err)
  if finished then
    return
  end
  finished = true
  local payload = { ok = ok, error = err and tostring(err) or vim.NIL, step = H.step, facts = H.facts,
    messages = vim.split(vim.api.nvim_exec2('messages', { output = true }).output or '', '\n') }
  vim.fn.writefile({ vim.json.encode(payload) }, result_path)
  for _, client in ipairs(vim.lsp.get_clients()) do
    client:stop(true)
  end
  vim.cmd('qa!')
end

local co
local function resume(...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    H.finish(false, debug.traceback(co, err))
  end
end

--- Run {body} (a function) as the test; {timeout_ms} guards the whole run.
function H.run(body, timeout_ms)
  co = coroutine.create(function()
    body()
    H.finish(true)
  end)
  vim.defer_fn(function()
    H.finish(false, ('timed out after %d ms in step %q'):format(timeout_ms, H.step))
  end, timeout_ms)
  vim.schedule(resume)
end

function H.sleep(ms)
  vim.defer_fn(resume, ms)
  coroutine.yield()
end

--- Wait until {cond}() returns a truthy value (returned); error after {timeout_ms}.
function H.wait_for(what, timeout_ms, cond)
  H.step = what
  local deadline = vim.uv.now() + timeout_ms
  while true do
    local ok, value = pcall(cond)
    if ok and value then
      return value
    end
    if vim.uv.now() > deadline then
      error(('waited %d ms for %s (last: %s)'):format(timeout_ms, what, tostring(value)))
    end
    H.sleep(50)
  end
end

--- Run {fn} as a named part of the test: an error there is recorded as the fact `error:<name>` and
--- the test goes on with the next part, so each part's facts stand or fall on their own.
function H.part(name, fn)
  H.step = name
  local ok, err = pcall(fn)
  if not ok then
    H.facts['error:' .. name] = debug.traceback(tostring(err))
    pcall(vim.cmd, 'stopinsert')
    pcall(vim.cmd, 'silent! only')
  end
end

function H.fact(key, value)
  H.facts[key] = value == nil and vim.NIL or value
end

--- Ghost text drawn in namespace {ns} of {bufnr}: the concatenated virt_text / virt_lines.
function H.extmark_text(bufnr, ns)
  local parts = {}
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
    local d = mark[4]
    for _, chunk in ipairs(d.virt_text or {}) do
      table.insert(parts, chunk[1])
    end
    for _, line in ipairs(d.virt_lines or {}) do
      table.insert(parts, '\n')
      for _, chunk in ipairs(line) do
        table.insert(parts, chunk[1])
      end
    end
  end
  return table.concat(parts)
end

return H
