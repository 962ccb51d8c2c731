-- Minimal config for the headless tests: this checkout's plugin on the runtimepath, nothing else.
local here = vim.fs.dirname(vim.fs.abspath(debug.getinfo(1, 'S').source:sub(2)))
local root = vim.fs.normalize(here .. '/../../..')
vim.opt.runtimepath:prepend(root .. '/editors/nvim')
vim.opt.runtimepath:prepend(here) -- tests/editors/nvim/lua/harness.lua
vim.o.swapfile = false
vim.o.shadafile = 'NONE'
vim.o.more = false
vim.g.gearshift_test_root = root
