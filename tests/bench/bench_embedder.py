"""Benchmark the embedded model: load time, memory, chunks/s sorted vs unsorted batches.

Run: /work/venv/bin/python tests/bench/bench_embedder.py [--chunks 500] [--threads N] [--repeat 2]

The chunks are real code: the functions of a fixed list of standard-library modules, cut out with
`ast` (the chunker's unit is also a function). Numbers on a shared 2-core machine are noisy: run
twice and read the best. This is a script, not a test; it prints its numbers.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from leo_lsp.embeddings.local import LocalEmbedder, cpu_count  # noqa: E402

MODULES = [
    "json.decoder", "json.encoder", "argparse", "pathlib", "shutil", "textwrap", "difflib",
    "csv", "configparser", "logging.__init__", "http.client", "urllib.parse", "email.message",
    "tarfile", "zipfile", "inspect", "dataclasses", "functools", "tokenize", "ast", "typing",
    "asyncio.tasks", "asyncio.streams", "subprocess", "threading", "collections.__init__",
]  # fmt: skip


def rss_mb() -> float:
    """Resident set size now (Linux /proc), else the peak from getrusage."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stdlib_functions(limit: int) -> list[str]:
    """Source of up to `limit` stdlib functions (3+ lines), module by module, in file order."""
    chunks: list[str] = []
    for name in MODULES:
        spec = importlib.util.find_spec(name.removesuffix(".__init__"))
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        source = Path(spec.origin).read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                segment = ast.get_source_segment(source, node)
                if segment and segment.count("\n") >= 2:
                    chunks.append(segment)
                    if len(chunks) >= limit:
                        return chunks
    return chunks


def timed(embedder: LocalEmbedder, chunks: list[str], *, sort: bool, repeat: int) -> list[float]:
    """Chunks/s of each of `repeat` runs."""
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        embedder.embed_sync(chunks, sort_by_length=sort)
        rates.append(len(chunks) / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    chunks = stdlib_functions(args.chunks)
    rss_start = rss_mb()
    embedder = LocalEmbedder(threads=args.threads or None)
    started = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - started
    rss_loaded = rss_mb()

    tokenizer = embedder._tokenizer  # the bench may peek: token counts explain the speed-up
    lengths = [len(e.ids) for e in tokenizer.encode_batch(chunks)]
    embedder.embed_sync(chunks[:32])  # warm-up: first run allocates arenas

    sorted_rates = timed(embedder, chunks, sort=True, repeat=args.repeat)
    unsorted_rates = timed(embedder, chunks, sort=False, repeat=args.repeat)
    rss_after = rss_mb()

    started = time.perf_counter()
    for query in ["parse a json document", "copy a directory tree", "split a url"]:
        embedder.embed_sync([query])
    query_ms = (time.perf_counter() - started) / 3 * 1000

    threads = args.threads or cpu_count()
    print(f"python {platform.python_version()} on {platform.machine()}, {cpu_count()} cores")
    print(f"chunks: {len(chunks)} stdlib functions; tokens/chunk (capped at 256): "
          f"median {statistics.median(lengths):.0f}, mean {statistics.mean(lengths):.0f}, "
          f"at cap {sum(n >= 256 for n in lengths)}")  # fmt: skip
    print(f"load: {load_s:.2f} s   RSS: start {rss_start:.0f} MB, loaded {rss_loaded:.0f} MB, "
          f"after embedding {rss_after:.0f} MB")  # fmt: skip
    print(f"threads={threads} batch=16")
    print("  length-sorted batches: " + ", ".join(f"{r:.1f}" for r in sorted_rates)
          + f" chunks/s (best {max(sorted_rates):.1f})")  # fmt: skip
    print("  unsorted, padded:      " + ", ".join(f"{r:.1f}" for r in unsorted_rates)
          + f" chunks/s (best {max(unsorted_rates):.1f})")  # fmt: skip
    print(f"  speed-up from sorting: {max(sorted_rates) / max(unsorted_rates):.2f}x")
    print(f"single query latency: {query_ms:.1f} ms")


if __name__ == "__main__":
    main()
