/**
 * The wire contract with the leo server (see DESIGN.md, "The contract with clients").
 * Kept free of `vscode` imports so plain node (test/e2e.js) can load it.
 */

export const Commands = {
  search: "leo.search",
  indexWorkspace: "leo.indexWorkspace",
  indexFile: "leo.indexFile",
  health: "leo.health",
  struggles: "leo.struggles",
  reportStruggle: "leo.reportStruggle",
} as const;

/** Notification a client sends to forward other servers' diagnostics to leo. */
export const ObserveDiagnosticsMethod = "leo/observeDiagnostics";

/** Diagnostics leo itself publishes carry this source; they are never forwarded back. */
export const LeoDiagnosticSource = "leo";

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export interface SearchArgs {
  query: string;
  limit?: number;
  mode?: "hybrid" | "vector" | "lexical";
  languages?: string[];
  paths?: string[];
  projectId?: string;
}

export interface SearchHit {
  uri: string;
  range: Range;
  score: number;
  language: string;
  symbol: string | null;
  kind: string | null;
  snippet: string;
}

export interface SearchResult {
  results: SearchHit[];
  tookMs: number;
}

export interface IndexResult {
  files: number;
  chunks: number;
  skipped: number;
  denied: number;
  tookMs: number;
}

export interface Health {
  status: string;
  services: Record<string, unknown>;
  version: string;
}

export interface StruggleRow {
  category: string;
  signature: string;
  occurrences: number;
  firstSeen: string;
  lastSeen: string;
  files: string[];
}
