// Test helper: @firestore-emulator/server bound to 127.0.0.1 (its start() binds every interface).
// Prints `READY <port>` on stdout. Commands on stdin, one per line:
//   down   → every Commit answers UNAVAILABLE (Firestore unreachable), up → normal again
//   stats  → prints `STATS {"commits": n, "writes": {"<doc path>": count}}`
// Exits when stdin closes, so it never outlives the test process.
"use strict";
const path = require("path");
const readline = require("readline");
// Resolved from the working directory (tests/unit/cloud/.emulators, where npm installed it).
const serverEntry = require.resolve("@firestore-emulator/server", { paths: [process.cwd()] });
const { FirestoreServer } = require(serverEntry);
// The grpc-js copy the package itself resolves: a second copy's credentials are rejected.
const grpc = require(require.resolve("@grpc/grpc-js", { paths: [path.dirname(serverEntry)] }));

let down = false;
let commits = 0;
const writes = {};
const server = new FirestoreServer();
const impl = server.server; // grpc Server; the service implementation is registered already

// Wrap the registered Commit handler so the test can fail it and count writes per document.
const COMMIT = "/google.firestore.v1.Firestore/Commit";
const handler = impl.handlers.get(COMMIT);
if (!handler) throw new Error(`no ${COMMIT} handler registered`);
const original = handler.func;
handler.func = (call, callback) => {
  if (down) {
    callback({ code: grpc.status.UNAVAILABLE, details: "emulated outage", message: "emulated outage" }, null);
    return;
  }
  commits += 1;
  for (const w of call.request.writes) {
    const name = w.has_update ? w.update.name : w.delete;
    const key = String(name).replace(/^projects\/[^/]+\/databases\/[^/]+\/documents\//, "");
    writes[key] = (writes[key] || 0) + 1;
  }
  return original(call, callback);
};

const port = Number(process.argv[2] || 0);
impl.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    process.stderr.write(`bind failed: ${err}\n`);
    process.exit(2);
  }
  process.stdout.write(`READY ${bound}\n`);
});

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "down") down = true;
  else if (cmd === "up") down = false;
  if (cmd === "stats") process.stdout.write(`STATS ${JSON.stringify({ commits, writes })}\n`);
  else process.stdout.write(`OK ${cmd}\n`);
});
rl.on("close", () => {
  server.stop();
  process.exit(0);
});
