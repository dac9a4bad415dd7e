"""Search over every project: vector k-NN + FTS5 candidates, a re-ranking stage, collapse.

Ranking (hybrid mode), measured on the docstring→function task of tests/bench/bench_quality.py:

1. Candidates: the vector index's top `pool` by cosine and FTS5's top `pool` by BM25 (query terms
   stemmed and prefix-matched, identifiers split), per project, filters applied in both.
2. Every candidate is scored by one linear model over FEATURES: cosine; BM25 normalised by the
   query's best; the cosine of the chunk's "name view" (name, parameters and scope as words,
   `get all (name, failobj) in message`, embedded at indexing time: a docstring-like query
   paraphrases the signature more closely than the body) and the larger of the two cosines; the
   cosine of the query with the mean vector of the chunk's file (which of several same-named
   methods is meant is mostly a question of which file is about the query); the ranks in both
   candidate lists; how much of the symbol's and scope's name the query says (split, and as
   substrings of run-together names like `getrouteaddr`, with a few verb → name-prefix synonyms:
   "return" → get, "whether" → is/has); how many query terms occur in the code; the chunk's
   length, kind, dunder/private name, and whether it is the tail of a split definition; its
   shape against the query: parameters the query names (`*n*`), "returns"/"yields" said of
   code that does or does not, an abstract declaration, the query's first word as the name's.
3. Chunks without a stored name vector yet (indexed by an older leo, or still pending) use their
   code cosine in its place; those among the best `RERANK_DEPTH` get their name view embedded now
   (cached in memory, LRU) and are re-scored.
4. Overlapping chunks of the same file collapse to the best one.

The weights are fitted by tests/bench/fit_ranker.py on a training task built from other
standard-library modules than the benchmark's (1,500 queries), so neither half of the benchmark
is seen while fitting. Cross-validated on that task (3 folds by file): the first model (cosine,
BM25, name cosine, name overlaps, kinds) 0.481 MRR@10; + list ranks, dunder/private, length
0.483; + substrings of run-together names 0.489; + file cosine 0.496; the phrased name view
0.497; refitted on query vectors of the learned query adapter (out-of-fold, see
embeddings/query_adapter.py) 0.517; refitted for the code-tuned embedded model (see
embeddings/local.py) 0.555; + the signature and body shape 0.563 (tune half 0.612 → 0.618).
Tried and not kept: IDF-weighted name overlap (+0.0004),
a class-chunk cosine, a cosine with the body's identifiers as words, per-query z-scores, a small
MLP in place of the linear model (+0.003, not worth its opacity), a k-NN over name vectors as a
third candidate source, an identifier-style rewrite of the query. RRF (the spine's first
version) is kept as `fusion="rrf"` for comparison.
Vector mode is the cosine ranking alone; lexical mode is stage one without the vector signals.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import attrs
import numpy as np
import numpy.typing as npt

from leo_lsp.embeddings.provider import EmbeddingProvider
from leo_lsp.embeddings.registry import EmbedderRegistry
from leo_lsp.errors import EmbeddingUnavailable, InvalidArguments
from leo_lsp.indexing.projects import Project, ProjectRegistry
from leo_lsp.records import SearchHit
from leo_lsp.store.lexical import name_view as lexical_name_view
from leo_lsp.store.lexical import (
    query_terms,
    signature_line,
    signature_params,
    split_identifier,
    stem,
)
from leo_lsp.store.project_store import ProjectStore, path_filter_for

logger = logging.getLogger(__name__)

MODES = ("hybrid", "vector", "lexical")

# Reciprocal-rank fusion (fusion="rrf" only). Unweighted RRF lowered MRR on the task (BM25 is much
# weaker than MiniLM there), so the lexical list's vote counts less.
RRF_K = 60
LEXICAL_WEIGHT = 0.35

# How many candidates each ranker contributes per project, at least.
MIN_POOL = 60
# How many of the best candidates get a name view embedded at query time when none is stored.
RERANK_DEPTH = 20
NAME_CACHE_SIZE = 50_000

FEATURES = (
    "cosine",
    "bm25",
    "name_vector",
    "name_overlap",
    "name_synonyms",
    "scope_overlap",
    "coverage",
    "log_lines",
    "continued",
    "function",
    "method",
    "class",
    "block",
    "name_or_code",
    "vector_rank",
    "lexical_rank",
    "both_rankers",
    "dunder",
    "private",
    "lines",
    "name_substring",
    "name_substring_synonyms",
    "file_cosine",
    "param_overlap",
    "param_mention",
    "no_params",
    "returns_value",
    "returns_nothing",
    "yields",
    "abstract",
    "first_word",
)
_KIND_FEATURES = ("function", "method", "class", "block")

# Fitted by tests/bench/fit_ranker.py on a docstring→function task built from standard-library
# modules that share no file with bench_quality's corpus (1,500 queries; softmax listwise loss,
# L2 0.01; hybrid on out-of-fold query-adapter vectors, see query_adapter.py); order as FEATURES.
HYBRID_WEIGHTS = (
    7.14, 1.22, 0.695, -1.61, 0.533, 0.313, -0.0826, 0.926, -0.479, 0.774, 0.71, -2.15, -2.43, 9.1,
    0.162, 0.351, -0.0569, -2.96, -0.378, -3.64, 0.838, 0.705, 4.05, -0.791, 1.52, -0.106, 0.529,
    -0.829, 2.23, 1.58, 0.548,
)  # fmt: skip
LEXICAL_WEIGHTS = (
    0, 5.31, 0, -1.72, 1.61, 0.803, 0.748, 0.913, -0.586, 1.14, 0.742, -2.88, -1.83, 0, 0, 0.0606,
    0, -3.04, -0.527, -3.8, 3.01, 1.61, 0, 0.164, 1.34, 0.0983, 0.813, -1.01, 2.63, 1.46, 0.819,
)  # fmt: skip

# Query words and the name parts they usually stand for (docstrings say "Return the…" of
# `get_…`, "Check whether…" of `is_…`). Keys and values are stemmed when the table is built.
_SYNONYM_WORDS: dict[str, tuple[str, ...]] = {
    "return": ("get",),
    "retrieve": ("get",),
    "fetch": ("get",),
    "create": ("make", "new", "build"),
    "construct": ("make", "new", "build"),
    "check": ("is", "has", "can", "validate"),
    "whether": ("is", "has", "can"),
    "true": ("is", "has"),
    "test": ("is", "has"),
    "convert": ("to", "as", "from"),
    "remove": ("del", "delete", "pop", "drop"),
    "delete": ("del", "remove"),
    "add": ("append", "insert", "register"),
    "write": ("dump", "save", "put", "emit"),
    "read": ("load", "parse", "get"),
    "initialize": ("init", "setup"),
    "print": ("show", "dump", "display"),
    "number": ("count", "num"),
    "compute": ("calc", "calculate", "get"),
    "calculate": ("calc", "compute", "get"),
}
SYNONYMS = {stem(k): tuple(stem(v) for v in vs) for k, vs in _SYNONYM_WORDS.items()}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORDS = re.compile(r"[A-Za-z]+")
_SAYS_RETURN = re.compile(r"\breturns?\b")
_SAYS_YIELD = re.compile(r"\byield|iterat|generat")
_RETURNS_VALUE = re.compile(r"\breturn\s+[^\s;]")
_YIELDS = re.compile(r"\byield\b")
_ABSTRACT = re.compile(r"\babstract")


@attrs.define
class SearchQuery:
    """One search request (also the `leo.search` argument object, camelCase on the wire)."""

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


@dataclass
class Candidate:
    """One chunk found by a ranker, with its re-ranking signals."""

    project: Project
    hit: SearchHit
    cosine: float | None
    bm25: float  # BM25 over the query's best BM25 in this project, 0 if not found lexically
    sources: list[str]
    continued: bool
    rrf: float = 0.0
    features: list[float] = field(default_factory=list)
    score: float = 0.0
    name_cosine: float | None = None  # None: no name-view vector stored for the chunk
    vector_rank: int | None = None  # rank in the project's k-NN list (None: not in it)
    lexical_rank: int | None = None  # rank in the project's FTS5 list
    file_cosine: float = 0.0  # the query against the mean vector of the chunk's file


@dataclass(frozen=True)
class QueryTerms:
    """The query's stemmed terms, and those plus the name parts they usually stand for."""

    stems: frozenset[str]
    with_synonyms: frozenset[str]
    text: str = ""
    first: str = ""  # the first word, stemmed: docstrings open with the name's verb
    says_return: bool = False
    says_yield: bool = False

    @classmethod
    def of(cls, query: str) -> QueryTerms:
        """Stem the query's terms and add SYNONYMS."""
        # The lexical index's stopwords drop "return"/"get" too: measured, keeping them (for
        # the "return" → get synonym) lowered tune-half MRR (0.558 → 0.538).
        stems = frozenset(stem(t) for t in query_terms(query))
        extra = {s for t in stems for s in SYNONYMS.get(t, ())}
        words = _WORDS.findall(query)
        lower = query.lower()
        return cls(
            stems,
            stems | extra,
            query,
            stem(words[0].lower()) if words else "",
            _SAYS_RETURN.search(lower) is not None,
            _SAYS_YIELD.search(lower) is not None,
        )


