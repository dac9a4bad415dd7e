"""`leo.*` commands over workspace/executeCommand: parse arguments, call a service, shape JSON."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from leo_lsp import __version__
from leo_lsp.errors import InvalidArguments, LeoError, NotFound, OutsideWorkspace
from leo_lsp.features.arguments import (
    DecisionsArgs,
    IndexWorkspaceArgs,
    NoArgs,
    ProjectArgs,
    UriArgs,
    parse,
)
from leo_lsp.features.crawls import start_crawl
from leo_lsp.features.uris import path_to_uri, uri_to_path
from leo_lsp.records import SearchHit
from leo_lsp.search import SearchQuery
from leo_lsp.server import LeoServer

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def wrap_errors(fn: F) -> F:
    """Turn leo's errors into JSON-RPC errors with their code and a message a person can act on."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except LeoError as exc:
            raise JsonRpcException(
                message=exc.message, code=exc.code, data=exc.data or None
            ) from exc

    return wrapper  # type: ignore[return-value]


def to_range(hit: SearchHit) -> types.Range:
    """The LSP range of a hit (end column on the last line)."""
    return types.Range(
        start=types.Position(line=hit.start_line, character=hit.start_col),
        end=types.Position(line=hit.end_line, character=hit.end_col),
    )


def hit_json(hit: SearchHit) -> dict[str, Any]:
    """One search result as DESIGN.md's shape."""
    lines = hit.snippet.splitlines()
    return {
        "uri": path_to_uri(hit.path),
        "range": {
            "start": {"line": hit.start_line, "character": hit.start_col},
            "end": {"line": hit.end_line, "character": hit.end_col},
        },
        "score": hit.score,
        "language": hit.language,
        "symbol": hit.symbol,
        "scope": hit.scope,
        "kind": hit.kind,
        "snippet": "\n".join(lines[:12]),
        "projectId": hit.project_id,
        "sources": hit.sources,
    }


