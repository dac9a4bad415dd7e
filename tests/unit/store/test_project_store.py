"""ProjectStore on a real sqlite file with the real sqlite-vec extension."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pytest

from leo_lsp.records import Chunk, Decision
from leo_lsp.store.lexical import fts_query, split_identifier
from leo_lsp.store.project_store import ProjectStore, path_filter_for

DIM = 8
ALLOW = Decision("x", True, "source file", "rules")


def chunk(text: str, symbol: str, line: int = 0, path: str = "a.py") -> Chunk:
    return Chunk(
        path=path,
        language="python",
        text=text,
        start_line=line,
        end_line=line + text.count("\n"),
        symbol=symbol,
        kind="function",
    )


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def open_store(path: Path, model: str = "m1", dim: int = DIM) -> ProjectStore:
    return ProjectStore(path, project_id="p", root="/r", dim=dim, model_id=model)


def test_upsert_pending_vectors_and_reuse_across_files_and_restart(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    s = open_store(db)
    assert s.backend == "sqlite-vec"
    a = [chunk("def parse_header(x): ...", "parse_header"), chunk("def total(y): ...", "total", 2)]
    assert (
        s.upsert_file(
            "a.py",
            content_hash="h1",
            size=10,
            mtime_ns=1,
            language="python",
            decision=ALLOW,
            chunks=a,
        )
        == 2
    )
    pending = s.pending()
    # each chunk's text, then each chunk's name view (scope + signature words) for re-ranking
    assert {c.hash for c in a} < {p.hash for p in pending} and len(pending) == 4
    assert {p.text for p in pending} >= {"parse header (x)", "total (y)"}
    s.save_vectors([p.hash for p in pending], np.stack([vec(i) for i in range(len(pending))]))
    assert s.pending_count() == 0 and len(s.index) == 2
    # The same function body in another file reuses the stored vector: nothing new to embed.
    b = [chunk("def parse_header(x): ...", "parse_header", path="b.py")]
    assert (
        s.upsert_file(
            "b.py",
            content_hash="h2",
            size=5,
            mtime_ns=1,
            language="python",
            decision=ALLOW,
            chunks=b,
        )
        == 0
    )
    assert len(s.index) == 3
    s.close()
    s2 = open_store(db)
    assert len(s2.index) == 3  # rebuilt from sqlite-vec at open
    assert s2.pending_count() == 0
    hits = s2.vector_search(vec(0), 2)
    assert hits[0][1] == pytest.approx(1.0, abs=1e-3)
    s2.close()


def test_reindex_replaces_chunks_atomically_and_delete_forgets(tmp_path: Path) -> None:
    s = open_store(tmp_path / "i.sqlite3")
    s.upsert_file(
        "a.py",
        content_hash="h1",
        size=1,
        mtime_ns=1,
        language="python",
        decision=ALLOW,
        chunks=[chunk("def alpha(): pass", "alpha")],
    )
    s.upsert_file(
        "a.py",
        content_hash="h2",
        size=1,
        mtime_ns=2,
        language="python",
        decision=ALLOW,
        chunks=[chunk("def omega(): pass", "omega")],
    )
    assert [h.symbol for h in s.chunks_of("a.py")] == ["omega"]
    assert s.lexical_search("alpha", 5) == []
    assert len(s.lexical_search("omega", 5)) == 1
    assert s.delete_file("a.py")
    assert s.chunks_of("a.py") == [] and s.lexical_search("omega", 5) == []
    assert s.integrity_ok()


def test_lexical_splits_identifiers() -> None:
    assert split_identifier("parseHTTPRequest_v2") == ["parse", "http", "request", "v2"]
    s = open_store(Path(":memory:"))
    s.upsert_file(
        "net.py",
        content_hash="h",
        size=1,
        mtime_ns=1,
        language="python",
        decision=ALLOW,
        chunks=[chunk("def parseHttpRequest(raw): ...", "parseHttpRequest")],
    )
    assert len(s.lexical_search("parse the request", 5)) == 1
    assert s.lexical_search("unrelated words", 5) == []
    assert fts_query("the of a") is None  # stopwords only: no query at all


def test_denied_file_has_no_chunks_and_decisions_are_audited(tmp_path: Path) -> None:
    s = open_store(tmp_path / "i.sqlite3")
    deny = Decision(".env", False, "environment file", "rules")
    s.upsert_file(
        ".env",
        content_hash="h",
        size=1,
        mtime_ns=1,
        language="text",
        decision=deny,
        chunks=[chunk("API_KEY=x", "")],
    )
    assert s.chunks_of(".env") == []
    s.put_decision(deny, "h")
    s.record(deny)
    cached = s.get_decision(".env", "h")
    assert cached is not None and not cached.allowed and cached.source == "cache"
    rows = s.decisions(".env")
    assert rows[0]["decision"] == "deny" and rows[0]["reason"] == "environment file"
    assert s.stats()["denied"] == 1


def test_model_change_keeps_old_vectors_serving_while_reembedding(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    s = open_store(db)
    s.upsert_file(
        "a.py",
        content_hash="h",
        size=1,
        mtime_ns=1,
        language="python",
        decision=ALLOW,
        chunks=[chunk("def f(): pass", "f")],
    )
    pending = s.pending()
    s.save_vectors([p.hash for p in pending], np.stack([vec(1 + i) for i in range(len(pending))]))
    s.close()
    s2 = open_store(db, model="m2", dim=16)
    # The new model's vectors are pending; the old model's still answer (issue 5).
    assert s2.reembed_all and s2.switching and s2.pending_count() == 1 and len(s2.index) == 1
    assert s2.serving_model == "m1" and s2.model_id == "m2"
    s2.close()


def test_corrupt_database_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    s = open_store(db)
    assert s.recovery_note and "moved" in s.recovery_note
    assert list(tmp_path.glob("i.sqlite3.corrupt-*"))
    assert s.integrity_ok()


def test_numpy_fallback_when_vec_cannot_load(tmp_path: Path) -> None:
    s = ProjectStore(
        tmp_path / "i.sqlite3", project_id="p", root="/r", dim=DIM, model_id="m", load_vec=False
    )
    assert s.backend == "numpy"
    s.upsert_file(
        "a.py",
        content_hash="h",
        size=1,
        mtime_ns=1,
        language="python",
        decision=ALLOW,
        chunks=[chunk("def f(): pass", "f")],
    )
    pending = s.pending()
    s.save_vectors([p.hash for p in pending], np.stack([vec(3 + i) for i in range(len(pending))]))
    s.close()
    s2 = ProjectStore(
        tmp_path / "i.sqlite3", project_id="p", root="/r", dim=DIM, model_id="m", load_vec=False
    )
    assert s2.vector_search(vec(3), 1)[0][1] == pytest.approx(1.0, abs=1e-3)


def _many_items_store(path: Path, n: int = 40) -> ProjectStore:
    """`n` functions that all mention "items"; two of them also mention "parse"."""
    s = open_store(path)
    chunks = [
        chunk(
            f"def f{i}(items):\n    return {'parse(items)' if i < 2 else 'len(items)'} + {i}",
            f"f{i}",
            line=i * 3,
        )
        for i in range(n)
    ]
    s.upsert_file(
        "a.py",
        content_hash="h",
        size=1,
        mtime_ns=1,
        language="python",
        decision=ALLOW,
        chunks=chunks,
    )
    pending = s.pending()
    s.save_vectors([p.hash for p in pending], np.stack([vec(i) for i in range(len(pending))]))
    return s


def test_lexical_query_drops_its_commonest_term_beyond_the_postings_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _many_items_store(tmp_path / "index.sqlite3")
    # Within the budget every term counts: rows with only "items" are found too.
    assert len(s.lexical_search("parse the items", 100)) == 40
    # Over it, "items" (in all 40 rows) is dropped and "parse" (2 rows) answers alone.
    monkeypatch.setattr("leo_lsp.store.project_store.LEXICAL_POSTINGS_BUDGET", 10)
    hits = s.lexical_search("parse the items", 100)
    assert len(hits) == 2
    assert {s.hits([cid])[cid].symbol for cid, _ in hits} == {"f0", "f1"}
    # The rarest term is kept even alone over budget: a lexical query always has one term.
    assert len(s.lexical_search("items", 100)) == 40
    s.close()


def test_rerank_vectors_come_from_the_index_and_match_sqlite(tmp_path: Path) -> None:
    s = _many_items_store(tmp_path / "index.sqlite3")
    ids = [int(r[0]) for r in s.execute("SELECT id FROM chunks")]
    from_index = s.vectors_of(ids)
    from_sqlite = s._vectors_by("hash", ids, None)
    assert sorted(from_index) == sorted(from_sqlite) == sorted(ids)
    for cid in ids:  # the index holds float16: equal to ~1e-3
        np.testing.assert_allclose(from_index[cid], from_sqlite[cid], atol=2e-3)
    assert s.vectors_of(ids, model="another-model") == {}
    s.close()


def test_path_globs_match_like_fnmatch_on_the_path_or_its_file_name() -> None:
    globs = ["src/pkg3/*", "*.rs", "tests/**/test_*.py", "[ab]*.py", "x?y.go"]
    accept = path_filter_for(globs)
    assert accept is not None and accept is path_filter_for(list(globs))  # one object per set
    paths = ["src/pkg3/m.py", "src/pkg30/m.py", "lib/b.rs", "tests/u/v/test_x.py", "tests/t.py"]
    paths += ["deep/a.py", "c.py", "xzy.go", "d/xay.go", "d/xy.go", "src/pkg3"]

    def reference(path: str) -> bool:
        name = path.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatch(path, g) or fnmatch.fnmatch(name, g) for g in globs)

    assert [accept(p) for p in paths] == [reference(p) for p in paths]
    assert [p for p in paths if accept(p)] == [
        "src/pkg3/m.py", "lib/b.rs", "tests/u/v/test_x.py", "deep/a.py", "xzy.go", "d/xay.go",
    ]  # fmt: skip
