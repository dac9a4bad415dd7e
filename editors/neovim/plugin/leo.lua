-- User commands of the leo plugin. They work once require("leo").setup() has started the client.
if vim.g.loaded_leo then
  return
end
vim.g.loaded_leo = true

vim.api.nvim_create_user_command("LeoSearch", function(opts)
  -- :LeoSearch! sends the results to the quickfix list whatever the `quickfix` option says.
  require("leo").search_ui(opts.args, { quickfix = opts.bang or nil })
end, { nargs = "*", bang = true, desc = "leo: semantic code search" })

vim.api.nvim_create_user_command("LeoIndex", function(opts)
  require("leo").index({ force = opts.bang })
end, { nargs = 0, bang = true, desc = "leo: index the workspace (! re-reads unchanged files)" })

vim.api.nvim_create_user_command("LeoHealth", function()
  require("leo").health()
end, { nargs = 0, desc = "leo: server health" })

vim.api.nvim_create_user_command("LeoStruggles", function()
  require("leo").struggles()
end, { nargs = 0, desc = "leo: recurring errors, into the quickfix list" })
