/**
 * VS Code settings (`leo.*`) → the server's initializationOptions / didChangeConfiguration object.
 * No `vscode` import: the caller passes a getter, so the mapping is testable in plain node.
 */

/** Reads one setting below `leo.` (e.g. "embedding.provider"); undefined when unset. */
export type SettingGetter = (key: string) => unknown;

export type JsonObject = { [key: string]: unknown };

/**
 * Server options and the `leo.*` keys they come from. Keys that only concern the client
 * (serverPath, serverArgs, search.*, struggle.forwardDiagnostics) are deliberately absent.
 */
const SERVER_KEYS: readonly string[] = [
  "dataDir",
  "embedding.provider",
  "embedding.url",
  "embedding.model",
  "embedding.batchSize",
  "embedding.maxConcurrency",
  "gatekeeper.mode",
  "gatekeeper.url",
  "gatekeeper.model",
  "gatekeeper.onLlmError",
  "index.include",
  "index.exclude",
  "index.maxFileBytes",
  "index.respectGitignore",
  "index.debounceMs",
  "struggle.enabled",
  "struggle.threshold",
  "struggle.windowSeconds",
  "firebase.enabled",
  "firebase.projectId",
  "firebase.credentials",
];

/** Build the nested camelCase object the server reads (DESIGN.md: initializationOptions). */
export function buildServerOptions(get: SettingGetter): JsonObject {
  const out: JsonObject = {};
  for (const key of SERVER_KEYS) {
    const value = get(key);
    // Empty strings mean "use the server's default" (e.g. dataDir): leave them out.
    if (value === undefined || value === null || value === "") {
      continue;
    }
    const path = key.split(".");
    let node = out;
    for (const part of path.slice(0, -1)) {
      if (typeof node[part] !== "object" || node[part] === null) {
        node[part] = {};
      }
      node = node[part] as JsonObject;
    }
    node[path[path.length - 1]] = value;
  }
  return out;
}

/** The didChangeConfiguration payload: the same object, under the `leo` section. */
export function buildConfigurationSettings(get: SettingGetter): JsonObject {
  return { leo: buildServerOptions(get) };
}
