"""Bounded soak of a live leo-lsp: mixed edits, searches and crawls; latency and RSS over time.

    /work/venv/bin/python tests/bench/bench_soak.py               # 3 minutes, real local model
    /work/venv/bin/python tests/bench/bench_soak.py --minutes 10
    /work/venv/bin/python tests/bench/bench_soak.py --stub        # stub embedding server (fast)

Each second it sends a few didChange edits to open buffers, searches (leo.search hybrid and
lexical, workspace/symbol), leo.health, and now and then a forced leo.indexWorkspace (sent without
waiting, so the other requests are measured while the crawl runs). Prints per minute: requests,
p50/p99 latency overall and during crawls, the share over 100 ms, and the server's RSS.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))
from rel_support import PYLIB, EmbeddingStub, RawLsp  # noqa: E402

QUERIES = [
    "parse a json document",
    "escape html characters",
    "read configuration file",
    "priority queue push pop",
    "wrap text to width",
    "split shell command line",
    "match file names with wildcards",
]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--stub", action="store_true", help="stub embedding server instead of MiniLM")
    ap.add_argument("--files", type=int, default=120, help="stdlib files in the workspace")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="leo-soak-"))
    ws = tmp / "ws"
    sources = sorted(p for p in PYLIB.glob("*.py") if p.stat().st_size < 60_000)[: args.files]
    for src in sources:
        (ws / src.name).parent.mkdir(parents=True, exist_ok=True)
        (ws / src.name).write_bytes(src.read_bytes())
    stub = EmbeddingStub() if args.stub else None
    data = tmp / "data"
    lsp = RawLsp(data, log_file=tmp / "leo.log")
    # A soak sends thousands of searches an hour: lift the per-user search budget.
    options = {
        "dataDir": str(data),
        "rateLimits": {"searchPerHour": 1_000_000},
        **(stub.options() if stub else {}),
    }
    t0 = time.monotonic()
    lsp.initialize(ws, options, timeout=120)
    first = lsp.result("leo.indexWorkspace", timeout=3600)
    print(
        f"initial crawl: {first['files']} files, {first['chunks']} chunks in "
        f"{time.monotonic() - t0:.1f} s; RSS {rss_kb(lsp.proc.pid) / 1024:.0f} MB",
        flush=True,
    )
    rss0 = rss_kb(lsp.proc.pid)
    buffers = [ws / p.name for p in sources[:5]]
    versions = {}
    for b in buffers:
        versions[b] = 1
        lsp.send(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": b.as_uri(),
                    "languageId": "python",
                    "version": 1,
                    "text": b.read_text(),
                }
            },
            msg_id=False,
        )
    end = time.monotonic() + args.minutes * 60
    minute = 0
    crawl_id = None
    while time.monotonic() < end:
        minute += 1
        lat: list[float] = []
        lat_crawl: list[float] = []
        crawls = edits = 0
        stop = min(end, time.monotonic() + 60)
        while time.monotonic() < stop:
            if crawl_id is not None and json_key(crawl_id) in lsp.responses:
                lsp.wait_response(crawl_id)
                crawl_id = None
            if crawl_id is None and rng.random() < 0.05:
                crawl_id = lsp.send(
                    "workspace/executeCommand",
                    {"command": "leo.indexWorkspace", "arguments": [{"force": True}]},
                )
                crawls += 1
            for _ in range(3):
                b = rng.choice(buffers)
                versions[b] += 1
                text = b.read_text() + f"\n\ndef soak_edit_{versions[b]}(x):\n    return x\n"
                lsp.send(
                    "textDocument/didChange",
                    {
                        "textDocument": {"uri": b.as_uri(), "version": versions[b]},
                        "contentChanges": [{"text": text}],
                    },
                    msg_id=False,
                )
                edits += 1
            for kind in ("hybrid", "lexical", "symbol", "health"):
                q = rng.choice(QUERIES)
                t = time.perf_counter()
                if kind == "symbol":
                    resp = lsp.request("workspace/symbol", {"query": q}, timeout=120)
                elif kind == "health":
                    resp = lsp.command("leo.health")
                else:
                    resp = lsp.command("leo.search", {"query": q, "mode": kind})
                ms = (time.perf_counter() - t) * 1000
                assert "result" in resp, resp
                (lat_crawl if crawl_id is not None else lat).append(ms)
            time.sleep(0.25)  # pacing of the simulated user, not synchronisation
        allv = lat + lat_crawl
        over = sum(1 for v in allv if v > 100) / max(1, len(allv))
        print(
            f"min {minute:2d}: {len(allv):4d} req  p50 {pct(allv, 0.5):7.1f} ms  "
            f"p99 {pct(allv, 0.99):7.1f} ms  | during crawl: {len(lat_crawl):4d} req "
            f"p50 {pct(lat_crawl, 0.5):7.1f} p99 {pct(lat_crawl, 0.99):7.1f} ms  "
            f"| >100ms {over:5.1%}  edits {edits}  crawls {crawls}  "
            f"RSS {rss_kb(lsp.proc.pid) / 1024:6.0f} MB",
            flush=True,
        )
    rss1 = rss_kb(lsp.proc.pid)
    print(
        f"RSS growth over the soak: {(rss1 - rss0) / 1024:+.1f} MB "
        f"({rss0 / 1024:.0f} → {rss1 / 1024:.0f} MB)"
    )
    lsp.shutdown()
    if stub:
        stub.close()
    _ = statistics


def json_key(msg_id: object) -> str:
    import json

    return json.dumps(msg_id)


if __name__ == "__main__":
    main()
