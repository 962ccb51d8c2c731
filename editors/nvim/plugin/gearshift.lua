-- User commands for Gearshift. The client itself starts from require("gearshift").setup{}.
if vim.g.loaded_gearshift then
  return
end
vim.g.loaded_gearshift = true

local function gearshift()
  return require('gearshift')
end

vim.api.nvim_create_user_command('GearshiftExplain', function(opts)
  gearshift().explain(opts)
end, { range = true, desc = 'Gearshift: explain the selected lines' })

vim.api.nvim_create_user_command('GearshiftRefactor', function(opts)
  gearshift().refactor(opts)
end, { range = true, nargs = '*', desc = 'Gearshift: refactor the selected lines [instruction]' })

vim.api.nvim_create_user_command('GearshiftEscalate', function(opts)
  gearshift().escalate(opts)
end, {
  range = true, nargs = '?', desc = 'Gearshift: ask the cloud (the last task, or [explain|refactor|review] the range)',
  complete = function() return { 'explain', 'refactor', 'review' } end,
})

vim.api.nvim_create_user_command('GearshiftStatus', function(opts)
  gearshift().status(opts)
end, { bang = true, desc = 'Gearshift: status summary (tier, speed, guard, cloud); ! for the full report' })
