-- Headless end-to-end run of the leo plugin against the real server.
--
--   nvim --headless --clean -l e2e.lua <plugin_root> <workspace> <server> <data_dir> <result.json>
--
-- Each phase runs in pcall and records what it saw; the JSON result file is written at the end
-- whatever happens, and the pytest side (tests/editors/test_neovim.py) asserts on it.
local plugin_root, workspace, server, data_dir, result_path = unpack(_G.arg)
assert(result_path, "usage: e2e.lua <plugin_root> <workspace> <server> <data_dir> <result.json>")

local t0 = vim.uv.hrtime()
local result = { phases = {}, transcript = {} }

local function log(fmt, ...)
  local line = string.format("[+%6.2fs] " .. fmt, (vim.uv.hrtime() - t0) / 1e9, ...)
  table.insert(result.transcript, line)
  io.stderr:write(line .. "\n")
end

local function wait_for(ms, cond, what)
  if not vim.wait(ms, cond, 20) then
    error("timed out after " .. ms .. " ms waiting for " .. what, 0)
  end
end

local function phase(name, fn)
  local started = vim.uv.hrtime()
  local ok, err = pcall(fn)
  local ms = math.floor((vim.uv.hrtime() - started) / 1e6)
  result.phases[name] = { ok = ok, error = (not ok) and tostring(err) or nil, ms = ms }
  log("%s: %s (%d ms)%s", name, ok and "ok" or "FAILED", ms, ok and "" or (" — " .. tostring(err)))
  return ok
end

--- Call a leo command and wait for its answer.
local function exec_sync(leo, command, args, ms)
  local done, err, res = false, nil, nil
  leo.exec(command, args, function(e, r)
    done, err, res = true, e, r
  end)
  wait_for(ms or 30000, function() return done end, command)
  if err then
    error(command .. ": " .. (type(err) == "table" and (err.message or vim.inspect(err)) or tostring(err)), 0)
  end
  return res
end

--- Diagnostics published by the leo client itself (its LSP namespace), not look-alikes.
local function leo_diagnostics(bufnr)
  local own = {}
  for name, ns in pairs(vim.api.nvim_get_namespaces()) do
    if name:match("^vim%.lsp%.leo%.%d+") then
      own[ns] = true
    end
  end
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if own[d.namespace] then
      local lsp = d.user_data and d.user_data.lsp or {}
      table.insert(out, {
        message = d.message,
        source = d.source,
        code = d.code,
        severity = d.severity,
        lnum = d.lnum,
        related = lsp.relatedInformation and #lsp.relatedInformation or 0,
      })
    end
  end
  return out
end

vim.opt.rtp:prepend(plugin_root)
vim.cmd.runtime("plugin/leo.lua")
local leo = require("leo")
local billing = vim.fs.joinpath(workspace, "billing.py")
local network = vim.fs.joinpath(workspace, "network.py")
local client

phase("attach", function()
  leo.setup({
    cmd = { server },
    init_options = { dataDir = data_dir, index = { debounceMs = 50 }, struggle = { threshold = 3 } },
    quickfix = true,
    forward_debounce_ms = 100,
  })
  vim.cmd.edit(billing)
  local buf = vim.api.nvim_get_current_buf()
  wait_for(30000, function()
    client = vim.lsp.get_clients({ name = "leo", bufnr = buf })[1]
    return client ~= nil and client.initialized == true
  end, "the leo client to initialize")
  local caps = client.server_capabilities or {}
  result.attach = {
    name = client.name,
    root_dir = client.root_dir,
    filetype = vim.bo[buf].filetype,
    init_options = client.config.init_options,
    workspace_symbol = caps.workspaceSymbolProvider and true or false,
    commands = caps.executeCommandProvider and caps.executeCommandProvider.commands or {},
  }
  -- A file type no other plugin knows still gets leo: it attaches to every file type.
  vim.cmd.edit(vim.fs.joinpath(workspace, "notes.txt"))
  local txt = vim.api.nvim_get_current_buf()
  wait_for(10000, function()
    return #vim.lsp.get_clients({ name = "leo", bufnr = txt }) > 0
  end, "leo to attach to a .txt buffer")
  result.attach.txt_attached = true
  vim.cmd.edit(billing)
end)

phase("index", function()
  result.index = exec_sync(leo, "leo.indexWorkspace", {}, 120000)
end)

phase("search", function()
  local done, err, res = false, nil, nil
  leo.search("add up invoice line items and apply tax", { limit = 5 }, function(e, r)
    done, err, res = true, e, r
  end)
  wait_for(30000, function() return done end, "leo.search")
  assert(not err, vim.inspect(err))
  result.search = { tookMs = res.tookMs, hits = {} }
  for _, hit in ipairs(res.results) do
    table.insert(result.search.hits, {
      symbol = hit.symbol ~= vim.NIL and hit.symbol or nil,
      file = vim.fs.basename(vim.uri_to_fname(hit.uri)),
      line = hit.range.start.line,
      score = hit.score,
    })
  end
end)

