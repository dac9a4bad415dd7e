"""SearchService ranking on a real store, the real chunker and the real embedded model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from leo_lsp.embeddings.local import LocalEmbedder
from leo_lsp.indexing.chunker import Chunker
from leo_lsp.indexing.projects import Project, ProjectRegistry
from leo_lsp.records import Decision, SearchHit
from leo_lsp.search import (
    FEATURES,
    Candidate,
    QueryTerms,
    SearchQuery,
    SearchService,
    _collapse,
    candidate_features,
    name_view,
)
from leo_lsp.store.lexical import fts_query, signature_params, stem
from leo_lsp.store.project_store import ProjectStore

MAILBOX = """\
class Mailbox:
    def __init__(self):
        self.messages = []

    def get_unread_count(self):
        return sum(1 for m in self.messages if not m.seen)

    def delete_message(self, message_id):
        self.messages = [m for m in self.messages if m.id != message_id]


def parse_header_line(line):
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


def send_bulk_mail(server, recipients, body):
    for address in recipients:
        server.sendmail("noreply@example.com", address, body)
    server.quit()
"""

GEOMETRY = """\
def polygon_area(points):
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2
"""


class CountingEmbedder(LocalEmbedder):
    """The real model, counting the texts it embeds as documents."""

    documents = 0

    async def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.documents += len(texts)
        return await super().embed_documents(texts)


@pytest.fixture(scope="module")
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


def build(tmp: Path, embedder: LocalEmbedder, *, embed: bool = True) -> SearchService:
    root = tmp / "ws"
    root.mkdir()
    chunker = Chunker()

    def factory(r: Path, name: str, single: Path | None) -> Project:
        store = ProjectStore(
            ":memory:", project_id="ws", root=str(r), dim=embedder.dim, model_id=embedder.model_id
        )
        return Project("ws", name, r, store, rules=None, gate=None)  # type: ignore[arg-type]

    registry = ProjectRegistry(factory)
    project = registry.add_folder(root)
    for rel, text in (("mail.py", MAILBOX), ("geo/shapes.py", GEOMETRY)):
        project.store.upsert_file(
            rel,
            content_hash=rel,
            size=len(text),
            mtime_ns=0,
            language="python",
            decision=Decision(rel, True, "test"),
            chunks=chunker.chunk(text, rel, "python"),
        )
    if embed:
        pending = project.store.pending()
        vectors = embedder.embed_sync([p.text for p in pending])
        project.store.save_vectors([p.hash for p in pending], vectors)
    return SearchService(registry, embedder)


def test_stemmed_prefix_query() -> None:
    assert stem("parsing") == "pars" and stem("headers") == "header" and stem("id") == "id"
    assert fts_query("Parsing the headers") == '"pars"* OR "header"*'
    assert fts_query("the of a") is None


def test_run_together_names_and_ranks_are_features() -> None:
    hit = SearchHit(
        "a.py", 0, 3, 0, 0, 0.0, "python", "getrouteaddr", "method", "AddrlistClass",
        "    def getrouteaddr(self):\n        pass\n",
    )  # fmt: skip
    terms = QueryTerms.of("Parse a route address")
    c = Candidate(
        None, hit, 0.4, 0.8, ["vector", "lexical"], False,  # type: ignore[arg-type]
        vector_rank=0, lexical_rank=3, file_cosine=0.3,
    )  # fmt: skip
    f = dict(zip(FEATURES, candidate_features(c, terms), strict=True))
    assert f["name_overlap"] == 0.0  # the split finds no word in `getrouteaddr`…
    assert f["name_substring"] == pytest.approx(1 / 3)  # …but "rout" is in it (of pars/rout/addres)
    assert f["vector_rank"] == 1.0 and f["lexical_rank"] == 0.25 and f["both_rankers"] == 1.0
    assert f["file_cosine"] == 0.3 and f["private"] == 0.0 and f["dunder"] == 0.0


def test_name_view_is_scope_and_signature_words() -> None:
    hit = SearchHit(
        "m.py",
        4,
        5,
        0,
        0,
        0.0,
        "python",
        "get_unread_count",
        "method",
        "Mailbox",
        "    def get_unread_count(self):\n        return 0\n",
    )
    assert name_view(hit) == "get unread count in mailbox"
    terms = QueryTerms.of("the number of unread messages")
    assert "count" in terms.with_synonyms and "count" not in terms.stems  # number → count
    c = Candidate(None, hit, 0.5, 0.0, ["vector"], False)  # type: ignore[arg-type]
    f = candidate_features(c, terms)
    assert f[0] == 0.5  # cosine
    assert f[3] == pytest.approx(1 / 3)  # "unread" of get/unread/count
    assert f[4] == pytest.approx(2 / 3)  # "number" → count


def test_signature_params_read_names_across_lines_and_languages() -> None:
    python = "@cache\ndef f(\n    self,\n    table: Dict[str, int] = None,\n"
    python += "    *rows, sep=', ',\n) -> None:"
    assert signature_params("f", python) == ["table", "rows", "sep"]
    assert signature_params("parse", "function parse(text: string, opts?: Opts): Node {") == [
        "text",
        "opts",
    ]
    assert signature_params("size", "public int size(List<String> xs, int n) {") == [
        "List", "String", "xs", "int", "n",
    ]  # fmt: skip
    assert signature_params("Mailbox", "class Mailbox:\n    def f(self): pass") == []


def test_signature_and_body_features_follow_the_query() -> None:
    hit = SearchHit(
        "s.py", 0, 4, 0, 0, 0.0, "python", "quantiles", "method", "NormalDist",
        "    @abstractmethod\n    def quantiles(self, n=4):\n        return [n]\n",
    )  # fmt: skip
    c = Candidate(None, hit, 0.4, 0.0, ["vector"], False)  # type: ignore[arg-type]

    def features(query: str) -> dict[str, float]:
        return dict(zip(FEATURES, candidate_features(c, QueryTerms.of(query)), strict=True))

    f = features("Divide into *n* intervals; returns the cut points")
    assert f["param_mention"] == 1.0 and f["no_params"] == 0.0  # `*n*` names the parameter
    assert f["returns_value"] == 1.0 and f["returns_nothing"] == 0.0
    assert f["abstract"] == 1.0 and f["yields"] == 0.0 and f["first_word"] == 0.0
    f = features("Quantiles of a distribution, n a count")  # a bare one-letter word is no mention
    assert f["param_mention"] == 0.0 and f["returns_value"] == 0.0 and f["first_word"] == 1.0


async def test_hybrid_ranks_by_meaning_and_names(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    svc = build(tmp_path, embedder)
    res = await svc.search(SearchQuery("Return how many messages have not been read yet"))
    top = res.hits[0]
    assert (top.symbol, top.scope, top.kind) == ("get_unread_count", "Mailbox", "method")
    assert top.path == str(tmp_path / "ws" / "mail.py")
    res = await svc.search(SearchQuery("compute the area enclosed by a polygon"))
    assert res.hits[0].symbol == "polygon_area"
    assert set(res.hits[0].sources) == {"vector", "lexical"}
    assert res.pending == 0 and res.mode == "hybrid"
    # every mode answers, and their orders are their own
    for mode in ("vector", "lexical"):
        res = await svc.search(SearchQuery("mail every recipient the same body", mode=mode))
        assert res.hits[0].symbol == "send_bulk_mail", mode
        assert all(h.sources == [mode] for h in res.hits), mode


async def test_name_vectors_are_cached(tmp_path: Path, embedder: CountingEmbedder) -> None:
    svc = build(tmp_path, embedder)
    query = SearchQuery("split a header line into its name and value")
    first = await svc.search(query)
    before = embedder.documents
    second = await svc.search(query)
    assert embedder.documents == before  # the name views were cached
    assert [h.chunk_id for h in first.hits] == [h.chunk_id for h in second.hits]
    assert first.hits[0].symbol == "parse_header_line"


async def test_pending_chunks_answer_lexically(tmp_path: Path, embedder: CountingEmbedder) -> None:
    svc = build(tmp_path, embedder, embed=False)
    res = await svc.search(SearchQuery("delete a message by its id"))
    assert res.pending > 0
    assert res.hits[0].symbol == "delete_message"
    assert res.hits[0].sources == ["lexical"]
    assert any("still being embedded" in n for n in res.notes)


async def test_filters_apply_to_both_rankers(tmp_path: Path, embedder: CountingEmbedder) -> None:
    svc = build(tmp_path, embedder)
    res = await svc.search(SearchQuery("area of a polygon", paths=["mail.py"]))
    assert res.hits and all(h.path.endswith("mail.py") for h in res.hits)
    res = await svc.search(SearchQuery("area of a polygon", paths=["geo/*"], limit=3))
    assert [h.symbol for h in res.hits] == ["polygon_area"]
    res = await svc.search(SearchQuery("area of a polygon", languages=["rust"]))
    assert res.hits == []


async def test_rrf_fusion_still_available(tmp_path: Path, embedder: CountingEmbedder) -> None:
    svc = build(tmp_path, embedder)
    svc.fusion = "rrf"
    res = await svc.search(SearchQuery("compute the area enclosed by a polygon"))
    assert res.hits[0].symbol == "polygon_area"
    assert res.hits[0].score > 0


def test_collapse_keeps_the_best_of_overlapping_chunks() -> None:
    def cand(start: int, end: int, score: float, path: str = "/a.py") -> Candidate:
        hit = SearchHit(path, start, end, 0, 0, 0.0, "python", f"f{start}", "function", "", "")
        return Candidate(None, hit, None, 0.0, ["lexical"], False, score=score)  # type: ignore[arg-type]

    ranked = [cand(10, 30, 3.0), cand(20, 25, 2.0), cand(20, 25, 1.5, "/b.py"), cand(31, 40, 1.0)]
    hits = _collapse(ranked, 10)
    assert [(h.path, h.start_line) for h in hits] == [("/a.py", 10), ("/b.py", 20), ("/a.py", 31)]
    assert [h.score for h in hits] == [3.0, 1.5, 1.0]
    assert len(_collapse(ranked, 2)) == 2


def _hit() -> SearchHit:
    text = "    def get_unread_count(self):\n        return 0\n"
    return SearchHit(
        "m.py", 4, 5, 0, 0, 0.0, "python", "get_unread_count", "method", "Mailbox", text
    )


def test_name_cosine_features_fall_back_to_the_code_cosine() -> None:
    terms = QueryTerms.of("the number of unread messages")
    named = Candidate(None, _hit(), 0.4, 0.0, ["vector"], False, name_cosine=0.7)  # type: ignore[arg-type]
    f = candidate_features(named, terms)
    assert f[FEATURES.index("name_vector")] == pytest.approx(0.7)
    assert f[FEATURES.index("name_or_code")] == pytest.approx(0.7)  # the larger of the two
    unnamed = Candidate(None, _hit(), 0.4, 0.0, ["vector"], False)  # type: ignore[arg-type]
    f = candidate_features(unnamed, terms)
    assert f[FEATURES.index("name_vector")] == pytest.approx(0.4)  # no stored vector: the cosine
    assert f[FEATURES.index("name_or_code")] == pytest.approx(0.4)


async def test_every_candidate_gets_its_stored_name_cosine(
    tmp_path: Path,
    embedder: CountingEmbedder,
) -> None:
    svc = build(tmp_path, embedder)
    project = svc.registry.all()[0]
    qvec = await embedder.embed_query("split a header line into its name and value")
    terms = QueryTerms.of("split a header line into its name and value")
    before = embedder.documents
    q = SearchQuery("split a header line into its name and value")
    cands = svc._candidates([project], q, "hybrid", {embedder.model_id: qvec}, terms)
    assert len(cands) > 1
    stored = project.store.name_vectors_of([c.hit.chunk_id for c in cands])
    for c in cands:  # each from the store, beyond any re-ranking depth
        assert c.name_cosine == pytest.approx(float(stored[c.hit.chunk_id] @ qvec), abs=1e-5)
    assert embedder.documents == before  # nothing embedded at query time
    assert cands[0].hit.symbol == "parse_header_line"
