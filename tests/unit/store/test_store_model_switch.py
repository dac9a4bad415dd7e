"""A model switch in the store (real sqlite file, real sqlite-vec): old vectors serve until the
new model's are complete, the swap is one transaction, and a restart mid-switch resumes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from leo_lsp.records import Chunk, Decision
from leo_lsp.store import lexical, schema
from leo_lsp.store.database import connect
from leo_lsp.store.project_store import ProjectStore

ALLOW = Decision("x", True, "source file", "rules")
OLD, NEW = ("old-model", 8), ("new-model", 12)


def chunk(text: str, symbol: str, line: int, path: str) -> Chunk:
    return Chunk(
        path=path,
        language="python",
        text=text,
        start_line=line,
        end_line=line,
        symbol=symbol,
        kind="function",
    )


def vectors_for(hashes: list[str], dim: int) -> np.ndarray:
    """A deterministic unit vector per hash (the store never looks inside)."""
    out = []
    for h in hashes:
        v = np.random.default_rng(int(h[:8], 16)).standard_normal(dim).astype(np.float32)
        out.append(v / np.linalg.norm(v))
    return np.stack(out) if out else np.zeros((0, dim), dtype=np.float32)


def open_store(db: Path, model: tuple[str, int]) -> ProjectStore:
    return ProjectStore(db, project_id="p", root="/r", dim=model[1], model_id=model[0])


def fill(s: ProjectStore, files: int = 3) -> None:
    for f in range(files):
        s.upsert_file(
            f"m{f}.py",
            content_hash=f"h{f}",
            size=1,
            mtime_ns=f + 1,
            language="python",
            decision=ALLOW,
            chunks=[chunk(f"def fn_{f}_{i}(x): return x + {i}", f"fn_{f}_{i}", i, f"m{f}.py")
                    for i in range(4)],
        )  # fmt: skip


def embed_all(s: ProjectStore, model: tuple[str, int], limit: int = 10_000) -> int:
    pending = s.pending(limit, model=model[0])
    hashes = [p.hash for p in pending]
    s.save_vectors(hashes, vectors_for(hashes, model[1]), model=model[0])
    return len(hashes)


def query_for(s: ProjectStore, cid: int, dim: int) -> np.ndarray:
    """The stored vector of chunk `cid` as a query: k-NN must put `cid` first."""
    h = s.execute("SELECT hash FROM chunks WHERE id = ?", (cid,))[0][0]
    return vectors_for([h], dim)[0]


def tables(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def test_old_vectors_serve_until_the_new_are_complete_then_one_swap(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    s = open_store(db, OLD)
    fill(s)
    embed_all(s, OLD)
    assert s.pending_texts() == 0 and len(s.index) == 12
    some = s.execute("SELECT MIN(id) FROM chunks")[0][0]
    assert s.vector_search(query_for(s, some, OLD[1]), 3)[0][0] == some

    assert s.use_model(*NEW) is True
    assert s.switching and s.serving_model == OLD[0] and s.model_id == NEW[0]
    # Every text (12 chunks + 12 name views) needs a vector of the new model...
    assert s.pending_texts() == 24 and s.pending_count() == 12
    # ...while the old model's vectors still answer (and a new-model query does not, yet).
    assert s.vector_search(query_for(s, some, OLD[1]), 3, model=OLD[0])[0][0] == some
    assert s.vector_search(query_for(s, some, NEW[1]), 3, model=NEW[0]) == []
    assert len(s.vectors_of([some], model=OLD[0])[some]) == OLD[1]

    embed_all(s, NEW, limit=10)
    progress = s.switch_progress()
    assert progress == {"from": OLD[0], "to": NEW[0], "done": 10, "total": 24}
    assert s.complete_switch() is False and s.serving_model == OLD[0] and len(s.index) == 12

    embed_all(s, NEW)
    assert s.complete_switch() is True
    assert not s.switching and s.serving_model == NEW[0] and s.switch_progress() is None
    assert s.index.dim == NEW[1] and len(s.index) == 12
    assert s.vector_search(query_for(s, some, NEW[1]), 3, model=NEW[0])[0][0] == some
    assert s.vector_search(query_for(s, some, OLD[1]), 3, model=OLD[0]) == []
    # The old generation is gone: its table and its vec_items rows.
    models = {r[0] for r in s.execute("SELECT DISTINCT model FROM vec_items")}
    assert models == {NEW[0]}
    s.close()
    assert tables(db) & {"vectors", "vectors_1"} == set() and "vectors_2" in tables(db)
    again = open_store(db, NEW)
    assert not again.reembed_all and again.pending_texts() == 0 and len(again.index) == 12
    again.close()


def test_restart_mid_switch_resumes_and_keeps_what_was_done(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    s = open_store(db, OLD)
    fill(s)
    embed_all(s, OLD)
    s.close()
    s = open_store(db, NEW)  # e.g. a restart with another embedding.model
    assert s.reembed_all and s.switching and len(s.index) == 12
    done = embed_all(s, NEW, limit=7)
    s._conn.close()  # no checkpoint, no close(): as after kill -9 (the WAL holds the commits)
    s = open_store(db, NEW)
    assert s.switching and s.serving_model == OLD[0] and len(s.index) == 12
    left = s.pending(model=NEW[0])
    assert len(left) == 24 - done  # nothing done is embedded again
    embed_all(s, NEW)
    s._conn.close()  # killed after the last vectors, before the swap
    s = open_store(db, NEW)
    assert not s.switching and s.serving_model == NEW[0] and len(s.index) == 12  # swapped at open
    s.close()


def test_back_to_the_serving_model_drops_the_half_done_target(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    s = open_store(db, OLD)
    fill(s)
    embed_all(s, OLD)
    s.use_model(*NEW)
    embed_all(s, NEW, limit=5)
    # The server came back before the fallback's vectors were complete: nothing to switch.
    assert s.use_model(*OLD) is False
    assert not s.switching and s.serving_model == OLD[0] and s.pending_texts() == 0
    assert {r[0] for r in s.execute("SELECT DISTINCT model FROM vec_items")} == {OLD[0]}
    s.close()


def test_a_model_without_vectors_is_replaced_without_a_switch(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    s = open_store(db, ("unknown-dim", 1))  # a server's placeholder before its dim is known
    fill(s)
    assert s.use_model(*NEW) is True
    assert not s.switching and s.serving_model == NEW[0] and s.pending_count() == 12
    s.close()


def test_edits_during_a_switch_are_searchable_with_the_old_model(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    s = open_store(db, OLD)
    fill(s)
    embed_all(s, OLD)
    s.use_model(*NEW)
    s.upsert_file(
        "m0.py",
        content_hash="edited",
        size=2,
        mtime_ns=9,
        language="python",
        decision=ALLOW,
        chunks=[chunk("def brand_new(y): return y * 7", "brand_new", 0, "m0.py")],
    )
    new_id = s.execute("SELECT id FROM chunks WHERE symbol = 'brand_new'")[0][0]
    assert new_id not in s.index  # no vector of the serving model yet
    assert [p.hash for p in s.pending(paths=["m0.py"], model=OLD[0])]  # what the pipeline embeds
    pending = s.pending(paths=["m0.py"], model=OLD[0])
    hashes = [p.hash for p in pending]
    s.save_vectors(hashes, vectors_for(hashes, OLD[1]), model=OLD[0])
    assert s.vector_search(query_for(s, new_id, OLD[1]), 1, model=OLD[0])[0][0] == new_id
    # Vectors of a model the store no longer uses are dropped, not stored.
    assert s.save_vectors(hashes, vectors_for(hashes, 5), model="gone") == 0


def test_version_2_database_upgrades_with_its_vectors_serving(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite3"
    conn, vec = connect(db)
    assert vec
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for step in schema.MIGRATIONS[:2]:
        step(conn)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    conn.execute(
        "CREATE VIRTUAL TABLE vectors USING vec0(embedding float[8] distance_metric=cosine)"
    )
    for key, value in (("model_id", OLD[0]), ("dim", "8"), ("vector_backend", "vec0")):
        conn.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
    conn.execute(
        "INSERT INTO files (id, path, content_hash, size, mtime_ns, language, allowed, reason, "
        "indexed_at) VALUES (1, 'a.py', 'h', 1, 1, 'python', 1, 'ok', 0)"
    )
    conn.execute(
        "INSERT INTO chunks (id, file_id, ordinal, hash, language, symbol, kind, scope, "
        "start_line, end_line, start_col, end_col, start_byte, end_byte, text, context) "
        "VALUES (1, 1, 0, 'abcdef01', 'python', 'f', 'function', '', 0, 0, 0, 0, 0, 0, 'x', '')"
    )
    conn.execute("INSERT INTO vec_items (id, hash, model) VALUES (5, 'abcdef01', ?)", (OLD[0],))
    conn.execute(
        "INSERT INTO vectors (rowid, embedding) VALUES (5, ?)",
        (vectors_for(["abcdef01"], 8)[0].tobytes(),),
    )
    conn.commit()
    conn.close()

    s = open_store(db, NEW)
    assert s.schema_version == 4 and s.switching and s.serving_model == OLD[0]
    # v4: the name view (none before v2, bare words until v3) is recomputed as leo phrases it.
    check = sqlite3.connect(db)
    row = check.execute("SELECT name_text, name_hash FROM chunks WHERE id = 1").fetchone()
    check.close()
    assert tuple(row) == lexical.name_columns("f", "", "x") and row[0] == "f (x)"
    assert s.vector_search(vectors_for(["abcdef01"], 8)[0], 1, model=OLD[0])[0][0] == 1
    # One vector per (hash, model) now: the same content gets the new model's vector too.
    s.save_vectors(["abcdef01"], vectors_for(["abcdef01"], NEW[1]), model=NEW[0])
    assert s.complete_switch() is False  # the recomputed name view has no vector yet
    s.save_vectors([row[1]], vectors_for([row[1]], NEW[1]), model=NEW[0])
    assert s.complete_switch() is True and s.serving_model == NEW[0]
    s.close()
    assert "vectors" not in tables(db)


@pytest.mark.parametrize("dim", [8, 16])
def test_same_model_name_with_another_dimension_drops_its_vectors(tmp_path: Path, dim: int) -> None:
    db = tmp_path / "i.sqlite3"
    s = open_store(db, OLD)
    fill(s, files=1)
    embed_all(s, OLD)
    s.close()
    s = open_store(db, (OLD[0], dim))
    same = dim == OLD[1]
    assert s.reembed_all is not same and not s.switching
    assert len(s.index) == (4 if same else 0)
    s.close()
