"""Bounds of a live leo-lsp: RSS at ~100k chunks, latency during crawls, a 50 MB buffer, 100k files.

    /work/venv/bin/python tests/bench/bench_bounds.py                      # full size (~10 min)
    /work/venv/bin/python tests/bench/bench_bounds.py --files 200 --tiny-files 5000   # quick

Three measurements on real `leo-lsp` processes (stdio, raw JSON-RPC client from
tests/reliability/rel_support.py); embeddings come from a fast loopback OpenAI-compatible stub
(dimension 384, so the vectors weigh what MiniLM's would), because the local model embeds ~40
chunks/s and 100k chunks would take most of an hour:

1. a synthetic Python workspace (`--files` × `--funcs` functions) crawled by leo.indexWorkspace:
   RSS before/after/peak (VmRSS of the server), chunks, crawl time, size of the sqlite files;
2. during that crawl the client sends leo.health and leo.search (lexical) every `--interval` s and
   records their latency (target ≤ 100 ms); `--big-at` s into the crawl it opens a `--big-mb` MB
   Python buffer (didOpen) and reports the latency of the requests that follow it;
3. a workspace of `--tiny-files` one-line files over `--tiny-dirs` directories: time of the walk
   (until the first "Chunking" progress report, i.e. walk + 1 % of the files), latency during
   the walk and during the rest of the crawl; the crawl is cut at `--tiny-timeout` s (shutdown
   during a crawl, itself timed).

The machine is shared (2 cores): numbers are noisy. The script only prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))
from rel_support import RawLsp  # noqa: E402

WORDS = (
    "parse render fetch store load merge split index rank score token queue cache flush encode "
    "decode retry commit batch stream filter reduce scan walk emit update delete insert resolve"
).split()
NOUNS = (
    "config record header buffer socket frame packet matrix vector ledger invoice account order "
    "session widget sensor report cursor schema column table graph node edge window"
).split()


# -- a fast embedding stub -------------------------------------------------------------------


class FastEmbeddingStub:
    """Loopback /v1/embeddings answering from a pool of pre-serialised random vectors.

    The pool (picked by crc32 of the text) keeps the stub off the critical path: the server, not
    the stub, is what is measured. Vectors differ per text often enough that storage is realistic.
    """

    def __init__(self, dim: int = 384, pool: int = 4096) -> None:
        rng = random.Random(1)
        self.dim = dim
        self.pool = [
            json.dumps([round(rng.uniform(-1, 1), 5) for _ in range(dim)]) for _ in range(pool)
        ]
        self.requests = 0
        self.texts = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, raw: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._send(b'{"object":"list","data":[{"id":"stub","object":"model"}]}')

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                inputs = body.get("input")
                inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
                stub.requests += 1
                stub.texts += len(inputs)
                items = ",".join(
                    '{"object":"embedding","index":'
                    + str(i)
                    + ',"embedding":'
                    + stub.pool[zlib.crc32(t.encode("utf-8", "replace")) % len(stub.pool)]
                    + "}"
                    for i, t in enumerate(inputs)
                )
                self._send(
                    ('{"object":"list","model":"stub","data":[' + items + "]}").encode("utf-8")
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def options(self) -> dict[str, Any]:
        """initializationOptions pointing leo's embedding at this stub."""
        return {
            "embedding": {
                "provider": "openai",
                "url": self.url,
                "model": "stub",
                "batchSize": 256,
                "timeoutSeconds": 30,
            }
        }

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


# -- client ----------------------------------------------------------------------------------


class _TimedList(list[dict[str, Any]]):
    """Notifications with their arrival time (the reader thread appends here)."""

    def append(self, item: dict[str, Any]) -> None:
        item["_t"] = time.monotonic()
        super().append(item)


