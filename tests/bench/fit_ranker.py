"""Fit leo's hybrid re-ranking weights on a training task disjoint from the quality benchmark.

The quality benchmark (bench_quality.py) reports on a slice of the standard library; the weights
in `leo_lsp/search.py` are fitted here on *other* standard-library modules (TRAIN_PACKAGES and
TRAIN_MODULES share no file with it), so neither half of the benchmark is seen while fitting.

    python tests/bench/fit_ranker.py --work /tmp/leo-train            # build, index, dump, fit
    python tests/bench/fit_ranker.py --work /tmp/leo-train --eval /tmp/leo-quality/task-tune \
        --eval-data /tmp/leo-quality/data                               # offline MRR on a task

Steps: copy the training slice, build a docstring→function task with the shared kit's
make_corpus.py, index it in-process with leo's services (embedded model), collect every query's
hybrid candidates with their FEATURES, and fit a linear scorer with a listwise softmax loss (L2).
Prints the fitted weights (paste into HYBRID_WEIGHTS / LEXICAL_WEIGHTS) and the offline MRR@10.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import subprocess
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import STDLIB_MODULES, STDLIB_PACKAGES, copy_sources, eval_dir  # noqa: E402

from leo_lsp.search import (  # noqa: E402
    FEATURES,
    HYBRID_WEIGHTS,
    LEXICAL_WEIGHTS,
    Candidate,
    QueryTerms,
    SearchQuery,
)
from leo_lsp.services import build_services  # noqa: E402
from leo_lsp.settings import build_settings  # noqa: E402

TRAIN_PACKAGES = (
    "asyncio", "xml", "multiprocessing", "unittest", "importlib", "sqlite3", "zoneinfo",
)  # fmt: skip
TRAIN_MODULES = (
    "inspect.py", "typing.py", "subprocess.py", "tarfile.py", "zipfile.py", "configparser.py",
    "difflib.py", "_pydecimal.py", "statistics.py", "fractions.py", "calendar.py", "imaplib.py",
    "smtplib.py", "ftplib.py", "socketserver.py", "threading.py", "pickle.py", "pdb.py", "bdb.py",
    "tokenize.py", "ast.py", "dis.py", "locale.py", "gettext.py", "optparse.py", "csv.py",
    "enum.py", "dataclasses.py", "mailbox.py", "ipaddress.py", "datetime.py", "tempfile.py",
    "random.py", "pprint.py", "platform.py", "doctest.py", "traceback.py", "functools.py",
    "contextlib.py", "_pyio.py", "plistlib.py", "mimetypes.py", "shlex.py", "gzip.py", "uuid.py",
    "selectors.py", "trace.py", "pstats.py", "fileinput.py", "filecmp.py", "glob.py", "heapq.py",
)  # fmt: skip
assert not set(TRAIN_PACKAGES) & set(STDLIB_PACKAGES)
assert not set(TRAIN_MODULES) & set(STDLIB_MODULES)


def training_task(work: Path, max_queries: int = 1500) -> Path:
    """The training task in `work/task`, built once (copy of the slice, make_corpus.py)."""
    task = work / "task"
    if not (task / "queries.jsonl").exists():
        src = copy_sources(work / "src", TRAIN_PACKAGES, TRAIN_MODULES)
        subprocess.run(
            [sys.executable, str(eval_dir() / "make_corpus.py"), str(src), str(task),
             "--max-queries", str(max_queries), "--seed", "11"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return task


def fold_of(q: dict[str, Any], folds: int = 3) -> int:
    """A query's cross-validation fold, by its function (stable across scripts and runs)."""
    return zlib.crc32(f"{q['path']}:{q['start']}".encode()) % folds


def fold_adapters(work: Path) -> list[np.ndarray] | None:
    """Out-of-fold query adapters written by fit_adapter.py (None if there are none)."""
    paths = sorted(work.glob("adapter-fold*.npy"))
    return [np.load(p).astype(np.float32) for p in paths] or None


def is_hit(path: Path, start: int, end: int, q: dict[str, Any], corpus: Path) -> bool:
    """The kit's definition (run_quality.py): right file, overlapping, not much larger."""
    try:
        rel = path.resolve().relative_to(corpus.resolve())
    except ValueError:
        return False
    if str(rel) != q["path"]:
        return False
    s, e = start + 1, end + 1
    span = q["end"] - q["start"] + 1
    overlap = min(e, q["end"]) - max(s, q["start"]) + 1
    return overlap > 0 and (e - s + 1) <= max(3 * span, span + 30)


