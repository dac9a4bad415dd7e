/**
 * The leo extension: starts `leo-lsp` beside the editor's other language servers and adds
 * semantic search, indexing, health and struggle history on top of plain LSP.
 */
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  State,
  TransportKind,
  type LanguageClientOptions,
  type ProgressToken,
  type ServerOptions,
  type WorkDoneProgressBegin,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
} from "vscode-languageclient/node";
import { buildConfigurationSettings, buildServerOptions, type SettingGetter } from "./config";
import {
  Commands,
  LeoDiagnosticSource,
  ObserveDiagnosticsMethod,
  type Health,
  type IndexResult,
  type SearchArgs,
  type SearchHit,
  type SearchResult,
  type StruggleRow,
} from "./protocol";
import { presentHit } from "./searchItems";
import { resolveServer } from "./serverPath";

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let status: StatusItem;

const settingGetter: SettingGetter = (key) => vscode.workspace.getConfiguration("leo").get(key);

function workspaceRoots(): string[] {
  return (vscode.workspace.workspaceFolders ?? [])
    .filter((f) => f.uri.scheme === "file")
    .map((f) => f.uri.fsPath);
}

// ---------------------------------------------------------------------------------------------
// Status bar: indexing progress ($/progress) and health, in one item.

interface ProgressState {
  title: string;
  message?: string;
  percentage?: number;
}