class Client(RawLsp):
    """RawLsp with one write lock (the reader thread answers server requests concurrently)."""

    def __init__(self, data_dir: Path, log_file: Path) -> None:
        self._wlock = threading.Lock()
        super().__init__(data_dir, log_file=log_file)
        with self._lock:
            self.notifications = _TimedList()

    def write(self, data: bytes) -> None:
        with self._wlock:
            super().write(data)

    def start(self, ws: Path, options: dict[str, Any]) -> None:
        """initialize with workDoneProgress, so crawl phases show as $/progress reports."""
        params = {
            "processId": None,
            "capabilities": {"window": {"workDoneProgress": True}},
            "initializationOptions": options,
            "rootUri": ws.as_uri(),
            "workspaceFolders": [{"uri": ws.as_uri(), "name": ws.name}],
        }
        resp = self.request("initialize", params, timeout=120)
        assert "result" in resp, resp
        self.send("initialized", {}, msg_id=False)

    def progress(self) -> list[tuple[float, str]]:
        """(arrival time, message) of the $/progress reports so far."""
        with self._lock:
            out = []
            for n in self.notifications:
                if n["method"] != "$/progress":
                    continue
                value = (n.get("params") or {}).get("value") or {}
                out.append((n["_t"], str(value.get("message") or value.get("kind"))))
            return out

    def rss_mb(self) -> float:
        """VmRSS of the server process in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def summary(values: list[float]) -> str:
    """`n p50 p95 max >100ms` of latencies in ms."""
    if not values:
        return "n=0"
    over = sum(1 for v in values if v > 100)
    return (
        f"n={len(values):4d} p50={pct(values, 0.5):7.1f} p95={pct(values, 0.95):7.1f} "
        f"max={max(values):7.1f} ms  >100ms={over}"
    )


class Probe:
    """Sends leo.health / leo.search (lexical) every `interval` s until the crawl answers."""

    def __init__(self, lsp: Client, interval: float, seed: int = 3) -> None:
        self.lsp = lsp
        self.interval = interval
        self.rng = random.Random(seed)
        self.samples: list[tuple[float, str, float]] = []  # (sent at, kind, ms)
        self.peak_rss = 0.0

    def one(self) -> None:
        """One request, timed; an error answer counts as a failure of the benchmark."""
        kind = "health" if len(self.samples) % 2 == 0 else "search"
        t0 = time.monotonic()
        if kind == "health":
            resp = self.lsp.command("leo.health", timeout=600)
        else:
            q = f"{self.rng.choice(WORDS)} {self.rng.choice(NOUNS)}"
            resp = self.lsp.command("leo.search", {"query": q, "mode": "lexical"}, timeout=600)
        ms = (time.monotonic() - t0) * 1000
        assert "result" in resp, resp
        self.samples.append((t0, kind, ms))

    def run_until(self, crawl_id: Any, deadline: float, actions: list[tuple[float, Any]]) -> bool:
        """Probe until the crawl's response arrives (True) or `deadline` (False).

        `actions` are (monotonic time, callable) run from this thread when their time comes, so
        every write to the server's stdin happens from one place.
        """
        key = json.dumps(crawl_id)
        pending = sorted(actions, key=lambda a: a[0])
        while True:
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                pending.pop(0)[1]()
            with self.lsp._lock:
                if key in self.lsp.responses:
                    return True
            if now >= deadline:
                return False
            if self.lsp.proc.poll() is not None:
                raise RuntimeError(f"server died: {self.lsp.tail()}")
            self.one()
            self.peak_rss = max(self.peak_rss, self.lsp.rss_mb())
            left = self.interval - (time.monotonic() - now)
            if left > 0:
                time.sleep(left)  # the client's pacing, not synchronisation

    def between(self, t0: float, t1: float, kind: str | None = None) -> list[float]:
        """Latencies of the requests sent in [t0, t1)."""
        return [ms for t, k, ms in self.samples if t0 <= t < t1 and (kind is None or k == kind)]


# -- workspaces ------------------------------------------------------------------------------


def synthetic_module(i: int, funcs: int, rng: random.Random) -> str:
    """A Python module of `funcs` distinct small functions (one chunk each)."""
    out = [f'"""Synthetic module {i}."""', "", "import math", ""]
    for j in range(funcs):
        verb, noun = rng.choice(WORDS), rng.choice(NOUNS)
        a, b = rng.randint(2, 97), rng.randint(2, 97)
        out += [
            "",
            f"def {verb}_{noun}_{i}_{j}(items, limit={a}):",
            f'    """{verb.capitalize()} the {noun} items of module {i}, at most {a}."""',
            "    total = 0",
            "    for k, item in enumerate(items):",
            "        if k >= limit or item is None:",
            "            break",
            f"        total += math.floor(item * {b}) % {a + b}",
            f"    return total + {j}",
            "",
        ]
    return "\n".join(out) + "\n"


def make_workspace(root: Path, files: int, funcs: int) -> int:
    """`files` synthetic modules in 20 packages; returns bytes written."""
    rng = random.Random(11)
    total = 0
    for i in range(files):
        d = root / f"pkg{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        text = synthetic_module(i, funcs, rng)
        (d / f"mod_{i:05d}.py").write_text(text)
        total += len(text)
    return total


def make_tiny_workspace(root: Path, files: int, dirs: int) -> None:
    """`files` one-line Python files spread over `dirs` directories."""
    per = max(1, -(-files // dirs))
    for d in range(dirs):
        sub = root / f"d{d:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        for k in range(per):
            n = d * per + k
            if n >= files:
                return
            with open(sub / f"f{k:03d}.py", "w") as fh:
                fh.write(f"VALUE_{n} = {n}  # tiny file {n}\n")


def big_python(mb: int) -> str:
    """About `mb` MB of Python source (a generated module someone opened)."""
    block = "".join(f"def generated_{k}(x):\n    return x * {k} + {k % 7}\n\n" for k in range(2000))
    reps = max(1, (mb * 1024 * 1024) // len(block))
    return block * reps


def sqlite_bytes(data: Path) -> int:
    """Bytes of every sqlite file (db, -wal, -shm) under the data dir."""
    return sum(p.stat().st_size for p in data.rglob("*.sqlite3*") if p.is_file())


# -- runs ------------------------------------------------------------------------------------


def run_chunks(args: argparse.Namespace, tmp: Path, rows: list[tuple[str, str]]) -> None:
    """Parts 1 and 2: the big crawl, with probes and a 50 MB buffer opened mid-crawl."""
    ws = tmp / "ws"
    t = time.monotonic()
    nbytes = make_workspace(ws, args.files, args.funcs)
    gen_s = time.monotonic() - t
    print(
        f"[1] workspace: {args.files} files x {args.funcs} functions, {nbytes / 1e6:.1f} MB, "
        f"generated in {gen_s:.1f} s",
        flush=True,
    )
    stub = FastEmbeddingStub(dim=args.dim)
    data = tmp / "data"
    lsp = Client(data, tmp / "leo.log")
    try:
        lsp.start(ws, {"dataDir": str(data), **stub.options()})
        lsp.result("leo.health")
        rss0 = lsp.rss_mb()
        probe = Probe(lsp, args.interval)
        big_path = ws / "generated_big.py"
        big_sent: list[float] = []

        def open_big() -> None:
            text = big_python(args.big_mb)
            t0 = time.monotonic()
            lsp.send(
                "textDocument/didOpen",
                {
                    "textDocument": {
                        "uri": big_path.as_uri(),
                        "languageId": "python",
                        "version": 1,
                        "text": text,
                    }
                },
                msg_id=False,
            )
            big_sent.extend([t0, time.monotonic()])

        t0 = time.monotonic()
        crawl_id = lsp.send(
            "workspace/executeCommand",
            {"command": "leo.indexWorkspace", "arguments": [{"force": True}]},
        )
        actions = [(t0 + args.big_at, open_big)] if args.big_mb > 0 else []
        done = probe.run_until(crawl_id, t0 + args.timeout, actions)
        if not done:
            print(f"[1] crawl not done after {args.timeout} s; waiting for it", flush=True)
        report = lsp.wait_response(crawl_id, timeout=3600)["result"]
        crawl_s = time.monotonic() - t0
        rss1 = lsp.rss_mb()
        progress = lsp.progress()
        embed_start = next((pt for pt, m in progress if m.startswith("Embedding")), None)
        lsp.result("leo.search", {"query": "parse config items", "mode": "hybrid"})
        rss2 = lsp.rss_mb()
        health = lsp.result("leo.health")
        db = sqlite_bytes(data)
        print(f"[1] crawl report: {json.dumps(report)[:400]}", flush=True)
        print(
            f"[1] RSS before {rss0:.0f} MB, peak during crawl {probe.peak_rss:.0f} MB, after "
            f"{rss1:.0f} MB, after a hybrid search {rss2:.0f} MB; sqlite {db / 1e6:.0f} MB; "
            f"stub answered {stub.requests} requests / {stub.texts} texts",
            flush=True,
        )
        emb = (health.get("services") or {}).get("embedding") or {}
        print(f"[1] health embedding after crawl: {json.dumps(emb)[:300]}", flush=True)
        chunks = int(report.get("chunks", 0))
        rows += [
            (
                "crawl: files / chunks / embedded",
                f"{report.get('files')} / {chunks} / {report.get('embedded')}",
            ),
            ("crawl time", f"{crawl_s:.1f} s ({chunks / max(crawl_s, 1e-9):.0f} chunks/s)"),
            (
                "RSS before / peak / after / +search",
                f"{rss0:.0f} / {probe.peak_rss:.0f} / {rss1:.0f} / {rss2:.0f} MB",
            ),
            ("RSS growth per 1k chunks", f"{(rss2 - rss0) / max(chunks / 1000, 1e-9):.2f} MB"),
            ("sqlite files", f"{db / 1e6:.0f} MB ({db / max(chunks, 1):.0f} B/chunk)"),
        ]
        end = time.monotonic()
        chunk_end = embed_start or end
        rows += [
            ("lat. whole crawl (all)", summary(probe.between(t0, end))),
            ("lat. whole crawl health", summary(probe.between(t0, end, "health"))),
            ("lat. whole crawl search", summary(probe.between(t0, end, "search"))),
            ("lat. chunking phase", summary(probe.between(t0, chunk_end))),
            ("lat. embedding phase", summary(probe.between(chunk_end, end))),
        ]
        if big_sent:
            indexed = [
                n
                for n in lsp.notifications
                if n["method"] == "leo/indexed"
                and (n.get("params") or {}).get("uri") == big_path.as_uri()
            ]
            after = probe.between(big_sent[1], big_sent[1] + 5)
            first = after[:3]
            rows += [
                (
                    f"didOpen {args.big_mb} MB: write",
                    f"{(big_sent[1] - big_sent[0]) * 1000:.0f} ms",
                ),
                ("next 3 requests after it", ", ".join(f"{v:.0f}" for v in first) + " ms"),
                ("lat. 5 s after didOpen", summary(after)),
                (
                    "big buffer leo/indexed",
                    (
                        f"+{(indexed[0]['_t'] - big_sent[1]) * 1000:.0f} ms "
                        f"allowed={indexed[0]['params'].get('allowed')} "
                        f"reason={str(indexed[0]['params'].get('reason'))[:50]!r}"
                    )
                    if indexed
                    else "none",
                ),
            ]
            rows.append(("RSS at end (big buffer open)", f"{lsp.rss_mb():.0f} MB"))
        t = time.monotonic()
        lsp.shutdown(timeout=120)
        rows.append(("shutdown after crawl", f"{(time.monotonic() - t) * 1000:.0f} ms"))
    finally:
        lsp.close()
        stub.close()


def run_tiny(args: argparse.Namespace, tmp: Path, rows: list[tuple[str, str]]) -> None:
    """Part 3: a workspace of many one-line files; walk time and latency meanwhile."""
    ws = tmp / "tiny"
    t = time.monotonic()
    make_tiny_workspace(ws, args.tiny_files, args.tiny_dirs)
    print(
        f"[3] tiny workspace: {args.tiny_files} files in {args.tiny_dirs} dirs, generated in "
        f"{time.monotonic() - t:.1f} s",
        flush=True,
    )
    stub = FastEmbeddingStub(dim=args.dim)
    data = tmp / "tiny-data"
    lsp = Client(data, tmp / "leo-tiny.log")
    try:
        lsp.start(ws, {"dataDir": str(data), **stub.options()})
        lsp.result("leo.health")
        probe = Probe(lsp, args.interval)
        t0 = time.monotonic()
        crawl_id = lsp.send(
            "workspace/executeCommand",
            {"command": "leo.indexWorkspace", "arguments": [{"force": True}]},
        )
        done = probe.run_until(crawl_id, t0 + args.tiny_timeout, [])
        end = time.monotonic()
        progress = lsp.progress()
        walk_end = next((pt for pt, m in progress if m.startswith("Chunking")), None)
        last_chunking = [m for _, m in progress if m.startswith(("Chunking", "Embedding"))]
        report: dict[str, Any] | None = None
        if done:
            report = lsp.wait_response(crawl_id)["result"]
        rss = lsp.rss_mb()
        t = time.monotonic()
        lsp.shutdown(timeout=120)
        shut_ms = (time.monotonic() - t) * 1000
        state = (
            f"done in {end - t0:.1f} s: {report.get('files')} files, {report.get('chunks')} "
            f"chunks, {report.get('embedded')} embedded"
            if report
            else f"cut at {args.tiny_timeout:.0f} s, last progress "
            f"{last_chunking[-1] if last_chunking else 'none'!r}"
        )
        rows += [
            (f"tiny ws {args.tiny_files} files / {args.tiny_dirs} dirs", state),
            (
                "walk (+1% of files) time",
                f"{walk_end - t0:.2f} s" if walk_end is not None else "no Chunking report",
            ),
            ("lat. during walk", summary(probe.between(t0, walk_end or end))),
            ("lat. after walk", summary(probe.between(walk_end or end, end))),
            ("RSS tiny ws (peak / end)", f"{probe.peak_rss:.0f} / {rss:.0f} MB"),
            ("shutdown " + ("after crawl" if report else "during crawl"), f"{shut_ms:.0f} ms"),
        ]
    finally:
        lsp.close()
        stub.close()


def main() -> None:
    """Parse flags, run the parts, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=2000, help="synthetic modules (part 1)")
    ap.add_argument("--funcs", type=int, default=50, help="functions per module (part 1)")
    ap.add_argument("--dim", type=int, default=384, help="embedding dimension of the stub")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between probes")
    ap.add_argument("--big-mb", type=int, default=50, help="size of the buffer opened (0: none)")
    ap.add_argument("--big-at", type=float, default=5.0, help="seconds into the crawl to open it")
    ap.add_argument("--timeout", type=float, default=540, help="probe the crawl this long")
    ap.add_argument("--tiny-files", type=int, default=100_000, help="files of part 3 (0: skip)")
    ap.add_argument("--tiny-dirs", type=int, default=1000)
    ap.add_argument("--tiny-timeout", type=float, default=180, help="cut part 3's crawl after")
    ap.add_argument("--skip-chunks", action="store_true", help="only part 3")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="leo-bounds-"))
    rows: list[tuple[str, str]] = []
    try:
        if not args.skip_chunks:
            run_chunks(args, tmp, rows)
        if args.tiny_files > 0:
            run_tiny(args, tmp, rows)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", flush=True)
    width = max(len(k) for k, _ in rows) if rows else 0
    print("\n== leo bounds (2 shared cores: noisy) ==")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
