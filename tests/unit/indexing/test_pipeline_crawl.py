"""The crawl through the real services (model, sqlite-vec, tree-sitter): cancellation is safe."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
