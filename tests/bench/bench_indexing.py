"""Indexing throughput vs the embedder's raw rate, and warm-start re-crawl speed.

1. Raw rate: the local model embeds what a crawl embeds — every distinct chunk and every distinct
   name view (the re-ranking signal) — in length-sorted batches of 16.
2. Crawl rate: a full first crawl of the same corpus through the real services (gate, chunk,
   store, embed) — texts embedded per second, and its share of the raw rate (goal ≥ 90%).
3. Warm start: a second crawl of the unchanged corpus by a fresh process-equivalent (new services
   on the same data dir) — its time, and how many times faster than the first (goal ≥ 50×).

    python tests/bench/bench_indexing.py [--files 120] [--src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from leo_lsp.embeddings.local import LocalEmbedder
from leo_lsp.indexing.chunker import Chunker
from leo_lsp.services import build_services
from leo_lsp.settings import build_settings
from leo_lsp.store.lexical import name_view
from leo_lsp.store.project_store import embed_text


def corpus(src: Path, dest: Path, files: int) -> list[Path]:
    picked = sorted(p for p in src.glob("*.py") if 2_000 < p.stat().st_size < 60_000)[:files]
    for p in picked:
        shutil.copy(p, dest / p.name)
    return [dest / p.name for p in picked]


async def crawl(data: Path, root: Path, embedder: LocalEmbedder) -> tuple[float, dict[str, int]]:
    services = build_services(build_settings({"dataDir": str(data)}, {}), embedder=embedder)
    project = services.registry.add_folder(root)
    t0 = time.perf_counter()
    report = await services.indexer.crawl(project)
    took = time.perf_counter() - t0
    services.registry.close()
    return took, {
        "chunks": report.chunks,
        "embedded": report.embedded,
        "unchanged": report.unchanged,
        "files": report.files,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--src", type=Path, default=Path(os.__file__).parent)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="leo-bench-index-"))
    root = work / "src"
    root.mkdir()
    paths = corpus(a.src, root, a.files)
    embedder = LocalEmbedder()
    embedder.load()
    chunker = Chunker()
    chunks = [
        c for p in paths for c in chunker.chunk(p.read_text(errors="replace"), p.name, "python")
    ]
    # What a crawl embeds: each distinct chunk text, and each distinct name view (re-ranking).
    texts = list(dict.fromkeys(embed_text(c.text, c.context) for c in chunks))
    names = list(dict.fromkeys(name_view(c.symbol, c.scope, c.text) for c in chunks))
    t0 = time.perf_counter()
    embedder.embed_sync(texts)
    embedder.embed_sync(names)
    raw = (len(texts) + len(names)) / (time.perf_counter() - t0)
    print(f"corpus: {len(paths)} files, {len(texts)} distinct chunks + {len(names)} name views")
    print(f"raw embedder rate (length-sorted batches of 16): {raw:.1f} texts/s")

    first, r1 = asyncio.run(crawl(work / "data", root, embedder))
    rate = r1["embedded"] / first
    print(
        f"first crawl: {first:.1f} s, {r1['embedded']} texts embedded → {rate:.1f} texts/s "
        f"= {100 * rate / raw:.0f}% of raw (goal ≥ 90%); {r1['chunks'] / first:.1f} chunks/s"
    )
    second, r2 = asyncio.run(crawl(work / "data", root, embedder))
    print(
        f"warm re-crawl: {second * 1000:.1f} ms, {r2['unchanged']} unchanged, "
        f"{r2['embedded']} embedded → {first / second:.0f}× faster (goal ≥ 50×)"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