phase("quickfix", function()
  vim.fn.setqflist({}, "r", { items = {} })
  vim.cmd("LeoSearch retry a request with exponential backoff")
  wait_for(30000, function() return #vim.fn.getqflist() > 0 end, ":LeoSearch to fill the quickfix list")
  result.quickfix = {}
  for _, item in ipairs(vim.fn.getqflist()) do
    table.insert(result.quickfix, {
      file = vim.fs.basename(vim.api.nvim_buf_get_name(item.bufnr)),
      lnum = item.lnum,
      text = item.text,
    })
  end
  result.quickfix_title = vim.fn.getqflist({ title = 1 }).title
  vim.cmd("cclose")
  vim.cmd.edit(billing)
end)

phase("workspace_symbol", function()
  local resp = client:request_sync("workspace/symbol", { query = "invoice total with tax" }, 30000, 0)
  assert(resp and not resp.err, vim.inspect(resp))
  result.workspace_symbol = {}
  for _, s in ipairs(resp.result or {}) do
    table.insert(result.workspace_symbol, s.name)
  end
end)

phase("health", function()
  local done, err, res = false, nil, nil
  leo.health(function(e, r)
    done, err, res = true, e, r
  end)
  wait_for(10000, function() return done end, "leo.health")
  assert(not err and res, "leo.health: " .. vim.inspect(err))
  result.health = { status = res and res.status, version = res and res.version }
end)

-- Struggle path 1: the user (or a tool) reports the same error three times.
phase("report_struggle", function()
  vim.cmd.edit(network)
  local buf = vim.api.nvim_get_current_buf()
  wait_for(10000, function()
    return #vim.lsp.get_clients({ name = "leo", bufnr = buf }) > 0
  end, "leo to attach to network.py")
  result.reports = {}
  local args = {
    errorMessage = "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
    uri = vim.uri_from_fname(network),
    range = { start = { line = 7, character = 12 }, ["end"] = { line = 7, character = 40 } },
    language = "python",
  }
  for _ = 1, 3 do
    local r = exec_sync(leo, "leo.reportStruggle", args)
    table.insert(result.reports, { category = r.category, occurrences = r.occurrences,
      hint = r.hint ~= nil and r.hint ~= vim.NIL })
  end
end)

phase("report_hint", function()
  local buf = vim.fn.bufnr(network)
  wait_for(20000, function() return #leo_diagnostics(buf) > 0 end,
    "a diagnostic with source 'leo' on network.py")
  result.report_hint = leo_diagnostics(buf)
end)

-- Struggle path 2: another server keeps publishing the same error while the user edits.
phase("forward", function()
  vim.cmd.edit(billing)
  local buf = vim.api.nvim_get_current_buf()
  local sent = {}
  local orig = client.notify
  client.notify = function(self, method, params)
    if method == "leo/observeDiagnostics" and params.uri == vim.uri_from_fname(billing) then
      table.insert(sent, params)
    end
    return orig(self, method, params)
  end
  local ns = vim.api.nvim_create_namespace("fake-pyright")
  for i = 1, 3 do
    -- An edit, then the other server's verdict on the new text: one attempt each.
    vim.api.nvim_buf_set_lines(buf, -1, -1, false, { "# attempt " .. i })
    vim.diagnostic.set(ns, buf, {
      {
        lnum = 5, col = 14, end_lnum = 5, end_col = 24,
        severity = vim.diagnostic.severity.ERROR, source = "Pyright",
        code = "reportAttributeAccessIssue",
        message = 'Cannot access attribute "price" for class "dict[str, int]"',
      },
      -- Something that claims to be leo's own must never be echoed back.
      { lnum = 1, col = 0, severity = vim.diagnostic.severity.HINT, source = "leo",
        message = "a leo hint" },
    })
    wait_for(5000, function() return #sent >= i end, "forward #" .. i)
  end
  client.notify = nil -- back to the class method
  result.forwarded = {}
  for _, p in ipairs(sent) do
    local sources = {}
    for _, d in ipairs(p.diagnostics) do
      table.insert(sources, d.source)
    end
    table.insert(result.forwarded, { file = vim.fs.basename(vim.uri_to_fname(p.uri)),
      count = #p.diagnostics, sources = sources,
      line = p.diagnostics[1] and p.diagnostics[1].range.start.line })
  end
end)

phase("forward_hint", function()
  local buf = vim.fn.bufnr(billing)
  wait_for(20000, function() return #leo_diagnostics(buf) > 0 end,
    "a diagnostic with source 'leo' on billing.py after forwarded diagnostics")
  result.forward_hint = leo_diagnostics(buf)
end)

phase("struggles", function()
  local rows = exec_sync(leo, "leo.struggles", { limit = 10 })
  rows = rows.struggles or rows
  result.struggles = {}
  for _, row in ipairs(rows) do
    table.insert(result.struggles, { category = row.category, occurrences = row.occurrences,
      signature = row.signature })
  end
end)

phase("shutdown", function()
  client:stop()
  wait_for(10000, function() return client:is_stopped() end, "the client to stop")
  result.stopped = true
end)

result.seconds = (vim.uv.hrtime() - t0) / 1e9
local f = assert(io.open(result_path, "w"))
f:write(vim.json.encode(result))
f:close()
vim.cmd("qa!")