class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly progress = new Map<ProgressToken, ProgressState>();
  private health: Health | undefined;
  private state: "starting" | "running" | "stopped" | "missing" = "starting";
  /** While "Leo: Index Workspace" runs, server progress also feeds its notification. */
  sink: vscode.Progress<{ message?: string; increment?: number }> | undefined;
  private sinkReported = 0;

  constructor() {
    this.item = vscode.window.createStatusBarItem("leo.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "leo";
    this.item.command = "leo.showHealth";
    this.render();
    this.item.show();
  }

  setState(state: StatusItem["state"]): void {
    this.state = state;
    if (state !== "running") {
      this.progress.clear();
    }
    this.render();
  }

  setHealth(health: Health | undefined): void {
    this.health = health;
    this.render();
  }

  onProgress(
    token: ProgressToken,
    value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd,
  ): void {
    if (value.kind === "end") {
      this.progress.delete(token);
      this.sinkReported = 0;
    } else {
      const prev = this.progress.get(token);
      const next: ProgressState = {
        title: value.kind === "begin" ? value.title : (prev?.title ?? "leo"),
        message: value.message ?? prev?.message,
        percentage: value.percentage ?? prev?.percentage,
      };
      this.progress.set(token, next);
      if (this.sink) {
        const pct = next.percentage ?? 0;
        this.sink.report({ message: next.message, increment: Math.max(0, pct - this.sinkReported) });
        this.sinkReported = Math.max(this.sinkReported, pct);
      }
    }
    this.render();
  }

  private render(): void {
    const active = [...this.progress.values()].at(-1);
    const md = new vscode.MarkdownString(undefined, true);
    if (this.state === "missing") {
      this.item.text = "$(error) leo";
      md.appendMarkdown("**leo**: `leo-lsp` not found. Set `leo.serverPath` or `pip install leo-lsp`.");
    } else if (this.state === "stopped") {
      this.item.text = "$(debug-disconnect) leo";
      md.appendMarkdown("**leo**: server stopped. Run *Leo: Restart Server*.");
    } else if (active) {
      const pct = active.percentage !== undefined ? ` ${Math.round(active.percentage)}%` : "";
      this.item.text = `$(sync~spin) leo${pct}`;
      md.appendMarkdown(`**leo**: ${active.title}${active.message ? ` — ${active.message}` : ""}`);
    } else if (this.state === "starting") {
      this.item.text = "$(loading~spin) leo";
      md.appendMarkdown("**leo**: starting…");
    } else {
      const ok = !this.health || this.health.status === "ok";
      this.item.text = ok ? "$(search) leo" : "$(warning) leo";
      md.appendMarkdown(`**leo**: ${this.health?.status ?? "running"}`);
      for (const [name, svc] of Object.entries(this.health?.services ?? {})) {
        md.appendMarkdown(`\n\n- ${name}: ${describeService(svc)}`);
      }
      md.appendMarkdown("\n\nClick for health details.");
    }
    this.item.tooltip = md;
    this.item.backgroundColor =
      this.state === "missing" || (this.health && this.health.status === "error")
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}

function describeService(svc: unknown): string {
  if (svc && typeof svc === "object") {
    const rec = svc as Record<string, unknown>;
    const parts = [rec.status, rec.detail ?? rec.message ?? rec.backend].filter(
      (p) => p !== undefined && p !== null && p !== "",
    );
    return parts.length ? parts.map(String).join(" — ") : JSON.stringify(svc);
  }
  return String(svc);
}

// ---------------------------------------------------------------------------------------------
// Client lifecycle.

function createClient(context: vscode.ExtensionContext): LanguageClient | undefined {
  const config = vscode.workspace.getConfiguration("leo");
  const resolved = resolveServer({
    configured: config.get<string>("serverPath", ""),
    workspaceFolders: workspaceRoots(),
  });
  if (!resolved) {
    status.setState("missing");
    void vscode.window
      .showErrorMessage(
        "leo: `leo-lsp` was not found in the workspace virtualenv or on PATH. " +
          "Install it (`pip install leo-lsp`) or set `leo.serverPath`.",
        "Open Settings",
      )
      .then((choice) => {
        if (choice) {
          void vscode.commands.executeCommand("workbench.action.openSettings", "leo.serverPath");
        }
      });
    return undefined;
  }
  output.info(`starting ${resolved.command} (found via ${resolved.source})`);

  const serverOptions: ServerOptions = {
    command: resolved.command,
    args: config.get<string[]>("serverArgs", []),
    transport: TransportKind.stdio,
  };

  const clientOptions: LanguageClientOptions = {
    // leo indexes every text file, so it attaches to all of them.
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: buildServerOptions(settingGetter),
    synchronize: {
      configurationSection: "leo",
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*"),
    },
    outputChannel: output,
    diagnosticCollectionName: "leo",
    middleware: {
      handleWorkDoneProgress: (token, params, next) => {
        status.onProgress(token, params);
        next(token, params);
      },
      workspace: {
        // Send the server's own shape ({leo: initializationOptions}) instead of the raw
        // `leo` section, which also carries client-only keys such as serverPath.
        didChangeConfiguration: async () => {
          await client?.sendNotification(DidChangeConfigurationNotification.type, {
            settings: buildConfigurationSettings(settingGetter),
          });
        },
      },
    },
  };

  const created = new LanguageClient("leo", "leo", serverOptions, clientOptions);
  context.subscriptions.push(
    created.onDidChangeState((e) => {
      if (e.newState === State.Running) {
        status.setState("running");
        void refreshHealth(false);
      } else if (e.newState === State.Stopped) {
        status.setState("stopped");
      } else {
        status.setState("starting");
      }
    }),
  );
  return created;
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  client = createClient(context);
  if (!client) {
    return;
  }
  try {
    await client.start();
  } catch (err) {
    output.error(`leo-lsp failed to start: ${String(err)}`);
    status.setState("stopped");
    void vscode.window.showErrorMessage(`leo: the server failed to start (${String(err)}).`, "Show Output")
      .then((c) => c && output.show());
  }
}

async function runningClient(): Promise<LanguageClient> {
  if (!client) {
    throw new Error("leo-lsp is not running (see the leo output channel).");
  }
  if (client.state === State.Starting) {
    await new Promise<void>((resolve) => {
      const sub = client!.onDidChangeState((e) => {
        if (e.newState !== State.Starting) {
          sub.dispose();
          resolve();
        }
      });
    });
  }
  if (client.state !== State.Running) {
    throw new Error("leo-lsp is not running (see the leo output channel).");
  }
  return client;
}

/** `workspace/executeCommand` with one argument object, as every leo command takes. */
async function leoCommand<T>(
  command: string,
  args: object,
  token?: vscode.CancellationToken,
): Promise<T> {
  const c = await runningClient();
  return (await c.sendRequest(ExecuteCommandRequest.type, { command, arguments: [args] }, token)) as T;
}

function errorText(err: unknown): string {
  if (err && typeof err === "object" && "message" in err) {
    return String((err as { message: unknown }).message);
  }
  return String(err);
}

// ---------------------------------------------------------------------------------------------
// Commands.

interface HitItem extends vscode.QuickPickItem {
  hit: SearchHit;
}

async function openLocation(uri: string, range: SearchHit["range"] | undefined): Promise<void> {
  const c = await runningClient();
  const target = c.protocol2CodeConverter.asUri(uri);
  const selection = range ? c.protocol2CodeConverter.asRange(range) : undefined;
  await vscode.window.showTextDocument(target, { selection, preview: false });
}

async function searchCode(): Promise<void> {
  const config = vscode.workspace.getConfiguration("leo");
  const limit = config.get<number>("search.limit", 20);
  const mode = config.get<SearchArgs["mode"]>("search.mode", "hybrid");
  const roots = workspaceRoots();
  const qp = vscode.window.createQuickPick<HitItem>();
  qp.title = "leo: semantic code search";
  qp.placeholder = "Describe the code you are looking for, e.g. “retry an HTTP request with backoff”";
  // Results are ranked by meaning; VS Code's fuzzy filter would hide most of them.
  qp.matchOnDescription = false;
  qp.matchOnDetail = false;
  const editor = vscode.window.activeTextEditor;
  const selected = editor && !editor.selection.isEmpty ? editor.document.getText(editor.selection) : "";

  let pending: vscode.CancellationTokenSource | undefined;
  let timer: NodeJS.Timeout | undefined;
  let generation = 0;

  const run = async (query: string): Promise<void> => {
    pending?.cancel();
    const mine = ++generation;
    if (!query.trim()) {
      qp.items = [];
      qp.busy = false;
      return;
    }
    pending = new vscode.CancellationTokenSource();
    qp.busy = true;
    try {
      const result = await leoCommand<SearchResult>(
        Commands.search,
        { query, limit, mode } satisfies SearchArgs,
        pending.token,
      );
      if (mine !== generation) {
        return;
      }
      qp.items = result.results.map((hit) => ({ ...presentHit(hit, roots), alwaysShow: true, hit }));
      qp.title = `leo: ${result.results.length} results in ${Math.round(result.tookMs)} ms`;
    } catch (err) {
      if (mine === generation) {
        qp.items = [];
        qp.title = `leo: ${errorText(err)}`;
      }
    } finally {
      if (mine === generation) {
        qp.busy = false;
      }
    }
  };

  qp.onDidChangeValue((value) => {
    if (timer) {
      clearTimeout(timer);
    }
    // Short pause so each keystroke does not embed a query.
    timer = setTimeout(() => void run(value), 200);
  });
  qp.onDidAccept(() => {
    const item = qp.selectedItems[0] ?? qp.activeItems[0];
    if (item) {
      qp.hide();
      void openLocation(item.hit.uri, item.hit.range);
    }
  });
  qp.onDidHide(() => {
    pending?.cancel();
    if (timer) {
      clearTimeout(timer);
    }
    qp.dispose();
  });
  qp.show();
  if (selected && selected.length < 500) {
    qp.value = selected;
    void run(selected);
  }
}

async function indexWorkspace(): Promise<void> {
  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "leo: indexing workspace", cancellable: true },
      async (progress, token) => {
        status.sink = progress;
        try {
          return await leoCommand<IndexResult>(Commands.indexWorkspace, { force: false }, token);
        } finally {
          status.sink = undefined;
        }
      },
    );
    const secs = (result.tookMs / 1000).toFixed(1);
    void vscode.window.showInformationMessage(
      `leo: indexed ${result.files} files (${result.chunks} chunks) in ${secs} s; ` +
        `${result.skipped} unchanged, ${result.denied} kept out by the gatekeeper.`,
    );
  } catch (err) {
    void vscode.window.showErrorMessage(`leo: indexing failed — ${errorText(err)}`);
  }
}

