#!/usr/bin/env node
/*
 * End-to-end check of the extension's protocol layer against the real Python server.
 *
 * VS Code itself cannot run here, so this drives `leo-lsp` with vscode-languageserver-protocol
 * (the layer under vscode-languageclient) exactly as the extension does: the server is found by
 * the extension's own resolver (a workspace `.venv/bin/leo-lsp`), initializationOptions come from
 * the extension's settings mapping, and hits are rendered with its picker code.
 *
 *   initialize → initialized → didChangeConfiguration → leo.indexWorkspace → leo.search
 *   → workspace/symbol → leo.health → leo/observeDiagnostics → shutdown → exit
 *
 * Usage: node test/e2e.js            (needs `npm run compile` first)
 * Env:   LEO_LSP_COMMAND  JSON array or a path of the real server (default: `leo-lsp` on PATH)
 *        LEO_E2E_KEEP=1   keep the temporary workspace
 * Exit status 0 when every check passed; a JSON summary goes to stdout, a transcript to stderr.
 */
"use strict";

const assert = require("node:assert/strict");
const cp = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { pathToFileURL } = require("node:url");
const {
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
} = require("vscode-languageserver-protocol/node");

const out = path.join(__dirname, "..", "out");
for (const mod of ["config.js", "serverPath.js", "searchItems.js", "protocol.js"]) {
  if (!fs.existsSync(path.join(out, mod))) {
    console.error(`e2e: ${path.join(out, mod)} is missing; run \`npm run compile\` first`);
    process.exit(2);
  }
}
const { buildServerOptions, buildConfigurationSettings } = require(path.join(out, "config.js"));
const { resolveServer } = require(path.join(out, "serverPath.js"));
const { presentHit } = require(path.join(out, "searchItems.js"));
const { Commands, ObserveDiagnosticsMethod } = require(path.join(out, "protocol.js"));

const TIMEOUT_MS = Number(process.env.LEO_E2E_TIMEOUT_MS || 240_000);
const started = Date.now();
const log = (msg) => process.stderr.write(`[e2e +${((Date.now() - started) / 1000).toFixed(2)}s] ${msg}\n`);

function serverCommand() {
  const raw = process.env.LEO_LSP_COMMAND;
  if (!raw) {
    return ["leo-lsp"];
  }
  if (raw.trim().startsWith("[")) {
    return JSON.parse(raw);
  }
  return [raw];
}

const BILLING_PY = `"""Invoices for the shop."""


def compute_invoice_total(items, tax_rate):
    """Add up the price of every line item and apply the sales tax."""
    subtotal = sum(item.price * item.quantity for item in items)
    return round(subtotal * (1 + tax_rate), 2)


def parse_iso_date(text):
    """Read a YYYY-MM-DD string into a (year, month, day) tuple."""
    year, month, day = text.split("-")
    return int(year), int(month), int(day)
`;

const NETWORK_PY = `import time


def fetch_with_retry(session, url, attempts=5):
    """GET a URL, sleeping longer after each failure (exponential backoff)."""
    for attempt in range(attempts):
        try:
            return session.get(url, timeout=10)
        except ConnectionError:
            time.sleep(2 ** attempt)
    raise RuntimeError(f"gave up on {url}")
`;