def name_view(hit: SearchHit) -> str:
    """Scope and signature as plain words: `Message get all name failobj`."""
    return _name_view(hit.symbol, hit.scope, hit.snippet)


# Per-chunk text work, cached by the chunk's text: the same chunks come back query after query,
# and recomputing these for ~120 candidates cost ~20 ms of a hybrid query's ~45 (10k chunks).
# 8,192 snippets of ≤ ~2 KB each bound each cache to ~16 MB.
@functools.lru_cache(maxsize=8192)
def _name_view(symbol: str, scope: str, snippet: str) -> str:
    return lexical_name_view(symbol, scope, snippet)


@functools.lru_cache(maxsize=8192)
def _body_stems(snippet: str) -> frozenset[str]:
    """Stems of every identifier part in a chunk's text."""
    return frozenset(p for ident in set(_IDENT.findall(snippet)) for p in _ident_stems(ident))


@functools.lru_cache(maxsize=65_536)
def _ident_stems(ident: str) -> tuple[str, ...]:
    """Stemmed parts of one identifier; cached: a project repeats a bounded set of names."""
    return tuple(stem(p) for p in split_identifier(ident))


@dataclass(frozen=True)
class _Shape:
    """What a chunk's text says about its signature and body, independent of any query."""

    params: tuple[str, ...]
    param_stems: tuple[str, ...]
    returns_value: bool
    yields: bool
    abstract: bool