async def collect(
    task: Path,
    data_dir: Path,
    mode: str = "hybrid",
    adapters: Sequence[np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Index the task's corpus, then every query's candidates: features, labels, overlap groups.

    With `adapters` (one per fold), each query is embedded with the adapter fitted without its
    fold, so the ranker is fitted on query vectors as good as those of unseen queries.
    """
    corpus = (task / "corpus").resolve()
    settings = build_settings({"dataDir": str(data_dir)})
    services = build_services(settings)
    out: list[dict[str, Any]] = []
    try:
        project = services.registry.add_folder(corpus)
        await services.indexer.crawl(project)
        search = services.search
        queries = [json.loads(line) for line in (task / "queries.jsonl").read_text().splitlines()]
        for q in queries:
            if adapters is not None:
                # A bench-only swap of the embedded model's adapter (see the docstring).
                services.embedder._adapter = adapters[fold_of(q, len(adapters))]
            sq = SearchQuery(query=q["query"], limit=10, mode=mode)
            qvecs, _ = await search.query_vectors(sq.query, [project])
            terms = QueryTerms.of(sq.query)
            cands: list[Candidate] = await asyncio.to_thread(
                search._candidates, [project], sq, mode, qvecs, terms
            )
            if mode == "hybrid":
                await search._rerank(cands, qvecs[services.embedder.model_id], terms)
            out.append(
                {
                    "query": q,
                    "x": np.array([c.features for c in cands], dtype=np.float64),
                    "y": np.array(
                        [
                            is_hit(Path(c.hit.path), c.hit.start_line, c.hit.end_line, q, corpus)
                            for c in cands
                        ]
                    ),
                    "spans": [(c.hit.path, c.hit.start_line, c.hit.end_line) for c in cands],
                    "cands": [
                        {
                            "hit": c.hit,
                            "cosine": c.cosine,
                            "bm25": c.bm25,
                            "name_cosine": c.name_cosine,
                            "sources": c.sources,
                            "continued": c.continued,
                        }
                        for c in cands
                    ],
                }
            )
    finally:
        await services.close()
    return out


def mrr_at_10(rows: Sequence[dict[str, Any]], weights: np.ndarray) -> float:
    """MRR@10 after scoring with `weights` and collapsing overlapping chunks, as leo does."""
    total = 0.0
    for r in rows:
        if len(r["x"]) == 0:
            continue
        order = np.argsort(-(r["x"] @ weights), kind="stable")
        kept: list[tuple[str, int, int]] = []
        for i in order:
            p, s, e = r["spans"][i]
            if any(p == kp and s <= ke and ks <= e for kp, ks, ke in kept):
                continue
            kept.append((p, s, e))
            if r["y"][i]:
                total += 1.0 / len(kept)
                break
            if len(kept) >= 10:
                break
    return total / len(rows)


def fit(rows: Sequence[dict[str, Any]], l2: float, steps: int = 3000) -> np.ndarray:
    """Listwise softmax loss over each query's candidates (queries whose gold is a candidate).

    Candidates are padded to one width and masked, so each Adam step is one batched product
    (~6 s per fit on 1,000 queries, where a per-query loop took minutes).
    """
    usable = [r for r in rows if r["y"].any()]
    dim = usable[0]["x"].shape[1]
    width = max(len(r["x"]) for r in usable)
    x = np.zeros((len(usable), width, dim))
    mask = np.zeros((len(usable), width), dtype=bool)
    y = np.zeros((len(usable), width))
    for i, r in enumerate(usable):
        x[i, : len(r["x"])] = r["x"]
        mask[i, : len(r["x"])] = True
        y[i, : len(r["x"])] = r["y"]
    scale = np.std(x[mask], axis=0)
    scale[scale == 0] = 1.0
    x /= scale
    w = np.zeros(dim)
    m, v = np.zeros(dim), np.zeros(dim)
    lr, b1, b2 = 0.05, 0.9, 0.999
    for t in range(1, steps + 1):
        s = np.where(mask, x @ w, -np.inf)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        q = p * y
        q /= q.sum(axis=1, keepdims=True)
        grad = np.einsum("qc,qcf->f", p - q, x) / len(usable) + l2 * w
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        w -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + 1e-8)
    result: np.ndarray = w / scale
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/leo-train"))
    ap.add_argument("--max-queries", type=int, default=1500)
    ap.add_argument("--l2", type=float, default=0.01)
    ap.add_argument("--mode", default="hybrid", choices=("hybrid", "lexical"))
    ap.add_argument("--eval", type=Path, default=None, help="also score this task offline")
    ap.add_argument("--eval-data", type=Path, default=None, help="its data dir (vectors reused)")
    a = ap.parse_args()
    work: Path = a.work
    task = training_task(work, a.max_queries)
    adapters = fold_adapters(work)
    print(f"query adapter: {'out-of-fold (fit_adapter.py)' if adapters else 'as shipped'}")
    rows = asyncio.run(collect(task, work / "data", a.mode, adapters))
    with open(work / f"rows-{a.mode}.pkl", "wb") as fh:
        pickle.dump(rows, fh)
    current = np.array(HYBRID_WEIGHTS if a.mode == "hybrid" else LEXICAL_WEIGHTS)
    recall = np.mean([r["y"].any() for r in rows])
    print(f"training queries {len(rows)}, gold among candidates {recall:.3f}")
    print(f"current weights: train MRR@10 {mrr_at_10(rows, current):.4f}")
    cv = []
    for k in range(3):
        w = fit([r for r in rows if fold_of(r["query"]) != k], a.l2)
        cv.append(mrr_at_10([r for r in rows if fold_of(r["query"]) == k], w))
    w = fit(rows, a.l2)
    print(f"fitted (l2 {a.l2}): train MRR@10 {mrr_at_10(rows, w):.4f}, 3-fold CV {np.mean(cv):.4f}")
    print("weights = (" + ", ".join(f"{x:.3g}" for x in w) + ")")
    print(dict(zip(FEATURES, (round(float(x), 3) for x in w), strict=True)))
    if a.eval is not None:
        data = a.eval_data or (work / "eval-data")
        erows = asyncio.run(collect(a.eval, data, a.mode))
        with open(work / f"eval-{a.eval.name}-{a.mode}.pkl", "wb") as fh:
            pickle.dump(erows, fh)
        print(
            f"{a.eval.name}: current {mrr_at_10(erows, current):.4f}, "
            f"fitted {mrr_at_10(erows, w):.4f} ({len(erows)} queries)"
        )


if __name__ == "__main__":
    main()
