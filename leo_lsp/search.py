"""Search over every project: embed the query, vector k-NN + FTS5, fused and de-duplicated."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from leo_lsp.embeddings.provider import EmbeddingProvider
from leo_lsp.errors import EmbeddingUnavailable, InvalidArguments
from leo_lsp.indexing.projects import Project, ProjectRegistry
from leo_lsp.records import SearchHit
from leo_lsp.store.project_store import path_filter_for

logger = logging.getLogger(__name__)

MODES = ("hybrid", "vector", "lexical")

# Reciprocal-rank fusion constant and the lexical list's weight. Unweighted RRF *lowered* MRR on
# the docstring→function task (0.51 → 0.49): BM25 is much weaker than MiniLM there, so its vote
# must count less. Measured in tests/bench/bench_quality.py.
RRF_K = 60
LEXICAL_WEIGHT = 0.35
VECTOR_WEIGHT = 1.0


@dataclass
class SearchQuery:
    """One search request."""

    query: str
    limit: int = 10
    mode: str = "hybrid"
    languages: list[str] | None = None
    paths: list[str] | None = None
    project_id: str | None = None

    def validate(self) -> None:
        """Raise InvalidArguments naming the bad field."""
        if not self.query.strip():
            raise InvalidArguments("query: must not be empty", field="query")
        if len(self.query) > 10_000:
            raise InvalidArguments("query: longer than 10,000 characters", field="query")
        if not 1 <= self.limit <= 500:
            raise InvalidArguments("limit: must be between 1 and 500", field="limit")
        if self.mode not in MODES:
            raise InvalidArguments(f"mode: must be one of {', '.join(MODES)}", field="mode")


@dataclass
class SearchResult:
    """Ranked hits with absolute paths, plus what is still being indexed."""

    hits: list[SearchHit]
    took_ms: float
    mode: str
    pending: int = 0
    notes: list[str] = field(default_factory=list)


class SearchService:
    """Hybrid search across the open projects."""

    def __init__(self, registry: ProjectRegistry, embedder: EmbeddingProvider) -> None:
        self.registry = registry
        self.embedder = embedder

    async def search(self, q: SearchQuery) -> SearchResult:
        """Run one query; vector failures degrade to lexical with a note, never an error."""
        q.validate()
        t0 = time.perf_counter()
        projects = [self.registry.get(q.project_id)] if q.project_id else self.registry.all()
        mode = q.mode
        notes: list[str] = []
        qvec: npt.NDArray[np.float32] | None = None
        if mode != "lexical":
            try:
                qvec = await self.embedder.embed_query(q.query)
            except EmbeddingUnavailable as exc:
                notes.append(f"vector search unavailable ({exc.message}); lexical results only")
                mode = "lexical"
        hits = await asyncio.to_thread(self._search_sync, projects, q, mode, qvec)
        pending = sum(p.store.pending_count(max_age=1.0) for p in projects) if projects else 0
        took = (time.perf_counter() - t0) * 1000
        if pending:
            notes.append(f"{pending} chunks are still being embedded; lexical results fill in")
        for p in projects:
            p.store.log_search(len(q.query), len(hits), took, mode)
        return SearchResult(hits, took, mode, pending, notes)

    def _search_sync(
        self,
        projects: Sequence[Project],
        q: SearchQuery,
        mode: str,
        qvec: npt.NDArray[np.float32] | None,
    ) -> list[SearchHit]:
        languages = set(q.languages) if q.languages else None
        pf = path_filter_for(q.paths)
        pool = max(q.limit * 5, 50)
        fused: list[tuple[float, Project, int, list[str]]] = []
        for project in projects:
            store = project.store
            scores: dict[int, float] = {}
            sources: dict[int, list[str]] = {}
            if mode in ("hybrid", "vector") and qvec is not None:
                for rank, (cid, _s) in enumerate(
                    store.vector_search(qvec, pool, languages=languages, path_filter=pf)
                ):
                    scores[cid] = scores.get(cid, 0.0) + VECTOR_WEIGHT / (RRF_K + rank + 1)
                    sources.setdefault(cid, []).append("vector")
            if mode in ("hybrid", "lexical"):
                weight = 1.0 if mode == "lexical" else LEXICAL_WEIGHT
                for rank, (cid, _s) in enumerate(
                    store.lexical_search(q.query, pool, languages=languages, path_globs=q.paths)
                ):
                    scores[cid] = scores.get(cid, 0.0) + weight / (RRF_K + rank + 1)
                    sources.setdefault(cid, []).append("lexical")
            fused.extend((s, project, cid, sources[cid]) for cid, s in scores.items())
        fused.sort(key=lambda t: -t[0])
        out: list[SearchHit] = []
        by_project: dict[str, list[tuple[float, int, list[str]]]] = {}
        for s, project, cid, src in fused[: pool * 2]:
            by_project.setdefault(project.id, []).append((s, cid, src))
        records: dict[tuple[str, int], SearchHit] = {}
        for pid, items in by_project.items():
            project = self.registry.get(pid)
            for cid, hit in project.store.hits([cid for _, cid, _ in items]).items():
                hit.path = str(project.abs(hit.path))
                records[(pid, cid)] = hit
        for s, project, cid, src in fused:
            found = records.get((project.id, cid))
            if found is None:
                continue
            hit = found
            if any(_overlaps(hit, kept) for kept in out):
                continue  # collapse overlapping chunks of the same code
            hit.score = round(s * (RRF_K + 1), 4)
            hit.sources = src
            out.append(hit)
            if len(out) >= q.limit:
                break
        return out


def _overlaps(a: SearchHit, b: SearchHit) -> bool:
    return a.path == b.path and a.start_line <= b.end_line and b.start_line <= a.end_line
