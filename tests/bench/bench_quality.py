"""Search quality of leo over LSP on a docstring→function task built from the standard library.

Builds the task with the shared evaluation kit (`make_corpus.py`: docstrings blanked, their first
sentences become queries), splits the queries into a *tune* half and a *held-out* half (leo's
ranking constants were chosen on the tune half only), then runs `run_quality.py` against
`<python> -m leo_lsp` in hybrid, vector and lexical mode, plus the kit's BM25 anchor over ideal
function chunks, and prints MRR@10, recall@1/5/10, latency and the ratio to BM25.

    python tests/bench/bench_quality.py                  # ~240 queries, ~3.2k chunks
    python tests/bench/bench_quality.py --max-queries 120 --work /tmp/leo-quality

The index is built once (the first run embeds; later runs reuse the vectors by content hash, as
leo does after a restart). Numbers are noisy on a shared 2-core machine: latency more than MRR.
Goal (issue 4): hybrid ≥ 0.60 MRR@10 and ≥ 1.8× BM25.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# A slice of the standard library: a few thousand chunks, a few minutes of embedding on 2 cores.
STDLIB_PACKAGES = (
    "email",
    "http",
    "json",
    "logging",
    "urllib",
    "concurrent",
    "wsgiref",
    "xmlrpc",
    "collections",
    "html",
    "tomllib",
)
STDLIB_MODULES = ("argparse.py", "shutil.py", "textwrap.py", "pathlib.py")
MODES = ("hybrid", "vector", "lexical")


def eval_dir() -> Path:
    """The shared evaluation kit: ../shared/eval from the repo root (CI), else /work/shared/eval."""
    for candidate in (REPO.parent / "shared" / "eval", Path("/work/shared/eval")):
        if (candidate / "run_quality.py").exists():
            return candidate
    raise SystemExit("evaluation kit not found (looked in ../shared/eval and /work/shared/eval)")


def copy_sources(
    dest: Path,
    packages: tuple[str, ...] = STDLIB_PACKAGES,
    modules: tuple[str, ...] = STDLIB_MODULES,
) -> Path:
    """Copy a slice of the standard library to `dest` (no caches, no tests)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "test", "tests", "*.pyc")
    for pkg in packages:
        if (stdlib / pkg).is_dir():
            shutil.copytree(stdlib / pkg, dest / pkg, ignore=ignore)
    for mod in modules:
        if (stdlib / mod).exists():
            shutil.copy2(stdlib / mod, dest / mod)
    return dest


def split_task(task: Path, work: Path) -> tuple[Path, Path]:
    """Two task dirs sharing the corpus: even-numbered queries (tune), odd-numbered (held out)."""
    lines = (task / "queries.jsonl").read_text().splitlines()
    out = []
    for name, part in (("tune", lines[0::2]), ("heldout", lines[1::2])):
        d = work / f"task-{name}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        (d / "corpus").symlink_to((task / "corpus").resolve(), target_is_directory=True)
        (d / "queries.jsonl").write_text("".join(line + "\n" for line in part))
        out.append(d)
    return out[0], out[1]


def run_json(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run a kit script and parse the JSON line it prints."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_mode(kit: Path, task: Path, mode: str, data_dir: Path) -> dict[str, Any]:
    """run_quality.py in one mode, against this interpreter's leo_lsp."""
    options = json.dumps({"dataDir": str(data_dir)})
    server = f"{sys.executable} -m leo_lsp"
    t0 = time.perf_counter()
    out = run_json(
        [
            sys.executable,
            str(kit / "run_quality.py"),
            str(task),
            "--server",
            server,
            "--mode",
            mode,
            "--options",
            options,
        ],
        timeout=7200,
    )
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="work dir (default: a temp dir)")
    ap.add_argument("--max-queries", type=int, default=240)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--tune-half", action="store_true", help="also report the tune half")
    a = ap.parse_args()
    kit = eval_dir()
    work = a.work or Path(tempfile.mkdtemp(prefix="leo-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    src = copy_sources(work / "src")
    task = work / "task"
    subprocess.run(
        [
            sys.executable,
            str(kit / "make_corpus.py"),
            str(src),
            str(task),
            "--max-queries",
            str(a.max_queries),
            "--seed",
            str(a.seed),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tune, heldout = split_task(task, work)
    data_dir = work / "data"
    env_note = f"{os.cpu_count()} cpus, python {sys.version.split()[0]}"
    print(f"task: {task} ({a.max_queries} queries; tune/held-out halves), {env_note}")

    halves = [("held-out", heldout)] + ([("tune", tune)] if a.tune_half else [])
    for label, part in halves:
        bm25 = run_json([sys.executable, str(kit / "baseline_bm25.py"), str(part)], timeout=600)
        rows: list[tuple[str, dict[str, Any]]] = []
        for mode in a.modes.split(","):
            rows.append((mode, run_mode(kit, part, mode, data_dir)))
        n = bm25["queries"]
        print(f"\n{label} half: {n} queries; BM25 anchor (ideal chunks) MRR@10 {bm25['mrr10']}")
        head = f"{'mode':8} {'MRR@10':>7} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'×BM25':>6}"
        print(head + f" {'p50 ms':>7} {'p95 ms':>7} {'index s':>8}")
        for mode, r in rows:
            ratio = r["mrr10"] / bm25["mrr10"] if bm25["mrr10"] else float("inf")
            print(
                f"{mode:8} {r['mrr10']:7.4f} {r['recall1']:6.3f} {r['recall5']:6.3f} "
                f"{r['recall10']:6.3f} {ratio:6.2f} {r['search_ms_p50']:7.1f} "
                f"{r['search_ms_p95']:7.1f} {r['index_s']:8.1f}"
            )
        print(json.dumps({"half": label, "bm25": bm25, "modes": dict(rows)}))


if __name__ == "__main__":
    main()