@functools.lru_cache(maxsize=8192)
def _shape(symbol: str, snippet: str) -> _Shape:
    params = tuple(signature_params(symbol, snippet))
    line = signature_line(symbol, snippet)
    at = snippet.find(line)
    head = snippet[: at + len(line)] if at >= 0 else ""  # decorators and modifiers
    return _Shape(
        params,
        tuple(s for p in params for s in _ident_stems(p)),
        _RETURNS_VALUE.search(snippet) is not None,
        _YIELDS.search(snippet) is not None,
        _ABSTRACT.search(head) is not None,
    )


def _mentions(query: str, ident: str) -> bool:
    """Whether the query names the identifier: as a word, or marked up (`*n*`) if one letter."""
    pattern = rf"[*`']{ident}[*`']" if len(ident) == 1 else rf"\b{re.escape(ident)}\b"
    return re.search(pattern, query) is not None


def _shape_features(hit: SearchHit, terms: QueryTerms) -> list[float]:
    """Signature and body against the query: parameters it names, return/yield, abstract, verb."""
    shape = _shape(hit.symbol, hit.snippet)
    params = shape.params
    mentioned = sum(1 for p in params if _mentions(terms.text, p)) / len(params) if params else 0.0
    first_part = _ident_stems(hit.symbol)[:1] if hit.symbol else ()
    return [
        _overlap(shape.param_stems, terms.stems),
        mentioned,
        float(not params),
        float(terms.says_return and shape.returns_value),
        float(terms.says_return and not shape.returns_value),
        float(terms.says_yield and shape.yields),
        float(shape.abstract),
        float(bool(first_part) and first_part[0] == terms.first),
    ]


def _overlap(parts: Sequence[str], terms: frozenset[str]) -> float:
    return sum(1 for p in parts if p in terms) / len(parts) if parts else 0.0


