"""Time to the first useful search result on a large workspace, while vectors catch up.

Copies the standard library (docstrings blanked by the kit's make_corpus.py, so answers are not
given away), starts `<python> -m leo_lsp` over stdio, sends `leo.indexWorkspace` *without waiting*,
then polls `leo.search` (hybrid) with probe queries whose answers are known and prints when
each first returns a correct hit, plus how `pending` falls and vector-sourced results fill in.

    python tests/bench/bench_first_result.py                 # whole stdlib, 120 s
    python tests/bench/bench_first_result.py --seconds 60 --probes 20

Wall-clock numbers on a shared 2-core machine are noisy; say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import eval_dir  # noqa: E402

KIT = eval_dir()
sys.path.insert(0, str(KIT))
from lsp_client import LspClient  # type: ignore[import-not-found]  # noqa: E402
from run_quality import is_hit  # type: ignore[import-not-found]  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--interval", type=float, default=1.0)
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="leo-first-"))
    task = work / "task"
    if not (task / "queries.jsonl").exists():
        src = work / "src"
        if not src.exists():
            # The stdlib without installed packages (site-packages is not "the standard library").
            ignore = shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc")
            shutil.copytree(a.src, src, ignore=ignore, symlinks=True)
        subprocess.run(
            [sys.executable, str(KIT / "make_corpus.py"), str(src), str(task)]
            + ["--max-queries", str(a.probes)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    corpus = task / "corpus"
    probes = [json.loads(line) for line in (task / "queries.jsonl").read_text().splitlines()]
    files = sum(1 for _ in corpus.rglob("*.py"))
    client = LspClient([sys.executable, "-m", "leo_lsp"])
    t0 = time.perf_counter()
    client.initialize(corpus, {"dataDir": str(work / "data")})
    t_init = time.perf_counter() - t0
    crawl: dict[str, Any] = {}

    def index() -> None:
        try:
            crawl.update(client.command("leo.indexWorkspace", {}, timeout=a.seconds * 10))
        except Exception as exc:  # the session ends before the crawl: expected
            crawl["error"] = str(exc)

    threading.Thread(target=index, daemon=True).start()
    t_start = time.perf_counter()
    first_hit: dict[int, float] = {}
    first_vector_hit: dict[int, float] = {}
    first_answer: float | None = None
    timeline: list[tuple[float, int, float, int]] = []  # t, pending, vector share, hits
    latencies: list[float] = []
    while time.perf_counter() - t_start < a.seconds and len(first_vector_hit) < len(probes):
        found = vec_results = results_n = 0
        pending = 0
        for i, q in enumerate(probes):
            t = time.perf_counter()
            res = client.command("leo.search", {"query": q["query"], "limit": 10}, timeout=60)
            latencies.append((time.perf_counter() - t) * 1000)
            now = time.perf_counter() - t_start
            results = res["results"]
            pending = max(pending, int(res.get("pending", 0)))
            if results and first_answer is None:
                first_answer = now
            results_n += len(results)
            vec_results += sum("vector" in r["sources"] for r in results)
            hit = next((r for r in results if is_hit(r, q, corpus)), None)
            if hit is not None:
                found += 1
                first_hit.setdefault(i, now)
                if "vector" in hit["sources"]:
                    first_vector_hit.setdefault(i, now)
        timeline.append(
            (time.perf_counter() - t_start, pending, vec_results / max(results_n, 1), found)
        )
        time.sleep(a.interval)  # polling cadence of a user retyping a query, not synchronisation
    stats = client.command("leo.overview", {}, timeout=60)
    client.shutdown()

    n = len(probes)
    print(f"workspace: {corpus} ({files} files), {n} probe queries, init {t_init:.1f} s")
    print(f"index state at the end: {json.dumps(stats)[:300]}")
    if first_answer is not None:
        print(f"first non-empty answer: {first_answer:.1f} s after leo.indexWorkspace")
    hits = sorted(first_hit.values())
    if hits:
        print(
            f"correct hit in top 10: first {hits[0]:.1f} s; {len(hits)}/{n} probes within "
            f"{a.seconds:.0f} s; median (of those) {statistics.median(hits):.1f} s"
        )
    else:
        print(f"no correct hit within {a.seconds:.0f} s")
    vhits = sorted(first_vector_hit.values())
    print(
        f"hits carrying a vector source: {len(vhits)}/{n}"
        + (f", first {vhits[0]:.1f} s" if vhits else "")
    )
    lat = sorted(latencies)
    print(
        f"search latency during indexing: p50 {statistics.median(lat):.0f} ms, "
        f"p95 {lat[int(0.95 * (len(lat) - 1))]:.0f} ms ({len(lat)} searches)"
    )
    print(f"{'t (s)':>7} {'pending':>8} {'vector share':>13} {'probes hit':>11}")
    step = max(1, len(timeline) // 15)
    for t, p, share, found in timeline[::step] + timeline[-1:]:
        print(f"{t:7.1f} {p:8d} {share:13.2f} {found:11d}")


if __name__ == "__main__":
    main()
