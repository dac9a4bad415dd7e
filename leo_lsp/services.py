"""Building leo's services from Settings; plain Python, no protocol types."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from leo_lsp.embeddings.factory import create_provider
from leo_lsp.embeddings.provider import EmbeddingProvider
from leo_lsp.gatekeeper.gate import Gatekeeper
from leo_lsp.indexing.chunker import Chunker
from leo_lsp.indexing.languages import detect_language
from leo_lsp.indexing.pipeline import Indexer
from leo_lsp.indexing.projects import Project, ProjectRegistry, project_id_for
from leo_lsp.search import SearchService
from leo_lsp.settings import Settings
from leo_lsp.store.project_store import ProjectStore

logger = logging.getLogger(__name__)


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by the user only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.chmod(path, 0o700)
    except OSError:  # e.g. a read-only data dir: reported when the database fails to open
        pass
    return path


@dataclass
class Services:
    """Everything a running leo needs, built once per session."""

    settings: Settings
    embedder: EmbeddingProvider
    chunker: Chunker
    registry: ProjectRegistry
    indexer: Indexer
    search: SearchService
    notes: list[str] = field(default_factory=list)  # things to tell the user once

    async def close(self) -> None:
        """Flush pending work and close databases and clients."""
        self.registry.close()
        await self.embedder.close()


def build_services(settings: Settings, *, embedder: EmbeddingProvider | None = None) -> Services:
    """Wire the services for `settings` (the embedder may be injected by tests and the CLI)."""
    data_dir = ensure_private_dir(settings.data_path)
    embedder = embedder or create_provider(settings.embedding)
    chunker = Chunker()
    notes: list[str] = []

    def make_project(root: Path, name: str, single_file: Path | None) -> Project:
        pid = project_id_for(root, single_file)
        db_dir = ensure_private_dir(data_dir / "projects" / pid)
        store = ProjectStore(
            db_dir / "index.sqlite3",
            project_id=pid,
            root=str(root),
            dim=embedder.dim,
            model_id=embedder.model_id,
        )
        if store.recovery_note:
            notes.append(store.recovery_note)
        gate = Gatekeeper(root, settings.gatekeeper, settings.index, cache=store, audit=store)
        return Project(pid, name, root, store, gate.rules, gate, single_file)

    registry = ProjectRegistry(make_project)
    indexer = Indexer(registry, chunker, embedder, settings, detect_language)
    return Services(
        settings=settings,
        embedder=embedder,
        chunker=chunker,
        registry=registry,
        indexer=indexer,
        search=SearchService(registry, embedder),
        notes=notes,
    )
