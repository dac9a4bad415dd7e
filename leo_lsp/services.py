"""Building leo's services from Settings; plain Python, no protocol types."""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from leo_lsp.cloud.service import CloudService
from leo_lsp.embeddings.factory import create_provider
from leo_lsp.embeddings.provider import EmbeddingProvider
from leo_lsp.embeddings.registry import EmbedderRegistry
from leo_lsp.gatekeeper.gate import Gatekeeper
from leo_lsp.indexing.chunker import Chunker
from leo_lsp.indexing.languages import detect_language
from leo_lsp.indexing.pipeline import Indexer
from leo_lsp.indexing.projects import Project, ProjectRegistry, project_id_for
from leo_lsp.records import SearchHit
from leo_lsp.search import SearchQuery, SearchService
from leo_lsp.settings import Settings
from leo_lsp.store.project_store import ProjectStore
from leo_lsp.store.user_db import UserDatabase
from leo_lsp.struggle.service import StruggleService

logger = logging.getLogger(__name__)


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by the user only."""
    # mkdir's mode applies to the leaf only: parents it creates (data/projects) get the umask's.
    created = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for p in {path, *created}:
        try:
            os.chmod(p, 0o700)
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
    user_db: UserDatabase
    notes: list[str] = field(default_factory=list)  # things to tell the user once
    # Optional services plug in here (built by their own modules' factories).
    struggles: Any = None
    cloud: Any = None
    embedders: EmbedderRegistry | None = None  # providers by model_id (old models' queries)

    def apply_settings(self, new: Settings) -> list[str]:
        """Take new settings live; return what needs a restart instead."""
        current = self.settings
        current.index = new.index
        current.gatekeeper = new.gatekeeper
        current.struggle = new.struggle
        current.rate_limits = new.rate_limits
        for project in self.registry.all():
            old_gate = project.gate
            project.gate = Gatekeeper(
                project.root, new.gatekeeper, new.index, cache=project.store, audit=project.store
            )
            project.rules = project.gate.rules
            closer = getattr(old_gate, "aclose", None)
            if closer is not None:
                self.indexer.spawn(closer())
        if self.struggles is not None:
            self.struggles.apply_settings(new.struggle)
        if self.cloud is not None:
            self.cloud.apply_rate_limits(new.rate_limits)
        later = []
        if new.embedding != current.embedding:
            later.append("embedding")
        if new.data_dir and new.data_dir != current.data_dir:
            later.append("dataDir")
        return later

    def model_states(self) -> list[dict[str, Any]]:
        """Per project: the model serving searches and, while a switch runs, its progress."""
        out: list[dict[str, Any]] = []
        for project in self.registry.all():
            state: dict[str, Any] = {"projectId": project.id, "model": project.store.serving_model}
            progress = project.store.switch_progress(max_age=1.0)
            if progress is not None:
                state["reembedding"] = {
                    "to": progress["to"],
                    "done": progress["done"],
                    "total": progress["total"],
                }
            out.append(state)
        return out

    async def close(self) -> None:
        """Flush pending work and close databases and clients."""
        await self.indexer.aclose()
        for extra in (self.cloud, self.struggles):
            closer = getattr(extra, "close", None)
            if closer is not None:
                await closer()
        for project in self.registry.all():
            gate_closer = getattr(project.gate, "aclose", None)
            if gate_closer is not None:
                await gate_closer()
        self.registry.close()
        if self.embedders is not None:
            await self.embedders.close()
        await self.embedder.close()
        self.user_db.close()


def stored_dim(db_path: Path, model_id: str) -> int:
    """The vector dimension a database recorded for `model_id` (0 if none or unreadable).

    Looks at the serving and the target model (schema v3) and the single model of older ones.
    """
    if not db_path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
        try:
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    for model_key, dim_key in (
        ("serving_model", "serving_dim"),
        ("target_model", "target_dim"),
        ("model_id", "dim"),
    ):
        if rows.get(model_key) == model_id:
            try:
                return max(0, int(rows.get(dim_key, 0)))
            except ValueError:
                return 0
    return 0


def build_services(settings: Settings, *, embedder: EmbeddingProvider | None = None) -> Services:
    """Wire the services for `settings` (the embedder may be injected by tests and the CLI)."""
    data_dir = ensure_private_dir(settings.data_path)
    embedder = embedder or create_provider(settings.embedding)
    chunker = Chunker()
    notes: list[str] = []

    def make_project(root: Path, name: str, single_file: Path | None) -> Project:
        pid = project_id_for(root, single_file)
        db_dir = ensure_private_dir(data_dir / "projects" / pid)
        # A server's dimension is unknown while it is down: keep the stored vectors of the same
        # model (or a placeholder table) until the first answer says (Indexer.model_changed).
        dim = embedder.dim or stored_dim(db_dir / "index.sqlite3", embedder.model_id) or 1
        store = ProjectStore(
            db_dir / "index.sqlite3",
            project_id=pid,
            root=str(root),
            dim=dim,
            model_id=embedder.model_id,
        )
        if store.recovery_note:
            notes.append(store.recovery_note)
        gate = Gatekeeper(root, settings.gatekeeper, settings.index, cache=store, audit=store)
        return Project(pid, name, root, store, gate.rules, gate, single_file)

    registry = ProjectRegistry(make_project)
    user_db = UserDatabase(data_dir / "leo.sqlite3")
    if user_db.recovery_note:
        notes.append(user_db.recovery_note)
    indexer = Indexer(registry, chunker, embedder, settings, detect_language)
    embedders = EmbedderRegistry(embedder)
    indexer.embedders = embedders
    model_hooks = getattr(embedder, "on_model_change", None)
    if isinstance(model_hooks, list):
        model_hooks.append(indexer.model_changed)
    search = SearchService(registry, embedder, embedders=embedders)

    async def search_hits(query: str, limit: int) -> list[SearchHit]:
        return (await search.search(SearchQuery(query=query, limit=limit))).hits

    def project_of(uri: str) -> str:
        path = Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)
        project = registry.for_path(path, create=False)
        return project.id if project is not None else ""

    struggles = StruggleService(
        settings.struggle, user_db.conn, user_db.lock, search_hits, project_of
    )
    cloud = CloudService(settings, user_db)
    # Struggle metadata is queued for sync in the same transaction as the struggle row.
    struggles.on_event.append(cloud.struggle_hook)
    return Services(
        settings=settings,
        embedder=embedder,
        chunker=chunker,
        registry=registry,
        indexer=indexer,
        search=search,
        user_db=user_db,
        notes=notes,
        struggles=struggles,
        cloud=cloud,
        embedders=embedders,
    )