def candidate_features(c: Candidate, terms: QueryTerms) -> list[float]:
    """The signals of FEATURES for one candidate (a missing name cosine counts as the cosine)."""
    hit = c.hit
    cosine = c.cosine if c.cosine is not None else 0.0
    name_cosine = c.name_cosine if c.name_cosine is not None else cosine
    name_parts = _ident_stems(hit.symbol) if hit.symbol else ()
    scope_parts = _ident_stems(hit.scope) if hit.scope else ()
    body = _body_stems(hit.snippet)
    coverage = sum(1 for t in terms.stems if t in body) / len(terms.stems) if terms.stems else 0.0
    lines = max(1, hit.end_line - hit.start_line + 1)
    symbol = hit.symbol
    # Old-style names run words together (`getrouteaddr`, `urlunsplit`): query stems inside them.
    joined = symbol.lower().replace("_", "")
    long_stems = [t for t in terms.stems if len(t) >= 3]
    inside = sum(1 for t in long_stems if t in joined) / len(long_stems) if long_stems else 0.0
    covered = sum(len(t) for t in terms.with_synonyms if len(t) >= 2 and t in joined)
    return [
        cosine,
        c.bm25,
        name_cosine,
        _overlap(name_parts, terms.stems),
        _overlap(name_parts, terms.with_synonyms),
        _overlap(scope_parts, terms.stems),
        coverage,
        math.log(lines),
        float(c.continued),
        *(float(hit.kind == k) for k in _KIND_FEATURES),
        max(cosine, name_cosine),
        _reciprocal(c.vector_rank),
        _reciprocal(c.lexical_rank),
        float(len(c.sources) > 1),
        float(symbol.startswith("__") and symbol.endswith("__")),
        float(symbol.startswith("_") and not symbol.startswith("__")),
        min(lines, 200) / 100,
        inside,
        covered / max(1, len(joined)),
        c.file_cosine,
        *_shape_features(hit, terms),
    ]


def _reciprocal(rank: int | None) -> float:
    return 1.0 / (1 + rank) if rank is not None else 0.0


def _dot(weights: Sequence[float], values: Sequence[float]) -> float:
    return sum(w * v for w, v in zip(weights, values, strict=True))


