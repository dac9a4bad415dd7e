/**
 * Finding the `leo-lsp` executable: the `leo.serverPath` setting, then a virtualenv inside a
 * workspace folder, then PATH. No `vscode` import, so plain node can test it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface ResolvedServer {
  command: string;
  source: "setting" | "workspace-venv" | "path";
}

export interface ResolveOptions {
  /** The `leo.serverPath` setting ("" when unset). */
  configured: string;
  /** Absolute paths of the workspace folders, in order. */
  workspaceFolders: readonly string[];
  /** The PATH to search last (defaults to process.env.PATH). */
  envPath?: string;
  platform?: NodeJS.Platform;
}

function isExecutable(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function expandHome(p: string): string {
  if (p === "~" || p.startsWith("~/")) {
    return path.join(os.homedir(), p.slice(1));
  }
  return p;
}

/** Candidate executables in a workspace folder's usual virtualenv directories. */
export function venvCandidates(folder: string, platform: NodeJS.Platform): string[] {
  const names = platform === "win32"
    ? [path.join("Scripts", "leo-lsp.exe")]
    : [path.join("bin", "leo-lsp")];
  const candidates: string[] = [];
  for (const venv of [".venv", "venv", ".env", "env"]) {
    for (const name of names) {
      candidates.push(path.join(folder, venv, name));
    }
  }
  return candidates;
}

/** Search `envPath` for `leo-lsp` the way a shell would. */
export function findOnPath(envPath: string, platform: NodeJS.Platform): string | undefined {
  const exts = platform === "win32" ? [".exe", ".cmd", ""] : [""];
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) {
      continue;
    }
    for (const ext of exts) {
      const candidate = path.join(dir, "leo-lsp" + ext);
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

/**
 * Resolve the server executable. A configured path wins even when it does not exist, so the
 * user sees the error about *their* setting instead of a silently different server.
 */
export function resolveServer(opts: ResolveOptions): ResolvedServer | undefined {
  const platform = opts.platform ?? process.platform;
  const configured = opts.configured.trim();
  if (configured) {
    let command = expandHome(configured);
    if (!path.isAbsolute(command) && command.includes(path.sep) && opts.workspaceFolders.length) {
      command = path.resolve(opts.workspaceFolders[0], command);
    }
    return { command, source: "setting" };
  }
  for (const folder of opts.workspaceFolders) {
    for (const candidate of venvCandidates(folder, platform)) {
      if (isExecutable(candidate)) {
        return { command: candidate, source: "workspace-venv" };
      }
    }
  }
  const onPath = findOnPath(opts.envPath ?? process.env.PATH ?? "", platform);
  return onPath ? { command: onPath, source: "path" } : undefined;
}