async function refreshHealth(show: boolean): Promise<void> {
  try {
    const health = await leoCommand<Health>(Commands.health, {});
    status.setHealth(health);
    output.info(`health: ${JSON.stringify(health)}`);
    if (show) {
      const lines = Object.entries(health.services).map(([k, v]) => `${k}: ${describeService(v)}`);
      const choice = await vscode.window.showInformationMessage(
        `leo ${health.version}: ${health.status}`,
        { modal: false, detail: lines.join("\n") },
        "Show Output",
      );
      if (choice) {
        output.show();
      }
    }
  } catch (err) {
    status.setHealth(undefined);
    if (show) {
      void vscode.window.showErrorMessage(`leo: health check failed — ${errorText(err)}`);
    }
  }
}

interface StruggleItem extends vscode.QuickPickItem {
  row: StruggleRow;
}

async function struggleHistory(): Promise<void> {
  let rows: StruggleRow[];
  try {
    const result = await leoCommand<StruggleRow[] | { struggles: StruggleRow[] }>(Commands.struggles, {
      limit: 100,
    });
    rows = Array.isArray(result) ? result : result.struggles;
  } catch (err) {
    void vscode.window.showErrorMessage(`leo: could not load struggle history — ${errorText(err)}`);
    return;
  }
  if (!rows.length) {
    void vscode.window.showInformationMessage("leo: no struggles recorded yet.");
    return;
  }
  const items: StruggleItem[] = rows.map((row) => ({
    label: `$(flame) ${row.category}`,
    description: `${row.occurrences}× · last ${row.lastSeen}`,
    detail: row.signature,
    row,
  }));
  const pick = await vscode.window.showQuickPick(items, {
    title: "leo: struggle history",
    placeHolder: "Recurring errors, most recent first; pick one to open its file",
    matchOnDescription: true,
    matchOnDetail: true,
  });
  const file = pick?.row.files[0];
  if (file) {
    await openLocation(file.includes("://") ? file : vscode.Uri.file(file).toString(), undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Forwarding other servers' diagnostics (leo/observeDiagnostics).

class DiagnosticsForwarder implements vscode.Disposable {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lastSent = new Map<string, string>();
  private readonly sub: vscode.Disposable;

  constructor() {
    this.sub = vscode.languages.onDidChangeDiagnostics((e) => {
      if (!vscode.workspace.getConfiguration("leo").get<boolean>("struggle.forwardDiagnostics", true)) {
        return;
      }
      for (const uri of e.uris) {
        if (uri.scheme === "file") {
          this.schedule(uri);
        }
      }
    });
  }

  private schedule(uri: vscode.Uri): void {
    const key = uri.toString();
    const existing = this.timers.get(key);
    if (existing) {
      clearTimeout(existing);
    }
    // Servers often publish several times per edit; forward the settled state only.
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        void this.forward(uri);
      }, 400),
    );
  }

  private async forward(uri: vscode.Uri): Promise<void> {
    const c = client;
    if (!c || c.state !== State.Running) {
      return;
    }
    const own = new Set(c.diagnostics?.get(uri) ?? []);
    const others = vscode.languages
      .getDiagnostics(uri)
      .filter((d) => !own.has(d) && d.source !== LeoDiagnosticSource);
    const key = uri.toString();
    const fingerprint = JSON.stringify(
      others.map((d) => [d.message, d.severity, d.source, String(d.code ?? ""), d.range.start.line]),
    );
    if (this.lastSent.get(key) === fingerprint) {
      return;
    }
    this.lastSent.set(key, fingerprint);
    try {
      const diagnostics = await c.code2ProtocolConverter.asDiagnostics(others);
      await c.sendNotification(ObserveDiagnosticsMethod, {
        uri: c.code2ProtocolConverter.asUri(uri),
        diagnostics,
      });
    } catch (err) {
      output.warn(`could not forward diagnostics of ${key}: ${String(err)}`);
    }
  }

  dispose(): void {
    for (const t of this.timers.values()) {
      clearTimeout(t);
    }
    this.sub.dispose();
  }
}

