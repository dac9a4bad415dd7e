-- :checkhealth leo
local M = {}

function M.check()
  vim.health.start("leo")
  if vim.fn.has("nvim-0.11") == 1 then
    vim.health.ok("Neovim " .. tostring(vim.version()))
  else
    vim.health.error("Neovim 0.11 or newer is required (vim.lsp.config / vim.lsp.enable)")
  end
  local leo = require("leo")
  local cmd = leo.config.cmd
  if cmd then
    local exe = type(cmd) == "table" and cmd[1] or nil
    if exe and vim.fn.executable(exe) == 1 then
      vim.health.ok("server command: " .. table.concat(cmd, " "))
    elseif exe then
      vim.health.error("server command is not executable: " .. exe)
    else
      vim.health.ok("server command: custom function")
    end
  else
    local root = vim.fs.root(0, leo.config.root_markers)
    local exe = leo.find_server(root)
    if exe then
      vim.health.ok("leo-lsp: " .. exe)
    else
      vim.health.error("leo-lsp not found in the project's .venv or on PATH",
        { "pip install leo-lsp", "or require('leo').setup({ cmd = { '/path/to/leo-lsp' } })" })
    end
  end
  local clients = vim.lsp.get_clients({ name = leo.name })
  if #clients == 0 then
    vim.health.warn("no leo client is running (call require('leo').setup() and open a file)")
  end
  for _, client in ipairs(clients) do
    vim.health.ok(string.format("client %d: root %s", client.id, client.root_dir or "(single file)"))
  end
end

return M
