"""Fit the embedded model's query adapter (leo_lsp/embeddings/query_adapter.py).

On fit_ranker.py's training task (standard-library modules sharing no file with bench_quality):
embeds every query with the plain model, takes every chunk vector of the indexed training corpus,
and fits `A` so that `q + A q` ranks the query's function first (softmax over all chunks,
temperature TAU, L2 towards the identity map, Adam). Writes one adapter per cross-validation fold
into the work dir (fit_ranker.py then fits the ranking weights on out-of-fold query vectors) and
the adapter fitted on every query into the package.

    python tests/bench/fit_adapter.py --work /tmp/leo-train [--eval /tmp/leo-quality/task-tune \\
        --eval-data /tmp/leo-quality/data]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_ranker import fold_of, is_hit, training_task  # noqa: E402

from leo_lsp.embeddings.local import LocalEmbedder  # noqa: E402
from leo_lsp.embeddings.query_adapter import ASSET, adapt  # noqa: E402
from leo_lsp.services import build_services  # noqa: E402
from leo_lsp.settings import build_settings  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TAU = 0.05
FOLDS = 3


async def corpus_vectors(
    task: Path, data_dir: Path
) -> tuple[np.ndarray, list[tuple[Path, int, int]]]:
    """Index the task's corpus (vectors reused by content hash) and return every chunk vector."""
    corpus = (task / "corpus").resolve()
    services = build_services(build_settings({"dataDir": str(data_dir)}))
    try:
        project = services.registry.add_folder(corpus)
        await services.indexer.crawl(project)
        rows = project.store.execute(
            "SELECT c.id, f.path, c.start_line, c.end_line"
            " FROM chunks c JOIN files f ON f.id = c.file_id"
        )
        vectors = project.store.vectors_of([r[0] for r in rows])
    finally:
        await services.close()
    kept = [r for r in rows if r[0] in vectors]
    matrix = np.array([vectors[r[0]] for r in kept], dtype=np.float32)
    return matrix, [(corpus / r[1], int(r[2]), int(r[3])) for r in kept]


def labels(
    queries: list[dict[str, Any]], spans: list[tuple[Path, int, int]], corpus: Path
) -> np.ndarray:
    """labels[i, j]: chunk j is a hit for query i (the kit's definition)."""
    out = np.zeros((len(queries), len(spans)), dtype=bool)
    by_path: dict[str, list[int]] = {}
    for j, (path, _, _) in enumerate(spans):
        by_path.setdefault(str(path.relative_to(corpus)), []).append(j)
    for i, q in enumerate(queries):
        for j in by_path.get(q["path"], []):
            path, start, end = spans[j]
            out[i, j] = is_hit(path, start, end, q, corpus)
    return out


def fit(q: np.ndarray, d: np.ndarray, y: np.ndarray, l2: float, steps: int) -> np.ndarray:
    """`A` minimising the softmax loss of q + A q against every chunk (queries with a hit)."""
    keep = y.any(axis=1)
    q, y = q[keep], y[keep].astype(np.float32)
    y /= y.sum(axis=1, keepdims=True)
    a = np.zeros((q.shape[1], q.shape[1]), dtype=np.float32)
    m, v = np.zeros_like(a), np.zeros_like(a)
    for t in range(1, steps + 1):
        s = (q + q @ a.T) @ d.T / TAU
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        grad = ((p - y) @ d).T @ q / (len(q) * TAU) + l2 * a
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        a -= 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return a


def mrr(q: np.ndarray, d: np.ndarray, y: np.ndarray) -> float:
    """MRR@10 of an exact cosine ranking."""
    scores = q @ d.T
    total = 0.0
    for i in range(len(q)):
        top = np.argsort(-scores[i])[:10]
        rank = next((k + 1 for k, j in enumerate(top) if y[i, j]), None)
        total += 1.0 / rank if rank else 0.0
    return total / max(1, len(q))


def load(
    task: Path, data: Path, model: LocalEmbedder
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
    queries = [json.loads(line) for line in (task / "queries.jsonl").read_text().splitlines()]
    d, spans = asyncio.run(corpus_vectors(task, data))
    q = model.embed_sync([x["query"] for x in queries])
    return q, d, labels(queries, spans, (task / "corpus").resolve()), queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/leo-train"))
    ap.add_argument("--l2", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval", type=Path, default=None)
    ap.add_argument("--eval-data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "leo_lsp" / "embeddings" / "assets" / ASSET)
    a = ap.parse_args()
    model = LocalEmbedder(query_adapter=False)
    q, d, y, queries = load(training_task(a.work), a.work / "data", model)
    folds = np.array([fold_of(x, FOLDS) for x in queries])
    base, adapted = [], []
    for k in range(FOLDS):
        fold_a = fit(q[folds != k], d, y[folds != k], a.l2, a.steps)
        np.save(a.work / f"adapter-fold{k}.npy", fold_a)
        held = folds == k
        base.append(mrr(q[held], d, y[held]))
        adapted.append(mrr(adapt(q[held], fold_a), d, y[held]))
    print(f"training task, vector-only MRR@10, {FOLDS}-fold CV: plain {np.mean(base):.4f}, "
          f"adapted {np.mean(adapted):.4f} ({len(queries)} queries, {len(d)} chunks)")  # fmt: skip
    full = fit(q, d, y, a.l2, a.steps)
    np.save(a.out, full.astype(np.float16))
    print(f"wrote {a.out} (l2 {a.l2}, {a.steps} steps, tau {TAU})")
    if a.eval is not None:
        eq, ed, ey, _ = load(a.eval, a.eval_data or a.work / "eval-data", model)
        plain, mapped = mrr(eq, ed, ey), mrr(adapt(eq, full), ed, ey)
        print(f"{a.eval.name}: plain {plain:.4f}, adapted {mapped:.4f}")


if __name__ == "__main__":
    main()
