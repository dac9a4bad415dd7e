--- leo for Neovim (>= 0.11): semantic code search and struggle hints from the leo language server.
---
--- ```lua
--- require("leo").setup({
---   cmd = { "leo-lsp" },                 -- default: <root>/.venv/bin/leo-lsp, then PATH
---   init_options = { dataDir = "~/.local/share/leo" },
--- })
--- ```
---
--- The client is named `leo` and attaches to every file type (leo indexes all text files) beside
--- your other servers, so `vim.lsp.buf.workspace_symbol()` is leo's semantic search too.
local M = {}

M.name = "leo"

--- Defaults; `setup()` deep-merges the user's options over these.
M.defaults = {
  --- Command to start the server; nil: `<root>/.venv/bin/leo-lsp` (or venv/), then `leo-lsp` on PATH.
  cmd = nil,
  --- initializationOptions (camelCase, as in leo's README); also sent as settings.leo.
  init_options = {},
  --- nil attaches to every file type; a list restricts leo to those.
  filetypes = nil,
  --- Files or directories that mark a project root (the workspace folder leo indexes).
  root_markers = { ".git", ".hg", ".jj", ".svn", ".leoignore", "pyproject.toml", "package.json",
    "Cargo.toml", "go.mod" },
  --- :LeoSearch results go to the quickfix list instead of vim.ui.select.
  quickfix = false,
  --- Results per search.
  limit = 20,
  --- "hybrid" | "vector" | "lexical"
  mode = "hybrid",
  --- Forward other clients' diagnostics with leo/observeDiagnostics (feeds struggle hints).
  forward_diagnostics = true,
  --- Wait this long after the last DiagnosticChanged of a buffer before forwarding it.
  forward_debounce_ms = 300,
  --- Extra vim.lsp.Config fields (on_attach, capabilities, handlers, …) merged as given.
  lsp = {},
}

M.config = vim.deepcopy(M.defaults)

local OBSERVE = "leo/observeDiagnostics"

local function notify(msg, level)
  vim.notify("leo: " .. msg, level or vim.log.levels.INFO)
end

-- ---------------------------------------------------------------------------------------------
-- Finding the server.

--- The leo-lsp executable for a project root: its virtualenv first, then PATH.
---@param root string|nil
---@return string|nil
function M.find_server(root)
  if root then
    for _, venv in ipairs({ ".venv", "venv", ".env", "env" }) do
      local exe = vim.fs.joinpath(root, venv, "bin", "leo-lsp")
      if vim.fn.executable(exe) == 1 then
        return exe
      end
    end
  end
  local exe = vim.fn.exepath("leo-lsp")
  return exe ~= "" and exe or nil
end

--- vim.lsp.Config.cmd as a function, so the root's virtualenv can be consulted per client.
local function auto_cmd(dispatchers, config)
  local exe = M.find_server(config.root_dir)
  if not exe then
    notify("`leo-lsp` not found in the project's .venv or on PATH; `pip install leo-lsp` "
      .. "or pass cmd to require('leo').setup()", vim.log.levels.ERROR)
    exe = "leo-lsp" -- let vim.lsp report the failure the usual way
  end
  return vim.lsp.rpc.start({ exe }, dispatchers, { cwd = config.cmd_cwd, env = config.cmd_env })
end

-- ---------------------------------------------------------------------------------------------
-- Clients and commands.

--- The leo client of `bufnr` (default: current), else any running leo client.
---@param bufnr integer|nil
---@return vim.lsp.Client|nil
function M.client(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local clients = vim.lsp.get_clients({ name = M.name, bufnr = bufnr })
  if #clients == 0 then
    clients = vim.lsp.get_clients({ name = M.name })
  end
  return clients[1]
end

--- Run a leo command (workspace/executeCommand with one argument object).
---@param command string e.g. "leo.search"
---@param args table|nil
---@param callback fun(err: table|string|nil, result: any)
---@param bufnr integer|nil
function M.exec(command, args, callback, bufnr)
  local client = M.client(bufnr)
  if not client then
    callback("leo is not running in this buffer (is require('leo').setup() called?)", nil)
    return
  end
  -- An empty Lua table would go out as a JSON array; leo wants one argument object.
  if args == nil or vim.tbl_isempty(args) then
    args = vim.empty_dict()
  end
  local params = { command = command, arguments = { args } }
  client:request("workspace/executeCommand", params, function(err, result)
    callback(err, result)
  end, bufnr)
end

local function err_text(err)
  if type(err) == "table" then
    return err.message or vim.inspect(err)
  end
  return tostring(err)
end

--- Semantic search. `callback(err, result)` with result = {results = {hit…}, tookMs}.
---@param query string
---@param opts table|nil {limit, mode, languages, paths, projectId}
---@param callback fun(err: any, result: table|nil)
function M.search(query, opts, callback)
  opts = opts or {}
  local args = {
    query = query,
    limit = opts.limit or M.config.limit,
    mode = opts.mode or M.config.mode,
    languages = opts.languages,
    paths = opts.paths,
    projectId = opts.projectId,
  }
  M.exec("leo.search", args, callback, opts.bufnr)
end

--- Search hits as quickfix items (1-based lines, hit kept in user_data).
---@param hits table[]
---@return table[]
function M.to_qf_items(hits)
  local items = {}
  for _, hit in ipairs(hits or {}) do
    local first = ""
    for line in (hit.snippet or ""):gmatch("[^\n]+") do
      if line:match("%S") then
        first = vim.trim(line)
        break
      end
    end
    local symbol = hit.symbol ~= vim.NIL and hit.symbol or nil
    local label = symbol and symbol ~= "" and (symbol .. ": " .. first) or first
    table.insert(items, {
      filename = vim.uri_to_fname(hit.uri),
      lnum = hit.range.start.line + 1,
      col = hit.range.start.character + 1,
      end_lnum = hit.range["end"].line + 1,
      text = string.format("%s  (%.2f)", label, hit.score or 0),
      user_data = hit,
    })
  end
  return items
end

local function jump(hit)
  local client = M.client()
  local encoding = client and client.offset_encoding or "utf-16"
  vim.lsp.util.show_document({ uri = hit.uri, range = hit.range }, encoding, { focus = true })
end

--- Search and show the results: vim.ui.select, or the quickfix list (opts.quickfix / config).
---@param query string
---@param opts table|nil {quickfix, limit, mode}
function M.search_ui(query, opts)
  opts = opts or {}
  if not query or vim.trim(query) == "" then
    vim.ui.input({ prompt = "leo search: " }, function(input)
      if input and vim.trim(input) ~= "" then
        M.search_ui(input, opts)
      end
    end)
    return
  end
  local use_qf = opts.quickfix
  if use_qf == nil then
    use_qf = M.config.quickfix
  end
  M.search(query, opts, function(err, result)
    if err then
      notify("search failed: " .. err_text(err), vim.log.levels.ERROR)
      return
    end
    local items = M.to_qf_items(result.results)
    if #items == 0 then
      notify("no results for " .. query)
      return
    end
    if use_qf then
      vim.fn.setqflist({}, " ", { title = "leo: " .. query, items = items })
      vim.cmd("botright copen")
    else
      vim.ui.select(items, {
        prompt = string.format("leo: %s (%d ms)", query, math.floor(result.tookMs or 0)),
        kind = "leo.search",
        format_item = function(item)
          return string.format("%s:%d  %s", vim.fn.fnamemodify(item.filename, ":~:."), item.lnum,
            item.text)
        end,
      }, function(choice)
        if choice then
          jump(choice.user_data)
        end
      end)
    end
  end)
end

--- :LeoIndex — (re-)index every workspace folder; `force` re-reads unchanged files too.
---@param opts table|nil {force, callback}
function M.index(opts)
  opts = opts or {}
  notify("indexing…")
  M.exec("leo.indexWorkspace", { force = opts.force or false }, function(err, result)
    if opts.callback then
      opts.callback(err, result)
    end
    if err then
      notify("indexing failed: " .. err_text(err), vim.log.levels.ERROR)
    else
      notify(string.format("indexed %d files (%d chunks) in %.1f s; %d denied", result.files or 0,
        result.chunks or 0, (result.tookMs or 0) / 1000, result.denied or 0))
    end
  end)
end

--- :LeoHealth — the server's view of its vector store, model, gatekeeper and sync.
---@param callback fun(err: any, result: table|nil)|nil
function M.health(callback)
  M.exec("leo.health", {}, function(err, result)
    if callback then
      callback(err, result)
    end
    if err then
      notify("health check failed: " .. err_text(err), vim.log.levels.ERROR)
      return
    end
    local lines = { string.format("leo %s: %s", result.version or "?", result.status or "?") }
    for name, svc in vim.spairs(result.services or {}) do
      local parts = {}
      for k, v in vim.spairs(type(svc) == "table" and svc or { value = svc }) do
        if v ~= vim.NIL and v ~= "" then
          table.insert(parts, k .. "=" .. tostring(v))
        end
      end
      table.insert(lines, string.format("  %s: %s", name, table.concat(parts, ", ")))
    end
    vim.notify(table.concat(lines, "\n"), result.status == "ok" and vim.log.levels.INFO
      or vim.log.levels.WARN)
  end)
end

--- :LeoStruggles — recurring errors leo noticed, into the quickfix list.
---@param callback fun(err: any, rows: table[]|nil)|nil
function M.struggles(callback)
  M.exec("leo.struggles", { limit = 100 }, function(err, result)
    local rows = type(result) == "table" and (result.struggles or result) or {}
    if callback then
      callback(err, rows)
    end
    if err then
      notify("could not load struggles: " .. err_text(err), vim.log.levels.ERROR)
      return
    end
    local items = {}
    for _, row in ipairs(rows) do
      local file = row.files and row.files[1]
      table.insert(items, {
        filename = file and (file:match("^%a+://") and vim.uri_to_fname(file) or file) or "",
        lnum = 1,
        text = string.format("[%s] %d× %s", row.category, row.occurrences or 0, row.signature),
      })
    end
    if #items == 0 then
      notify("no struggles recorded yet")
      return
    end
    vim.fn.setqflist({}, " ", { title = "leo: struggles", items = items })
    vim.cmd("botright copen")
  end)
end

--- Change settings live (workspace/didChangeConfiguration with {leo = options}).
---@param init_options table
function M.update(init_options)
  M.config.init_options = vim.tbl_deep_extend("force", M.config.init_options, init_options)
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    client.settings = { leo = M.config.init_options }
    client:notify("workspace/didChangeConfiguration", { settings = client.settings })
  end
end

-- ---------------------------------------------------------------------------------------------
-- Forwarding other clients' diagnostics (leo/observeDiagnostics).

--- Namespaces that belong to leo's own clients (push and pull), whose diagnostics stay home.
local function leo_namespaces()
  local own = {}
  for name, ns in pairs(vim.api.nvim_get_namespaces()) do
    if name:match("^vim%.lsp%." .. M.name .. "%.%d+") then
      own[ns] = true
    end
  end
  return own
end

--- A vim.Diagnostic as an LSP Diagnostic (the original when it came from an LSP client).
---@param d vim.Diagnostic
---@return table
function M.to_lsp_diagnostic(d)
  if d.user_data and type(d.user_data.lsp) == "table" then
    return d.user_data.lsp
  end
  return {
    range = {
      start = { line = d.lnum, character = d.col },
      ["end"] = { line = d.end_lnum or d.lnum, character = d.end_col or d.col },
    },
    severity = d.severity,
    message = d.message,
    source = d.source,
    code = d.code,
  }
end

--- The diagnostics of `bufnr` that leo should see: everyone's but leo's own.
---@param bufnr integer
---@return table[]
function M.foreign_diagnostics(bufnr)
  local own = leo_namespaces()
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if not own[d.namespace] and d.source ~= M.name then
      table.insert(out, M.to_lsp_diagnostic(d))
    end
  end
  return out
end

local timers = {} ---@type table<integer, uv.uv_timer_t>
local last_sent = {} ---@type table<integer, string>

--- Send the current foreign diagnostics of `bufnr` to leo now (if they changed).
---@param bufnr integer
function M.forward_diagnostics(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  local client = vim.lsp.get_clients({ name = M.name, bufnr = bufnr })[1]
  if not client then
    return
  end
  local diagnostics = M.foreign_diagnostics(bufnr)
  if last_sent[bufnr] == nil and #diagnostics == 0 then
    return -- nothing was ever reported for this buffer: an empty set tells leo nothing
  end
  local fingerprint = vim.json.encode(diagnostics)
  -- Attempt counting on the server keys on the text too, so an unchanged set after an edit still
  -- matters; only identical re-publications for the same buffer version are dropped here.
  local key = fingerprint .. "@" .. vim.b[bufnr].changedtick
  if last_sent[bufnr] == key then
    return
  end
  last_sent[bufnr] = key
  -- leo counts an error once per version of the text, so it must see the edit that produced
  -- these diagnostics first: send pending didChange notifications now.
  local changetracking = vim.lsp._changetracking
  if changetracking and changetracking.flush then
    pcall(changetracking.flush, client, bufnr)
  end
  client:notify(OBSERVE, { uri = vim.uri_from_bufnr(bufnr), diagnostics = diagnostics })
end

local function schedule_forward(bufnr)
  local timer = timers[bufnr]
  if not timer then
    timer = assert(vim.uv.new_timer())
    timers[bufnr] = timer
  end
  timer:stop()
  -- Servers publish several times per edit; forward the settled state once.
  timer:start(M.config.forward_debounce_ms, 0, vim.schedule_wrap(function()
    M.forward_diagnostics(bufnr)
  end))
end

local function clear_buffer_state(bufnr)
  local timer = timers[bufnr]
  if timer then
    timer:stop()
    timer:close()
    timers[bufnr] = nil
  end
  last_sent[bufnr] = nil
end

-- ---------------------------------------------------------------------------------------------

--- Configure and enable the `leo` client (vim.lsp.config + vim.lsp.enable).
---@param opts table|nil see M.defaults
function M.setup(opts)
  if vim.fn.has("nvim-0.11") ~= 1 then
    notify("needs Neovim 0.11 or newer (vim.lsp.config)", vim.log.levels.ERROR)
    return
  end
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  local init_options = M.config.init_options
  if vim.tbl_isempty(init_options) then
    init_options = vim.empty_dict()
  end
  local config = vim.tbl_deep_extend("force", {
    cmd = M.config.cmd or auto_cmd,
    filetypes = M.config.filetypes,
    root_markers = M.config.root_markers,
    init_options = init_options,
    -- Sent again after initialize as workspace/didChangeConfiguration; leo reads the `leo` key.
    settings = { leo = init_options },
  }, M.config.lsp or {})
  vim.lsp.config(M.name, config)
  vim.lsp.enable(M.name)

  local group = vim.api.nvim_create_augroup("leo", { clear = true })
  if M.config.forward_diagnostics then
    vim.api.nvim_create_autocmd("DiagnosticChanged", {
      group = group,
      desc = "leo: forward other servers' diagnostics",
      callback = function(args)
        if #vim.lsp.get_clients({ name = M.name, bufnr = args.buf }) > 0 then
          schedule_forward(args.buf)
        end
      end,
    })
    vim.api.nvim_create_autocmd({ "BufWipeout", "LspDetach" }, {
      group = group,
      callback = function(args)
        if args.event == "BufWipeout" or (args.data and vim.lsp.get_client_by_id(args.data.client_id)
            and vim.lsp.get_client_by_id(args.data.client_id).name == M.name) then
          clear_buffer_state(args.buf)
        end
      end,
    })
  end
end

return M
