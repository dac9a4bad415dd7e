/**
 * Turning leo.search hits into what a picker shows. No `vscode` import (plain-node testable).
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { SearchHit } from "./protocol";

export interface HitPresentation {
  label: string;
  description: string;
  detail: string;
}

const KIND_ICONS: Record<string, string> = {
  function: "symbol-function",
  method: "symbol-method",
  class: "symbol-class",
  struct: "symbol-struct",
  interface: "symbol-interface",
  enum: "symbol-enum",
  module: "symbol-module",
  variable: "symbol-variable",
  constant: "symbol-constant",
  type: "symbol-class",
};

/** The workspace-relative path of a hit (or its absolute path outside every folder). */
export function displayPath(uri: string, roots: readonly string[]): string {
  let file: string;
  try {
    file = fileURLToPath(uri);
  } catch {
    return uri;
  }
  for (const root of roots) {
    const rel = path.relative(root, file);
    if (rel && !rel.startsWith("..") && !path.isAbsolute(rel)) {
      return rel;
    }
  }
  return file;
}

/** First non-blank line of a snippet, trimmed, for one-line display. */
export function firstLine(snippet: string, max = 120): string {
  const line = snippet.split(/\r?\n/).find((l) => l.trim().length > 0)?.trim() ?? "";
  return line.length > max ? line.slice(0, max - 1) + "…" : line;
}

/** Label, description and detail of one hit; the label carries a codicon for its kind. */
export function presentHit(hit: SearchHit, roots: readonly string[]): HitPresentation {
  const where = `${displayPath(hit.uri, roots)}:${hit.range.start.line + 1}`;
  const icon = KIND_ICONS[(hit.kind ?? "").toLowerCase()] ?? "symbol-misc";
  const name = hit.symbol && hit.symbol.length > 0 ? hit.symbol : firstLine(hit.snippet, 60);
  return {
    label: `$(${icon}) ${name}`,
    description: `${where}  ·  ${hit.score.toFixed(2)}`,
    detail: firstLine(hit.snippet),
  };
}