// ---------------------------------------------------------------------------------------------

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("leo", { log: true });
  status = new StatusItem();
  context.subscriptions.push(output, status, new DiagnosticsForwarder());

  const guard = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (err) {
      void vscode.window.showErrorMessage(`leo: ${errorText(err)}`);
    }
  };
  context.subscriptions.push(
    vscode.commands.registerCommand("leo.searchCode", guard(searchCode)),
    vscode.commands.registerCommand("leo.indexWorkspace", guard(indexWorkspace)),
    vscode.commands.registerCommand("leo.showHealth", guard(() => refreshHealth(true))),
    vscode.commands.registerCommand("leo.struggleHistory", guard(struggleHistory)),
    vscode.commands.registerCommand("leo.showOutput", () => output.show()),
    vscode.commands.registerCommand(
      "leo.restartServer",
      guard(async () => {
        if (client) {
          await client.stop().catch(() => undefined);
        }
        await startClient(context);
      }),
    ),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("leo.serverPath") || e.affectsConfiguration("leo.serverArgs")) {
        void vscode.window
          .showInformationMessage("leo: the server command changed.", "Restart Server")
          .then((c) => c && vscode.commands.executeCommand("leo.restartServer"));
      }
    }),
  );
  await startClient(context);
}

export async function deactivate(): Promise<void> {
  if (client) {
    await client.stop();
    client = undefined;
  }
}
