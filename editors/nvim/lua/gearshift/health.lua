--- `:checkhealth gearshift`
local M = {}

function M.check()
  local health = vim.health
  local gearshift = require('gearshift')

  health.start('Neovim')
  if vim.fn.has('nvim-0.11') == 1 and vim.lsp.config then
    health.ok('Neovim ' .. tostring(vim.version()) .. ' has vim.lsp.config / vim.lsp.enable')
  else
    health.error('Gearshift needs Neovim 0.11 or newer')
  end
  if vim.lsp.inline_completion then
    health.ok('vim.lsp.inline_completion is available (built-in ghost text)')
  else
    health.info('no vim.lsp.inline_completion (Neovim < 0.12): Gearshift draws ghost text itself')
  end
  health.info('renderer: ' .. gearshift.renderer() .. ' (configured: ' .. tostring(gearshift.config.renderer) .. ')')

  health.start('Server')
  local cmd = gearshift.with_log_file(gearshift.resolve_cmd(gearshift.config.cmd))
  if type(cmd) == 'table' then
    if vim.fn.executable(cmd[1]) == 1 then
      health.ok('server command: ' .. table.concat(cmd, ' '))
    else
      health.error('server command not found: ' .. cmd[1], {
        'pip install gearshift (or `make install` in a checkout), then open Neovim from that directory',
        'or pass require("gearshift").setup{ cmd = { "/path/to/gearshift", "serve" } }',
      })
    end
  else
    health.info('server command is a function (custom transport)')
  end

  health.start('Client')
  local clients = vim.lsp.get_clients({ name = gearshift.name })
  if #clients == 0 then
    health.warn('no gearshift client is running', {
      'call require("gearshift").setup{} in your config and open a file of a configured filetype',
    })
  end
  for _, client in ipairs(clients) do
    local caps = client.server_capabilities or {}
    local names = {}
    for b in pairs(client.attached_buffers) do
      local n = vim.api.nvim_buf_get_name(b)
      table.insert(names, n ~= '' and vim.fn.fnamemodify(n, ':t') or ('buffer ' .. b))
    end
    table.sort(names)
    health.ok(('client %d running (root %s), attached to %s'):format(
      client.id, tostring(client.root_dir or 'none: single-file mode'), table.concat(names, ', ')))
    if caps.inlineCompletionProvider then
      health.ok('server advertises inlineCompletionProvider')
    else
      health.warn('server does not advertise inlineCompletionProvider')
    end
  end
  local s = gearshift.last_status
  if s then
    if s.state == 'error' then
      health.error('server error: ' .. tostring(s.message ~= vim.NIL and s.message or s.state))
    else
      health.ok(('server %s on %s'):format(tostring(s.state), tostring(s.tier)))
    end
  else
    health.info('no gearshift/status notification yet')
  end
  local log_file = gearshift.log_file()
  if log_file then
    health.info('server log: ' .. log_file)
  end

  -- :checkhealth runs in a buffer of its own: report on the file buffer the user came from.
  health.start('Current buffer')
  local bufnr = gearshift.last_file_buffer
  if not (bufnr and vim.api.nvim_buf_is_valid(bufnr)) then
    health.info('no file buffer opened yet')
    return
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  name = name ~= '' and vim.fn.fnamemodify(name, ':~:.') or ('buffer ' .. bufnr)
  local why = gearshift.not_served_reason(bufnr)
  if why then
    health.warn(('%s (%s) is not served by Gearshift: %s'):format(name, vim.bo[bufnr].filetype, why), {
      'require("gearshift").setup{ filetypes = vim.list_extend(vim.deepcopy(require("gearshift").default_filetypes), { "'
        .. vim.bo[bufnr].filetype .. '" }) }',
    })
  else
    health.ok(('%s (%s) is served'):format(name, vim.bo[bufnr].filetype))
  end
end

return M