class _NameVectors:
    """LRU cache of name-view vectors ((model, text) → vector), shared by every project."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: tuple[str, str]) -> npt.NDArray[np.float32] | None:
        with self._lock:
            found = self._items.get(text)
            if found is not None:
                self._items.move_to_end(text)
            return found

    def put(self, text: tuple[str, str], vector: npt.NDArray[np.float32]) -> None:
        with self._lock:
            self._items[text] = vector
            self._items.move_to_end(text)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class SearchService:
    """Hybrid search across the open projects."""

    def __init__(
        self,
        registry: ProjectRegistry,
        embedder: EmbeddingProvider,
        *,
        fusion: str = "rerank",
        rerank_depth: int = RERANK_DEPTH,
        embedders: EmbedderRegistry | None = None,
    ) -> None:
        self.registry = registry
        self.embedder = embedder
        # A project switching models is searched with its old (serving) model's query vector.
        self.embedders = embedders or EmbedderRegistry(embedder)
        self.fusion = fusion
        self.rerank_depth = rerank_depth
        self._names = _NameVectors(NAME_CACHE_SIZE)

    async def search(self, q: SearchQuery) -> SearchResult:
        """Run one query; vector failures degrade to lexical with a note, never an error."""
        q.validate()
        t0 = time.perf_counter()
        projects = [self.registry.get(q.project_id)] if q.project_id else self.registry.all()
        mode = q.mode
        notes: list[str] = []
        qvecs: dict[str, npt.NDArray[np.float32]] = {}
        if mode != "lexical":
            qvecs, error = await self.query_vectors(q.query, projects)
            if error is not None:
                notes.append(f"vector search unavailable ({error}); lexical results only")
            if not qvecs:
                mode = "lexical"
        terms = QueryTerms.of(q.query)
        candidates = await asyncio.to_thread(self._candidates, projects, q, mode, qvecs, terms)
        qvec = qvecs.get(self.embedder.model_id)
        if mode == "hybrid" and qvec is not None and self.fusion == "rerank":
            await self._rerank(candidates, qvec, terms)
        hits = _collapse(candidates, q.limit)
        pending = sum(p.store.pending_count(max_age=1.0) for p in projects if not p.store.switching)
        took = (time.perf_counter() - t0) * 1000
        if pending:
            notes.append(f"{pending} chunks are still being embedded; lexical results fill in")
        if q.mode != "lexical":
            notes.extend(_switch_notes(projects, qvecs))
        for p in projects:
            p.store.log_search(len(q.query), len(hits), took, mode)
        return SearchResult(hits, took, mode, pending, notes)

    async def query_vectors(
        self, query: str, projects: Sequence[Project]
    ) -> tuple[dict[str, npt.NDArray[np.float32]], str | None]:
        """The query embedded once per model serving `projects` (by model_id), and the last
        embedding error. A model leo has no provider for is absent (its projects: lexical only).
        """
        models = dict.fromkeys(p.store.serving_model for p in projects) or {
            self.embedder.model_id: None
        }
        out: dict[str, npt.NDArray[np.float32]] = {}
        error: str | None = None
        for model in models:
            provider = self.embedders.get(model)
            if provider is None:
                continue
            try:
                vector = await provider.embed_query(query)
            except EmbeddingUnavailable as exc:
                error = exc.message
                continue
            # A FallbackEmbedder that fell back mid-call answered with another model.
            if provider.model_id == model:
                out[model] = vector
        return out, error

    # -- stage one -------------------------------------------------------------------------

    def _candidates(
        self,
        projects: Sequence[Project],
        q: SearchQuery,
        mode: str,
        qvecs: dict[str, npt.NDArray[np.float32]],
        terms: QueryTerms,
    ) -> list[Candidate]:
        """Every project's candidates with stage-one scores, best first."""
        languages = set(q.languages) if q.languages else None
        pf = path_filter_for(q.paths)
        pool = max(q.limit * 5, MIN_POOL)
        out: list[Candidate] = []
        for project in projects:
            store = project.store
            model = store.serving_model
            qvec = qvecs.get(model)
            vec: list[tuple[int, float]] = []
            lex: list[tuple[int, float]] = []
            if mode in ("hybrid", "vector") and qvec is not None:
                vec = store.vector_search(
                    qvec, pool, languages=languages, path_filter=pf, model=model
                )
            if mode in ("hybrid", "lexical"):
                lex = store.lexical_search(q.query, pool, languages=languages, path_globs=q.paths)
            ids = list(dict.fromkeys([cid for cid, _ in vec] + [cid for cid, _ in lex]))
            if not ids:
                continue
            records = store.hits(ids)
            cosines = dict(vec)
            names: dict[int, float] = {}
            if mode == "hybrid" and qvec is not None:
                missing = [cid for cid, _ in lex if cid not in cosines]
                for cid, v in store.vectors_of(missing, model=model).items():
                    cosines[cid] = float(v @ qvec)
                if self.fusion == "rerank":
                    names = self._name_cosines(store, ids, records, qvec, model)
            best = max((s for _, s in lex), default=0.0)
            bm25 = {cid: (s / best if best > 0 else 0.0) for cid, s in lex}
            vec_rank = {cid: r for r, (cid, _) in enumerate(vec)}
            lex_rank = {cid: r for r, (cid, _) in enumerate(lex)}
            continued = store.continued(ids)
            files: dict[str, float] = {}
            if mode == "hybrid" and qvec is not None and self.fusion == "rerank":
                paths = {h.path for h in records.values()}
                files = store.file_cosines(qvec, paths, model=model)
            for cid in ids:
                hit = records.get(cid)
                if hit is None:
                    continue
                file_cosine = files.get(hit.path, 0.0)
                hit.path = str(project.abs(hit.path))
                sources = [
                    s for s, ranks in (("vector", vec_rank), ("lexical", lex_rank)) if cid in ranks
                ]
                rrf = sum(
                    w / (RRF_K + ranks[cid] + 1)
                    for w, ranks in ((1.0, vec_rank), (LEXICAL_WEIGHT if vec else 1.0, lex_rank))
                    if cid in ranks
                )
                out.append(
                    Candidate(
                        project,
                        hit,
                        cosines.get(cid),
                        bm25.get(cid, 0.0),
                        sources,
                        cid in continued,
                        rrf,
                        name_cosine=names.get(cid),
                        vector_rank=vec_rank.get(cid),
                        lexical_rank=lex_rank.get(cid),
                        file_cosine=file_cosine,
                    )
                )
        floor = min((c.cosine for c in out if c.cosine is not None), default=0.0)
        for c in out:
            if c.cosine is None and mode == "hybrid":
                c.cosine = floor  # not embedded yet: no better than the worst vector candidate
            c.features = candidate_features(c, terms)
            if mode == "vector":
                c.score = c.cosine if c.cosine is not None else -1.0
            elif self.fusion == "rrf" and mode == "hybrid":
                c.score = c.rrf
            elif mode == "lexical":
                c.score = _dot(LEXICAL_WEIGHTS, c.features)
            else:
                c.score = _dot(HYBRID_WEIGHTS, c.features)
        out.sort(key=lambda c: -c.score)
        return out

    def _name_cosines(
        self,
        store: ProjectStore,
        ids: Sequence[int],
        records: dict[int, SearchHit],
        qvec: npt.NDArray[np.float32],
        model: str,
    ) -> dict[int, float]:
        """Cosines of the candidates' name views: from the cache, else from the store."""
        vectors: dict[int, npt.NDArray[np.float32]] = {}
        views = {cid: name_view(records[cid]) for cid in ids if cid in records}
        for cid, view in views.items():
            found = self._names.get((model, view))
            if found is not None:
                vectors[cid] = found
        # sqlite-vec reads cost ~0.1 ms a row, so the LRU cache (keyed by the model and the
        # view's text, which is what was embedded) keeps warm queries off the store.
        stored = store.name_vectors_of([cid for cid in views if cid not in vectors], model=model)
        for cid, vec in stored.items():
            self._names.put((model, views[cid]), vec)
            vectors[cid] = vec
        return {cid: float(v @ qvec) for cid, v in vectors.items()}

    # -- name views embedded at query time --------------------------------------------------

    async def _rerank(
        self, candidates: list[Candidate], qvec: npt.NDArray[np.float32], terms: QueryTerms
    ) -> None:
        """Embed the name views the store lacks among the best candidates; re-score, re-sort."""
        model = self.embedder.model_id  # qvec's model: other projects' vectors are not comparable
        missing = [
            c
            for c in candidates[: self.rerank_depth]
            if c.name_cosine is None and c.project.store.serving_model == model
        ]
        if not missing:
            return
        fresh = await self.name_vectors([name_view(c.hit) for c in missing])
        if fresh is None:
            return  # the embedder failed mid-query: the code cosine stands in
        for c, v in zip(missing, fresh, strict=True):
            c.name_cosine = float(v @ qvec)
            c.features = candidate_features(c, terms)
            c.score = _dot(HYBRID_WEIGHTS, c.features)
        candidates.sort(key=lambda c: -c.score)

    async def name_vectors(self, views: Sequence[str]) -> list[npt.NDArray[np.float32]] | None:
        """Vectors of name views, embedding only those not cached; None if the embedder fails."""
        model = self.embedder.model_id
        found = {v: self._names.get((model, v)) for v in dict.fromkeys(views)}
        missing = [v for v, vec in found.items() if vec is None]
        if missing:
            try:
                fresh = await self.embedder.embed_documents(missing)
            except EmbeddingUnavailable as exc:
                logger.info("name re-ranking skipped: %s", exc.message)
                return None
            if self.embedder.model_id != model:
                return None  # the embedder fell back to another model mid-call
            for v, vec in zip(missing, fresh, strict=True):
                vec = np.asarray(vec, dtype=np.float32)
                self._names.put((model, v), vec)
                found[v] = vec
        return [vec for v in views if (vec := found[v]) is not None]