function makeWorkspace() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "leo-vscode-e2e-"));
  const ws = path.join(tmp, "shop");
  fs.mkdirSync(ws);
  fs.writeFileSync(path.join(ws, "billing.py"), BILLING_PY);
  fs.writeFileSync(path.join(ws, "network.py"), NETWORK_PY);
  // A workspace virtualenv whose leo-lsp forwards to the real server: the extension's resolver
  // must pick it before PATH.
  const bin = path.join(ws, ".venv", "bin");
  fs.mkdirSync(bin, { recursive: true });
  const real = serverCommand().map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  fs.writeFileSync(path.join(bin, "leo-lsp"), `#!/bin/sh\nexec ${real} "$@"\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(ws, ".gitignore"), ".venv/\n");
  return { tmp, ws, data: path.join(tmp, "data") };
}

async function main() {
  const { tmp, ws, data } = makeWorkspace();
  const summary = { workspace: ws, steps: {} };
  const step = (name, value) => {
    summary.steps[name] = value;
    log(`${name}: ${JSON.stringify(value)}`);
  };

  // 1. The extension's resolver finds the workspace venv's server.
  const resolved = resolveServer({ configured: "", workspaceFolders: [ws] });
  assert.ok(resolved, "resolveServer found nothing");
  assert.equal(resolved.source, "workspace-venv", `expected the workspace .venv, got ${JSON.stringify(resolved)}`);
  assert.equal(resolved.command, path.join(ws, ".venv", "bin", "leo-lsp"));
  const viaSetting = resolveServer({ configured: "/opt/leo/bin/leo-lsp", workspaceFolders: [ws] });
  assert.deepEqual(viaSetting, { command: "/opt/leo/bin/leo-lsp", source: "setting" });
  step("resolveServer", resolved);

  // 2. Settings → initializationOptions, as the extension builds them from `leo.*`.
  const settings = {
    serverPath: "",
    serverArgs: [],
    dataDir: data,
    "embedding.provider": "local",
    "embedding.batchSize": 16,
    "gatekeeper.mode": "rules",
    "index.respectGitignore": true,
    "index.debounceMs": 50,
    "struggle.enabled": true,
    "struggle.threshold": 3,
    "search.limit": 20,
    "struggle.forwardDiagnostics": true,
    "firebase.enabled": false,
    "firebase.projectId": "",
  };
  const get = (key) => settings[key];
  const initializationOptions = buildServerOptions(get);
  assert.deepEqual(initializationOptions, {
    dataDir: data,
    embedding: { provider: "local", batchSize: 16 },
    gatekeeper: { mode: "rules" },
    index: { respectGitignore: true, debounceMs: 50 },
    struggle: { enabled: true, threshold: 3 },
    firebase: { enabled: false },
  });
  step("initializationOptions", initializationOptions);

  // 3. Start the server over stdio.
  const child = cp.spawn(resolved.command, [], { cwd: ws, stdio: ["pipe", "pipe", "pipe"] });
  childRef = child;
  child.stderr.on("data", (chunk) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-4000);
  });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  let finishing = false;
  // A server that dies mid-run would leave requests pending forever: fail with its stderr.
  void exited.then((e) => {
    if (!finishing) {
      log(`FAILED: the server exited early (${JSON.stringify(e)}); its stderr ends with:\n${stderrTail}`);
      process.exit(1);
    }
  });
  const connection = createMessageConnection(
    new StreamMessageReader(child.stdout),
    new StreamMessageWriter(child.stdin),
  );
  const progress = [];
  const logs = [];
  const shown = [];
  const diagnostics = new Map();
  connection.onRequest("window/workDoneProgress/create", () => null);
  connection.onRequest("workspace/configuration", (p) => p.items.map((item) =>
    item.section === "leo" ? buildServerOptions(get) : null));
  connection.onRequest("client/registerCapability", () => null);
  connection.onRequest("client/unregisterCapability", () => null);
  connection.onRequest("window/showMessageRequest", (p) => {
    shown.push(p.message);
    return null;
  });
  connection.onRequest("workspace/workspaceFolders", () => [
    { uri: pathToFileURL(ws).href, name: "shop" },
  ]);
  connection.onNotification("$/progress", (p) => progress.push(p));
  connection.onNotification("window/logMessage", (p) => logs.push(p.message));
  connection.onNotification("window/showMessage", (p) => shown.push(p.message));
  connection.onNotification("textDocument/publishDiagnostics", (p) => diagnostics.set(p.uri, p.diagnostics));
  connection.onError((e) => log(`connection error: ${e}`));
  connection.listen();

  const wsUri = pathToFileURL(ws).href;
  const init = await connection.sendRequest("initialize", {
    processId: process.pid,
    clientInfo: { name: "leo-vscode-e2e", version: "0.1.0" },
    rootUri: wsUri,
    workspaceFolders: [{ uri: wsUri, name: "shop" }],
    initializationOptions,
    capabilities: {
      window: { workDoneProgress: true, showMessage: {} },
      workspace: {
        configuration: true,
        workspaceFolders: true,
        didChangeConfiguration: { dynamicRegistration: true },
        symbol: { dynamicRegistration: false },
        executeCommand: { dynamicRegistration: false },
      },
      textDocument: {
        synchronization: { didSave: true },
        publishDiagnostics: { relatedInformation: true, codeDescriptionSupport: true },
      },
    },
  });
  const caps = init.capabilities;
  const advertised = caps.executeCommandProvider ? caps.executeCommandProvider.commands : [];
  for (const cmd of [Commands.search, Commands.indexWorkspace, Commands.health]) {
    assert.ok(advertised.includes(cmd), `server does not advertise ${cmd} (got ${advertised})`);
  }
  assert.ok(caps.workspaceSymbolProvider, "server does not advertise workspace/symbol");
  step("initialize", { server: init.serverInfo, commands: advertised });
  connection.sendNotification("initialized", {});

  // The extension re-sends settings on every change, wrapped in the `leo` section.
  connection.sendNotification("workspace/didChangeConfiguration", {
    settings: buildConfigurationSettings(get),
  });

  // 4. Index, then search.
  const exec = (command, args) => connection.sendRequest("workspace/executeCommand", {
    command,
    arguments: [args],
  });
  const index = await exec(Commands.indexWorkspace, { force: false });
  assert.ok(index.files >= 2, `indexWorkspace reported ${index.files} files`);
  assert.ok(index.chunks >= 2, `indexWorkspace reported ${index.chunks} chunks`);
  step("indexWorkspace", index);
  const ends = progress.filter((p) => p.value && p.value.kind === "end").length;
  const begins = progress.filter((p) => p.value && p.value.kind === "begin").length;
  assert.ok(begins >= 1 && ends >= 1, `expected $/progress begin and end, got ${JSON.stringify(progress)}`);
  step("progress", { notifications: progress.length, begins, ends });

  const search = await exec(Commands.search, { query: "add up invoice line items and apply tax", limit: 5 });
  assert.ok(Array.isArray(search.results), "leo.search returned no results array");
  assert.equal(typeof search.tookMs, "number");
  const hit = search.results.find((h) => h.uri.endsWith("/billing.py") && (h.symbol || "").includes("compute_invoice_total"));
  assert.ok(hit, `no hit on compute_invoice_total: ${JSON.stringify(search.results.map((h) => [h.uri, h.symbol, h.score]))}`);
  assert.equal(search.results[0].symbol, hit.symbol, "the invoice function should rank first");
  for (const key of ["uri", "range", "score", "language", "symbol", "kind", "snippet"]) {
    assert.ok(key in hit, `search hit lacks ${key}`);
  }
  assert.equal(hit.language, "python");
  assert.ok(hit.snippet.includes("subtotal"), "snippet does not show the function body");
  const shownHit = presentHit(hit, [ws]);
  assert.ok(shownHit.label.includes("compute_invoice_total"), shownHit.label);
  assert.ok(shownHit.description.startsWith(`billing.py:${hit.range.start.line + 1}`), shownHit.description);
  step("search", { tookMs: search.tookMs, top: search.results.slice(0, 3).map((h) => [h.symbol, +h.score.toFixed(3)]), picker: shownHit });

  const retry = await exec(Commands.search, { query: "retry a request with exponential backoff", limit: 3 });
  assert.equal(retry.results[0] && retry.results[0].symbol, "fetch_with_retry",
    `backoff query: ${JSON.stringify(retry.results.map((h) => h.symbol))}`);

  const symbols = await connection.sendRequest("workspace/symbol", { query: "invoice total with tax" });
  assert.ok(Array.isArray(symbols) && symbols.some((s) => s.name.includes("compute_invoice_total")),
    `workspace/symbol: ${JSON.stringify(symbols)}`);
  step("workspaceSymbol", symbols.slice(0, 3).map((s) => s.name));

  // 5. Health, as the status bar shows it.
  const health = await exec(Commands.health, {});
  assert.equal(typeof health.status, "string");
  assert.ok(health.services && "vectorDb" in health.services && "embedding" in health.services,
    `health: ${JSON.stringify(health)}`);
  step("health", { status: health.status, version: health.version });

  // 6. A forwarded diagnostic (the shape code2ProtocolConverter produces) must not upset the server.
  const billingUri = pathToFileURL(path.join(ws, "billing.py")).href;
  connection.sendNotification(ObserveDiagnosticsMethod, {
    uri: billingUri,
    diagnostics: [{
      range: { start: { line: 5, character: 4 }, end: { line: 5, character: 12 } },
      severity: 1,
      source: "Pylance",
      code: "reportAttributeAccessIssue",
      message: 'Cannot access attribute "price" for class "dict[str, int]"',
    }],
  });
  // A request after the notification proves the server is still answering.
  const after = await exec(Commands.health, {});
  assert.equal(after.status, health.status);
  step("observeDiagnostics", { forwarded: 1, serverAlive: true });

  // 7. Orderly shutdown.
  finishing = true;
  await connection.sendRequest("shutdown");
  connection.sendNotification("exit");
  const exit = await Promise.race([
    exited,
    new Promise((resolve) => setTimeout(() => resolve({ code: "timeout" }), 10_000)),
  ]);
  connection.dispose();
  assert.equal(exit.code, 0, `server exit: ${JSON.stringify(exit)}; stderr: ${stderrTail}`);
  step("exit", exit);

  const errors = shown.filter((m) => /invalid option/i.test(m));
  assert.deepEqual(errors, [], "the server rejected options the extension sent");
  summary.ok = true;
  summary.seconds = +((Date.now() - started) / 1000).toFixed(2);
  summary.logMessages = logs.length;
  if (!process.env.LEO_E2E_KEEP) {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
}

let childRef;
let stderrTail = "";
const timer = setTimeout(() => {
  log(`timed out after ${TIMEOUT_MS} ms; server stderr ends with:\n${stderrTail}`);
  if (childRef && childRef.exitCode === null) childRef.kill("SIGKILL");
  process.exit(1);
}, TIMEOUT_MS);

main()
  .then(() => {
    clearTimeout(timer);
    process.exit(0);
  })
  .catch((err) => {
    log(`FAILED: ${err && err.stack ? err.stack : err}\nserver stderr ends with:\n${stderrTail}`);
    clearTimeout(timer);
    if (childRef && childRef.exitCode === null) childRef.kill("SIGKILL");
    process.exit(1);
  });
