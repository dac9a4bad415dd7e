"""Latency and recall of leo's in-memory vector index (leo_lsp.store.vector_index).

Builds clustered synthetic embeddings (a shared mean, a decaying spectrum, a random rotation,
clusters of uneven spread: closer to real sentence embeddings than i.i.d. Gaussians), then times
single-query searches, unfiltered and filtered, against an exact float32 scan for recall@k.

    python tests/bench/bench_search.py                       # 100k and 1M rows, ~3 min on 2 cores
    python tests/bench/bench_search.py --sizes 10000,100000 --queries 50
    python tests/bench/bench_search.py --real-docs d.npy --real-queries q.npy   # real embeddings

Numbers are pure index time (no embedding, no sqlite). "cpu" is process CPU time, which a busy
shared machine inflates far less than wall time; the wall-clock columns are what a user waits.

The second table (`--lsp-sizes`, default 10k and 100k; add 1000000 for 1M, ~11 min) is what an
editor waits: a real `leo-lsp` over stdio answering `leo.search` (hybrid, vector, lexical) over a
synthetic Python workspace of that many functions, the query embedded by the real local model.
The workspace is indexed first in-process by leo's own crawler with a stand-in embedder of the
same model id (clustered vectors at memory speed: the real model would need hours for 1M), so
the server starts warm: every file unchanged, every vector stored.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

from bench_bounds import NOUNS, WORDS, make_workspace, pct  # noqa: E402
from rel_support import RawLsp  # noqa: E402

from leo_lsp.embeddings.local import DIM, MODEL_ID  # noqa: E402
from leo_lsp.services import build_services  # noqa: E402
from leo_lsp.settings import build_settings  # noqa: E402
from leo_lsp.store.vector_index import VectorIndex  # noqa: E402

F32 = npt.NDArray[np.float32]
LANGUAGES = np.array(["python", "typescript", "go", "rust"])
LANGUAGE_SHARE = [0.5, 0.3, 0.15, 0.05]
PROJECTS = np.array(["app", "lib", "vendor"])
PROJECT_SHARE = [0.6, 0.3, 0.1]


def clustered(n: int, n_queries: int, dim: int, seed: int) -> tuple[F32, F32]:
    """``n`` unit vectors in clusters of ~50, plus queries drawn near random clusters."""
    rng = np.random.default_rng(seed)
    scales = (np.arange(1, dim + 1, dtype=np.float32) ** -0.5).astype(np.float32)
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    n_clusters = max(1, n // 50)
    mean = rng.standard_normal(dim).astype(np.float32) * scales * 1.5
    centres = mean + rng.standard_normal((n_clusters, dim), dtype=np.float32) * scales
    spread = rng.uniform(0.4, 1.0, n_clusters).astype(np.float32)

    def sample(m: int) -> F32:
        c = rng.integers(0, n_clusters, m)
        x = centres[c] + rng.standard_normal((m, dim), dtype=np.float32) * scales * spread[c, None]
        x = x @ rotation
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        unit: F32 = x.astype(np.float32, copy=False)
        return unit

    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(start + 100_000, n)
        out[start:stop] = sample(stop - start)
    return out, sample(n_queries)


@dataclass
class Metadata:
    languages: npt.NDArray[np.str_]
    projects: npt.NDArray[np.str_]
    paths: npt.NDArray[np.str_]


def metadata(n: int, seed: int) -> Metadata:
    """Skewed languages/projects; ~20 chunks per file, 100 files per package."""
    rng = np.random.default_rng(seed + 1)
    files = np.maximum(1, n // 20)
    file_of = rng.integers(0, files, n)
    paths = np.char.add(
        np.char.add(np.char.add("src/pkg", (file_of // 100).astype(str)), "/mod"),
        np.char.add(file_of.astype(str), ".py"),
    )
    return Metadata(
        languages=rng.choice(LANGUAGES, n, p=LANGUAGE_SHARE),
        projects=rng.choice(PROJECTS, n, p=PROJECT_SHARE),
        paths=paths,
    )


@dataclass
class Case:
    name: str
    languages: set[str] | None = None
    projects: set[str] | None = None
    glob: str | None = None
    #: Pass one filter object to every query (its verdicts are then remembered by the index),
    #: rather than a new one per query (every distinct path judged afresh).
    reuse_filter: bool = False

    def mask(self, meta: Metadata) -> npt.NDArray[np.bool_] | None:
        keep = np.ones(len(meta.paths), dtype=np.bool_)
        if self.languages is not None:
            keep &= np.isin(meta.languages, list(self.languages))
        if self.projects is not None:
            keep &= np.isin(meta.projects, list(self.projects))
        if self.glob is not None:
            keep &= np.array([fnmatch.fnmatchcase(p, self.glob) for p in meta.paths.tolist()])
        return keep

    def path_filter(self) -> Callable[[str], bool] | None:
        glob = self.glob
        if glob is None:
            return None
        return lambda path: fnmatch.fnmatchcase(path, glob)


CASES = [
    Case("unfiltered"),
    Case("lang=python (50%)", languages={"python"}),
    Case("lang=rust (5%)", languages={"rust"}),
    Case("lang+project (9%)", languages={"typescript"}, projects={"lib"}),
    Case("glob src/pkg1*/ (~11%)", glob="src/pkg1*/*"),
    Case("glob one package (<1%)", glob="src/pkg3/*"),
    Case("  same, filter reused", glob="src/pkg3/*", reuse_filter=True),
]


def exact_top(vectors: F32, query: F32, k: int, keep: npt.NDArray[np.bool_]) -> set[int]:
    scores = vectors @ query
    scores[~keep] = -np.inf
    top = np.argpartition(scores, -k)[-k:]
    return {int(i) for i in top if keep[i]}


def run(
    vectors: F32,
    queries: F32,
    meta: Metadata,
    k: int,
    index_options: dict[str, object],
    cases: list[Case],
    label: str,
) -> None:
    n = len(vectors)
    index = VectorIndex(vectors.shape[1], **index_options)  # type: ignore[arg-type]
    start = time.perf_counter()
    index.add(
        np.arange(n, dtype=np.int64),
        vectors,
        meta.languages.tolist(),
        meta.projects.tolist(),
        meta.paths.tolist(),
    )
    build_s = time.perf_counter() - start
    print(
        f"\n## {label}: {n:,} rows × {vectors.shape[1]} dims, k={k}, {len(queries)} queries; "
        f"build {build_s:.1f} s, index memory {index.memory_bytes() / 2**20:.0f} MiB "
        f"(float32 matrix alone: {vectors.nbytes / 2**20:.0f} MiB)"
    )
    print(
        f"{'case':<26} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8} {'recall@k':>9} {'exact p50':>10}"
    )
    for case in cases:
        keep = case.mask(meta)
        assert keep is not None
        shared_filter = case.path_filter()
        times, cpu_times, recalls, exact_times = [], [], [], []
        for query in queries:
            path_filter = shared_filter if case.reuse_filter else case.path_filter()
            t0, c0 = time.perf_counter(), time.process_time()
            got = index.search(
                query, k, languages=case.languages, projects=case.projects, path_filter=path_filter
            )
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            truth = exact_top(vectors, query, k, keep)
            if truth:
                recalls.append(len(truth & {i for i, _ in got}) / len(truth))
        for query in queries[:3]:
            t0 = time.perf_counter()
            index.search(
                query,
                k,
                languages=case.languages,
                projects=case.projects,
                path_filter=case.path_filter(),
                exact=True,
            )
            exact_times.append(time.perf_counter() - t0)
        ms = np.array(times) * 1000
        print(
            f"{case.name:<26} {np.median(ms):8.2f} {np.percentile(ms, 95):8.2f} "
            f"{np.median(cpu_times) * 1000:8.2f} {np.mean(recalls):9.3f} "
            f"{np.median(exact_times) * 1000:10.1f}"
        )
    scan, scan_cpu = [], []
    for query in queries[:20]:
        t0, c0 = time.perf_counter(), time.process_time()
        np.argpartition(vectors @ query, -k)[-k:]
        scan.append(time.perf_counter() - t0)
        scan_cpu.append(time.process_time() - c0)
    print(
        f"{'(numpy float32 full scan)':<26} {np.median(scan) * 1000:8.2f} {'':>8} "
        f"{np.median(scan_cpu) * 1000:8.2f}"
    )


FUNCS_PER_FILE = 50


class StandInEmbedder:
    """The embedded model's id and dimension with clustered vectors made at memory speed."""

    def __init__(self, clusters: int = 512, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
        self._centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def dim(self) -> int:
        return DIM

    async def embed_documents(self, texts: Sequence[str]) -> F32:
        keys = np.array([zlib.crc32(t.encode()) for t in texts], dtype=np.int64)
        rng = np.random.default_rng(int(keys.sum()) if len(keys) else 0)
        noise = rng.standard_normal((len(texts), DIM)).astype(np.float32) / np.sqrt(DIM)
        v = self._centres[keys % len(self._centres)] + 0.8 * noise
        out: F32 = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        return out

    async def embed_query(self, text: str) -> F32:
        row: F32 = (await self.embed_documents([text]))[0]
        return row

    async def close(self) -> None:
        return None


async def populate(workspace: Path, data_dir: Path) -> int:
    """Crawl `workspace` into `data_dir` with leo's own services and the stand-in embedder."""
    services = build_services(
        build_settings({"dataDir": str(data_dir)}), embedder=StandInEmbedder()
    )
    try:
        project = services.registry.add_folder(workspace)
        await services.indexer.crawl(project)
        return int(project.store.stats()["chunks"])
    finally:
        await services.close()


def lsp_round_trips(size: int, n_queries: int, tmp: Path) -> list[str]:
    """Table rows for one size: leo.search round trips over stdio, per mode."""
    ws, data = tmp / f"ws-{size}", tmp / f"data-{size}"
    t0 = time.perf_counter()
    make_workspace(ws, max(1, size // FUNCS_PER_FILE), FUNCS_PER_FILE)
    chunks = asyncio.run(populate(ws, data))
    built = time.perf_counter() - t0
    lsp = RawLsp(data)
    rows = []
    try:
        t0 = time.perf_counter()
        lsp.initialize(ws, timeout=1800)
        index = lsp.result("leo.indexWorkspace", {}, timeout=3600)
        ready = time.perf_counter() - t0
        lsp.result("leo.search", {"query": "warm up the model", "mode": "vector"})
        for mode in ("hybrid", "vector", "lexical"):
            times, server = [], []
            for i in range(n_queries):
                query = f"{WORDS[i % len(WORDS)]} the {NOUNS[(i * 7) % len(NOUNS)]} items"
                t = time.perf_counter()
                res = lsp.result("leo.search", {"query": query, "limit": 10, "mode": mode})
                times.append((time.perf_counter() - t) * 1000)
                server.append(float(res.get("tookMs", 0.0)))
                assert res["results"], res
            rows.append(
                f"{chunks:>10,} {mode:<8} {pct(times, 0.5):8.1f} {pct(times, 0.95):8.1f} "
                f"{pct(server, 0.5):9.1f} {ready:9.1f} {built:8.0f}"
            )
        assert index.get("embedded", 0) == 0, index  # warm: nothing was re-embedded
    finally:
        lsp.shutdown()
    return rows


def run_lsp(sizes: list[int], n_queries: int) -> None:
    """Print the LSP round-trip table."""
    print(
        "\nleo.search over stdio (real leo-lsp, query embedded by the local model)\n"
        f"{'chunks':>10} {'mode':<8} {'p50 ms':>8} {'p95 ms':>8} {'server ms':>9} "
        f"{'start s':>9} {'build s':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="leo-bench-lsp-") as tmp:
        for size in sizes:
            for row in lsp_round_trips(size, n_queries, Path(tmp)):
                print(row, flush=True)


def main() -> None:
    """Parse flags, then benchmark each size (and the real embeddings when given)."""
    # The data generation's own matrix products: two OpenBLAS threads on two busy cores thrash
    # (the index itself never uses more than one).
    threadpool_limits(limits=1, user_api="blas")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--coarse-dim", type=int, default=None)
    parser.add_argument("--candidates", type=int, default=None)
    parser.add_argument("--store-dtype", choices=["float16", "float32"], default=None)
    parser.add_argument("--real-docs", type=Path, help=".npy of real document embeddings")
    parser.add_argument("--real-queries", type=Path, help=".npy of real query embeddings")
    parser.add_argument("--lsp-sizes", default="10000,100000", help="'' to skip the LSP table")
    parser.add_argument("--lsp-queries", type=int, default=50)
    args = parser.parse_args()
    options: dict[str, object] = {}
    if args.coarse_dim is not None:
        options["coarse_dim"] = args.coarse_dim
    if args.candidates is not None:
        options["candidates"] = args.candidates
    if args.store_dtype is not None:
        options["store_dtype"] = getattr(np, args.store_dtype)
    print(f"index options: {options or 'defaults'}")
    for size in (int(s) for s in args.sizes.split(",") if s):
        t0 = time.perf_counter()
        vectors, queries = clustered(size, args.queries, args.dim, args.seed)
        meta = metadata(size, args.seed)
        print(f"\n(generated {size:,} clustered vectors in {time.perf_counter() - t0:.1f} s)")
        run(vectors, queries, meta, args.k, options, CASES, "clustered synthetic")
        del vectors
    if args.real_docs and args.real_queries:
        docs = np.load(args.real_docs).astype(np.float32)
        real_queries = np.load(args.real_queries).astype(np.float32)[: args.queries]
        run(
            docs,
            real_queries,
            metadata(len(docs), args.seed),
            args.k,
            options,
            CASES[:3],
            "real MiniLM embeddings",
        )
    lsp_sizes = [int(s) for s in args.lsp_sizes.split(",") if s]
    if lsp_sizes:
        run_lsp(lsp_sizes, args.lsp_queries)


if __name__ == "__main__":
    main()