attrs.resolve_types(SearchQuery)


def _switch_notes(
    projects: Sequence[Project], qvecs: dict[str, npt.NDArray[np.float32]]
) -> list[str]:
    """Why projects switching models answered lexically: no query vector of their old model."""
    progress: dict[str, list[int]] = {}
    for p in projects:
        if p.store.serving_model in qvecs:
            continue
        state = p.store.switch_progress(max_age=1.0)
        if state is not None:
            counts = progress.setdefault(state["to"], [0, 0])
            counts[0] += state["done"]
            counts[1] += state["total"]
    return [
        f"re-embedding with {model}: {done} of {total} done; lexical results meanwhile"
        for model, (done, total) in progress.items()
    ]


def _collapse(candidates: Sequence[Candidate], limit: int) -> list[SearchHit]:
    """The best `limit` hits, dropping any that overlap a better one in the same file."""
    out: list[SearchHit] = []
    for c in candidates:
        hit = c.hit
        if any(_overlaps(hit, kept) for kept in out):
            continue  # collapse overlapping chunks of the same code
        hit.score = round(c.score, 4)
        hit.sources = c.sources
        out.append(hit)
        if len(out) >= limit:
            break
    return out


def _overlaps(a: SearchHit, b: SearchHit) -> bool:
    return a.path == b.path and a.start_line <= b.end_line and b.start_line <= a.end_line