async def search(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.search {query, limit, mode, languages, paths, projectId}."""
    query = parse(SearchQuery, args)
    cloud = ls.services.cloud
    if cloud is not None:
        await cloud.check_rate("leo.search")  # RateLimited → -32006 with data.retryAfter
    result = await ls.services.search.search(query)
    if cloud is not None:
        # Metadata only (length, count, latency); queued for sync only for a verified user.
        await cloud.record_search(
            query=query.query,
            result_count=len(result.hits),
            latency_ms=result.took_ms,
            mode=result.mode,
            project_id=await _linked_project(ls, query.project_id),
        )
    return {
        "results": [hit_json(h) for h in result.hits],
        "tookMs": round(result.took_ms, 2),
        "mode": result.mode,
        "pending": result.pending,
        "notes": result.notes,
    }


async def index_workspace(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.indexWorkspace {force, projectId}: returns when every folder is crawled and embedded."""
    a = parse(IndexWorkspaceArgs, args)
    registry = ls.services.registry
    projects = [registry.get(a.project_id)] if a.project_id else registry.folders()
    if not projects:
        raise NotFound("no workspace folder is open; open a folder to index it")
    crawls = [start_crawl(ls, p, force=a.force) for p in projects]
    reports = await asyncio.gather(*(c.task for c in crawls))
    total: dict[str, Any] = {}
    for r in reports:
        for k, v in r.to_json().items():
            if isinstance(v, bool):
                total[k] = total.get(k, False) or v
            elif isinstance(v, list):
                total[k] = [*total.get(k, []), *v]
            elif isinstance(v, str):
                total[k] = "; ".join(x for x in (total.get(k, ""), v) if x)
            else:
                total[k] = total.get(k, 0) + v
    total["tookMs"] = round(max(r.took_ms for r in reports), 1)
    total["projects"] = [p.id for p in projects]
    return total


async def index_file(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.indexFile {uri}: index one file now (the open buffer's text if it is open)."""
    a = parse(UriArgs, args)
    path = uri_to_path(a.uri)
    services = ls.services
    doc = ls.workspace.text_documents.get(a.uri)
    # An open buffer outside the folders gets a project of its own (its text came from the
    # editor); a path on disk outside every folder is never read.
    project = services.registry.for_path(path, create=doc is not None)
    if project is None or (project.single_file is None and project.rel(path) is None):
        raise OutsideWorkspace(f"{path} is outside every workspace folder")
    if doc is not None:
        outcome = await services.indexer.index_text(
            project, path, doc.source, language_id=doc.language_id
        )
    elif not path.is_file():
        raise NotFound(f"{path} is not a file")
    else:
        outcome = await services.indexer.index_file(project, path)
    d = outcome.decision
    return {
        "decision": {
            "allowed": d.allowed,
            "reason": d.reason,
            "source": d.source,
            "redactions": d.redactions,
        },
        "chunks": outcome.chunks,
        "pending": outcome.pending,  # stored but not yet embedded (embedding server down)
        "projectId": project.id,
    }


async def health(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.health: which paths are live."""
    parse(NoArgs, args)
    services = ls.services
    projects = services.registry.all()
    backends = {p.store.backend for p in projects} or {"sqlite-vec"}
    embedding = await _embedding_health(services)
    return {
        "status": "ok" if embedding["status"] == "ok" else "degraded",
        "services": {
            "vectorDb": {
                "status": "ok",
                "backend": ",".join(sorted(backends)),
                "projects": len(projects),
            },
            "embedding": embedding,
            "gatekeeper": _gatekeeper_health(services),
            "firebase": (
                await services.cloud.health()
                if services.cloud is not None
                else {"status": "disabled", "state": "disabled"}
            ),
        },
        "version": __version__,
    }


async def _embedding_health(services: Any) -> dict[str, Any]:
    """Which model is live, whether the server answers, and how many chunks wait for vectors."""
    embedder = services.embedder
    error = services.indexer.embedding_error
    pending = 0
    for p in services.registry.all():
        pending += await asyncio.to_thread(p.store.pending_count, max_age=1.0)
    fallback = bool(getattr(embedder, "using_fallback", False))
    out: dict[str, Any] = {
        "status": "unavailable" if error else "fallback" if fallback else "ok",
        "provider": services.settings.embedding.provider,
        "model": embedder.model_id,
        "dim": embedder.dim,
        "error": error,
        "pending": pending,
    }
    if fallback:
        out["fallbackReason"] = getattr(embedder, "fallback_reason", None)
        out["configuredModel"] = embedder.remote.model_id
    # Per project: the model answering searches, and the re-embedding while a switch runs.
    out["projects"] = await asyncio.to_thread(services.model_states)
    return out


def _gatekeeper_health(services: Any) -> dict[str, Any]:
    """Mode, LLM reachability and decision counts over every project's gate."""
    out: dict[str, Any] = {"status": "ok", "mode": services.settings.gatekeeper.mode}
    counts: dict[str, int] = {}
    for project in services.registry.all():
        state = getattr(project.gate, "state", None)
        if state is None:
            continue
        st = state()
        out["llm"] = st.get("llm", out.get("llm"))
        if st.get("lastError"):
            out["lastError"] = st["lastError"]
        for k, v in (st.get("decisions") or st.get("counts") or {}).items():
            counts[k] = counts.get(k, 0) + int(v)
    if out.get("llm") == "unreachable":
        out["status"] = "degraded"
    out["counts"] = counts
    return out


async def project_stats(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.projectStats {projectId}: files, chunks, languages, denied, lastIndexed, searches."""
    a = parse(ProjectArgs, args)
    registry = ls.services.registry
    if a.project_id:
        project = registry.get(a.project_id)
    else:
        folders = registry.folders()
        if not folders:
            raise NotFound("no workspace folder is open")
        project = folders[0]
    stats = await asyncio.to_thread(project.store.stats)
    linked = await _sync_stats(ls, project, stats)
    return {
        "projectId": project.id,
        "name": project.name,
        "root": str(project.root),
        **stats,
        "linkedProject": linked,
    }


async def _sync_stats(ls: LeoServer, project: Any, stats: dict[str, Any]) -> str | None:
    """Store the stats on the account project linked to this folder (synced when signed in)."""
    cloud = ls.services.cloud
    if cloud is None or project.single_file is not None:
        return None
    linked: str | None = await cloud.update_folder_stats(path_to_uri(project.root), stats)
    return linked


async def _linked_project(ls: LeoServer, project_id: str | None) -> str | None:
    """The account project linked to a searched folder (None when the search spans folders)."""
    cloud = ls.services.cloud
    if cloud is None or not project_id:
        return None
    try:
        project = ls.services.registry.get(project_id)
    except LeoError:
        return None
    linked: str | None = await cloud.linked_project(path_to_uri(project.root))
    return linked


async def overview(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.overview: totals over every project."""
    parse(NoArgs, args)
    projects = []
    totals = {"files": 0, "chunks": 0, "denied": 0, "searches": 0, "pending": 0}
    for p in ls.services.registry.all():
        stats = await asyncio.to_thread(p.store.stats)
        linked = await _sync_stats(ls, p, stats)
        projects.append(
            {
                "projectId": p.id,
                "name": p.name,
                "root": str(p.root),
                **stats,
                "linkedProject": linked,
            }
        )
        for k in totals:
            totals[k] += int(stats.get(k) or 0)
    return {**totals, "projects": projects}


async def gatekeeper_decisions(ls: LeoServer, *args: Any) -> list[dict[str, Any]]:
    """leo.gatekeeperDecisions {uri, limit}: the audit log, newest first."""
    a = parse(DecisionsArgs, args)
    if not 1 <= a.limit <= 10_000:
        raise InvalidArguments("limit: must be between 1 and 10000", field="limit")
    registry = ls.services.registry
    if a.uri:
        path = uri_to_path(a.uri)
        project = registry.for_path(path, create=False)
        if project is None:
            return []
        # The gatekeeper audits absolute paths.
        return await asyncio.to_thread(project.store.decisions, str(path), a.limit)
    rows: list[dict[str, Any]] = []
    for p in registry.all():
        rows.extend(await asyncio.to_thread(p.store.decisions, None, a.limit))
    rows.sort(key=lambda r: -r["at"])
    return rows[: a.limit]


COMMANDS: dict[str, Callable[..., Awaitable[Any]]] = {
    "leo.search": search,
    "leo.indexWorkspace": index_workspace,
    "leo.indexFile": index_file,
    "leo.health": health,
    "leo.projectStats": project_stats,
    "leo.overview": overview,
    "leo.gatekeeperDecisions": gatekeeper_decisions,
}


def register(server: LeoServer) -> None:
    """Register every leo.* command."""
    for name, handler in COMMANDS.items():
        server.command(name)(wrap_errors(handler))
