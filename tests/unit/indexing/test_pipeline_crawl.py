"""The crawl through the real services (model, sqlite-vec, tree-sitter): cancellation is safe."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from leo_lsp.embeddings.local import LocalEmbedder
from leo_lsp.indexing import pipeline
from leo_lsp.services import build_services
from leo_lsp.settings import build_settings


async def test_a_cancelled_crawl_never_deletes_what_it_did_not_see(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    for name in ("alpha", "beta", "gamma"):
        (root / f"{name}.py").write_text(f"def {name}_value(x):\n    return x + 1\n")
    services = build_services(build_settings({"dataDir": str(tmp_path / "data")}, {}))
    try:
        project = services.registry.add_folder(root)
        first = await services.indexer.crawl(project)
        assert first.files == 3 and first.pending == 0
        cancel = asyncio.Event()
        cancel.set()  # superseded before its walk saw anything
        report = await services.indexer.crawl(project, force=True, cancel=cancel)
        assert report.cancelled and report.removed == 0
        assert len(project.store.file_states()) == 3
        again = await services.indexer.crawl(project)
        assert again.unchanged == 3 and again.embedded == 0
    finally:
        await services.close()


class _RecordingEmbedder(LocalEmbedder):
    """The real model, recording every text it embeds as a document, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    async def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        return await super().embed_documents(texts)


async def test_a_whole_project_pass_walks_files_in_groups_chunks_before_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Groups of two files: a pass over five files must still embed every chunk, then every name.
    monkeypatch.setattr(pipeline, "FILE_GROUP", 2)
    root = tmp_path / "ws"
    root.mkdir()
    for i, name in enumerate(("alpha", "beta", "gamma", "delta", "epsilon")):
        path = root / f"{name}.py"
        path.write_text(f"def {name}_value(x):\n    return x + {i}\n")
        os.utime(path, ns=(i * 10**9, i * 10**9))
    embedder = _RecordingEmbedder()
    services = build_services(
        build_settings({"dataDir": str(tmp_path / "data")}, {}), embedder=embedder
    )
    try:
        project = services.registry.add_folder(root)
        scopes: list[object] = []
        real_pending = project.store.pending

        def pending(limit: int = 10_000, paths: object = None, **kw: object) -> object:
            scopes.append(paths)
            return real_pending(limit, paths, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(project.store, "pending", pending)
        await services.indexer.crawl(project)
        assert None not in scopes  # no query over every chunk (seconds each at 1M chunks)
        assert max(len(p) for p in scopes if isinstance(p, list)) <= 2
        assert real_pending(100) == []
        names = [t for t in embedder.texts if not t.startswith("def ")]
        chunks = [t for t in embedder.texts if t.startswith("def ")]
        assert len(chunks) == 5 and len(names) == 5
        last_chunk = max(i for i, t in enumerate(embedder.texts) if t.startswith("def "))
        assert all(embedder.texts.index(n) > last_chunk for n in names)
        # The most recently changed group first (length-sorted within it).
        assert {c.split("_")[0] for c in chunks[:2]} == {"def epsilon", "def delta"}
        assert project.store.paths_by_recency()[0] == "epsilon.py"
    finally:
        await services.close()
