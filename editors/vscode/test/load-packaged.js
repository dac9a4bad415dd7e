#!/usr/bin/env node
/*
 * Loads the extension the way VS Code would, from an unpacked .vsix (`<dir>/extension`), with a
 * stand-in `vscode` module: proves the package carries every runtime dependency it requires.
 * Usage: node test/load-packaged.js <unpacked-vsix-dir>
 */
"use strict";
const Module = require("node:module");
const path = require("node:path");

const root = process.argv[2];
if (!root) {
  console.error("usage: load-packaged.js <unpacked-vsix-dir>");
  process.exit(2);
}

// Any property of the stand-in is again a stand-in that can be called, constructed or extended.
function standIn(name) {
  const fn = function () {};
  return new Proxy(fn, {
    get(target, prop) {
      if (prop === "prototype") return target.prototype;
      if (prop === Symbol.toPrimitive) return () => name;
      if (prop === "then") return undefined;
      return standIn(`${name}.${String(prop)}`);
    },
    apply: () => standIn(`${name}()`),
    construct: () => standIn(`new ${name}`),
  });
}

const vscodeStub = standIn("vscode");
const originalLoad = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === "vscode") return vscodeStub;
  return originalLoad.call(this, request, parent, isMain);
};

const manifest = require(path.join(root, "extension", "package.json"));
const mainPath = path.join(root, "extension", manifest.main);
const ext = require(mainPath);
for (const fn of ["activate", "deactivate"]) {
  if (typeof ext[fn] !== "function") {
    console.error(`${mainPath} does not export ${fn}()`);
    process.exit(1);
  }
}
// The server-facing half must load too (vscode-languageclient/node pulls in the jsonrpc stack).
const lc = require(require.resolve("vscode-languageclient/node", { paths: [path.dirname(mainPath)] }));
if (typeof lc.LanguageClient !== "function") {
  console.error("vscode-languageclient/node did not load from the package");
  process.exit(1);
}
console.log(JSON.stringify({ ok: true, main: manifest.main, commands: manifest.contributes.commands.length }));
