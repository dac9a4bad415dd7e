"""Schema of a project database, as ordered migrations recorded in `meta.schema_version`.

Vector tables depend on the embedding model's dimension, so they are created by
`ensure_vector_table`, not by a migration. Each model's vectors live in a table of their own (a
*generation*, named in `meta`): the *serving* generation answers searches; when the model
changes, a *target* generation fills in the background and `promote_target` swaps it in once it
is complete, so a model change never leaves search without vectors.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leo_lsp.store import lexical

logger = logging.getLogger(__name__)

Migration = Callable[[Any], None]


def _script(conn: Any, sql: str) -> None:
    # executescript() would COMMIT the migration's transaction; run statements one by one.
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1(conn: Any) -> None:
    _script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            content_hash TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            language TEXT NOT NULL,
            allowed INTEGER NOT NULL,
            reason TEXT NOT NULL,
            indexed_at REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS chunks (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            hash TEXT NOT NULL,
            language TEXT NOT NULL,
            symbol TEXT NOT NULL,
            kind TEXT NOT NULL,
            scope TEXT NOT NULL,
            start_line INTEGER NOT NULL,
            end_line INTEGER NOT NULL,
            start_col INTEGER NOT NULL,
            end_col INTEGER NOT NULL,
            start_byte INTEGER NOT NULL,
            end_byte INTEGER NOT NULL,
            text TEXT NOT NULL,
            context TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
        CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(hash);
        -- One row per distinct embedded content. Chunks find their vector by hash, so identical
        -- or unchanged code is never embedded twice, across files, edits and restarts.
        CREATE TABLE IF NOT EXISTS vec_items (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            model TEXT NOT NULL
        );
        CREATE VIRTUAL TABLE IF NOT EXISTS lexical USING fts5(
            symbol, path, body, tokenize = 'unicode61 remove_diacritics 2'
        );
        CREATE TABLE IF NOT EXISTS decisions (
            path TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            allowed INTEGER NOT NULL,
            reason TEXT NOT NULL,
            source TEXT NOT NULL,
            redactions INTEGER NOT NULL DEFAULT 0,
            at REAL NOT NULL,
            PRIMARY KEY (path, content_hash)
        );
        CREATE TABLE IF NOT EXISTS decision_log (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            allowed INTEGER NOT NULL,
            reason TEXT NOT NULL,
            source TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS decision_log_path ON decision_log(path);
        CREATE TABLE IF NOT EXISTS search_log (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            query_len INTEGER NOT NULL,
            results INTEGER NOT NULL,
            took_ms REAL NOT NULL,
            mode TEXT NOT NULL
        );
        """,
    )


def _v2(conn: Any) -> None:
    # A second, tiny embedded text per chunk: its name view (scope + signature words), used to
    # re-rank search results without embedding anything at query time.
    conn.execute("ALTER TABLE chunks ADD COLUMN name_text TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE chunks ADD COLUMN name_hash TEXT NOT NULL DEFAULT ''")
    conn.execute("CREATE INDEX IF NOT EXISTS chunks_name_hash ON chunks(name_hash)")


def _v3(conn: Any) -> None:
    # Vectors of two models live side by side while the index switches models: a content hash
    # has one vector per model, and meta names the serving and the target generation.
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    conn.execute(
        """CREATE TABLE vec_items_v3 (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL,
            model TEXT NOT NULL,
            UNIQUE (hash, model)
        )"""
    )
    model = rows.get("model_id")
    if model is not None:
        conn.execute(
            "INSERT INTO vec_items_v3 (id, hash, model) SELECT id, hash, model FROM vec_items "
            "WHERE model = ?",
            (model,),
        )
    conn.execute("DROP TABLE vec_items")
    conn.execute("ALTER TABLE vec_items_v3 RENAME TO vec_items")
    if model is not None and "dim" in rows:
        for key, value in (
            ("serving_model", model),
            ("serving_dim", rows["dim"]),
            ("serving_table", "vectors"),
        ):
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
    conn.execute("DELETE FROM meta WHERE key IN ('model_id', 'dim')")


def _v4(conn: Any) -> None:
    # Name views are phrased `get all (name, failobj) in message` now; a store indexed before kept
    # the bare words (`get all name failobj message`, or none before v2) for unchanged files, and
    # re-ranking compared queries with vectors of the old text. Recompute them (one pass over
    # the chunks at the first open after upgrading); the new views embed in the background like
    # any pending text.
    last = 0
    while True:
        rows = conn.execute(
            "SELECT id, symbol, scope, text FROM chunks WHERE id > ? ORDER BY id LIMIT 5000",
            (last,),
        ).fetchall()
        if not rows:
            break
        conn.executemany(
            "UPDATE chunks SET name_text = ?, name_hash = ? WHERE id = ?",
            [
                (*lexical.name_columns(symbol, scope, text), cid)
                for cid, symbol, scope, text in rows
            ],
        )
        last = rows[-1][0]


MIGRATIONS: list[Migration] = [_v1, _v2, _v3, _v4]


def migrate(conn: Any) -> int:
    """Apply the migrations this database has not seen; return the schema version."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row else 0
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(conn)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(number),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version


_TABLE = re.compile(r"vectors(?:_[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Generation:
    """The vectors of one embedding model: its id, dimension and table."""

    model: str
    dim: int
    table: str


@dataclass(frozen=True, slots=True)
class VectorTables:
    """What `ensure_vector_table` left: the serving generation and the one being filled."""

    serving: Generation
    target: Generation | None
    dropped: bool
    """Stored vectors were discarded (unusable: another backend, or the model's dim changed)."""


def _generation(rows: dict[str, str], role: str) -> Generation | None:
    model, dim, table = (rows.get(f"{role}_{k}") for k in ("model", "dim", "table"))
    if model is None or dim is None or table is None or not _TABLE.fullmatch(table):
        return None
    try:
        return Generation(model, int(dim), table)
    except ValueError:
        return None


def generations(conn: Any) -> tuple[Generation | None, Generation | None]:
    """(serving, target) as recorded in meta; target is None unless a switch is under way."""
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    return _generation(rows, "serving"), _generation(rows, "target")


def _set(conn: Any, role: str, gen: Generation | None) -> None:
    if gen is None:
        conn.execute(
            "DELETE FROM meta WHERE key IN (?, ?, ?)",
            (f"{role}_model", f"{role}_dim", f"{role}_table"),
        )
        return
    for key, value in (("model", gen.model), ("dim", str(gen.dim)), ("table", gen.table)):
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"{role}_{key}", value)
        )


def _drop(conn: Any, gen: Generation | None, *, rows: bool = True) -> None:
    if gen is None:
        return
    try:
        conn.execute(f"DROP TABLE IF EXISTS {gen.table}")
    except Exception as exc:  # a vec0 table cannot be dropped without the extension loaded
        logger.warning("cannot drop the vector table %s (%s); left in place", gen.table, exc)
    if rows:
        conn.execute("DELETE FROM vec_items WHERE model = ?", (gen.model,))


def _create(conn: Any, *, vec: bool, dim: int, model: str, avoid: set[str]) -> Generation:
    row = conn.execute("SELECT value FROM meta WHERE key = 'next_table'").fetchone()
    number = int(row[0]) if row else 1
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    while f"vectors_{number}" in names or f"vectors_{number}" in avoid:
        number += 1
    table = f"vectors_{number}"
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_table', ?)", (str(number + 1),)
    )
    if vec:
        conn.execute(
            f"CREATE VIRTUAL TABLE {table} USING vec0("
            f"embedding float[{int(dim)}] distance_metric=cosine)"
        )
    else:
        conn.execute(f"CREATE TABLE {table} (rowid INTEGER PRIMARY KEY, embedding BLOB)")
    return Generation(model, int(dim), table)


def ensure_vector_table(conn: Any, *, vec: bool, dim: int, model_id: str) -> VectorTables:
    """Make (model_id, dim) the model new vectors are written for.

    The same model as the serving generation: any half-filled target is dropped. Another model:
    the serving vectors stay and a target generation is created (or resumed, if it is this
    model's). A serving generation without a vector is simply replaced.
    """
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    backend = "vec0" if vec else "blob"
    serving, target = _generation(rows, "serving"), _generation(rows, "target")
    dropped = False
    conn.execute("BEGIN IMMEDIATE")
    try:
        if rows.get("vector_backend") not in (None, backend):
            # The vectors cannot be read by the other backend: re-embed from the chunks.
            _drop(conn, serving)
            _drop(conn, target)
            conn.execute("DELETE FROM vec_items")
            dropped = serving is not None or target is not None
            serving = target = None
        if serving is not None and serving.model == model_id and serving.dim != dim:
            # The server's model changed under the same name: its old vectors are unusable.
            _drop(conn, serving)
            serving, dropped = None, True
        if target is not None and (target.model, target.dim) != (model_id, dim):
            _drop(conn, target)
            target = None
        if serving is not None and (serving.model, serving.dim) == (model_id, dim):
            _drop(conn, target)
            target = None
        elif (
            serving is not None
            and not conn.execute(
                "SELECT 1 FROM vec_items WHERE model = ? LIMIT 1", (serving.model,)
            ).fetchone()
        ):
            _drop(conn, serving)  # nothing to serve meanwhile: no switch, just a new model
            serving = None
        if serving is None:
            serving, target = target, None
        if serving is None:
            serving = _create(conn, vec=vec, dim=dim, model=model_id, avoid=set())
        elif (serving.model, serving.dim) != (model_id, dim) and target is None:
            target = _create(conn, vec=vec, dim=dim, model=model_id, avoid={serving.table})
        _set(conn, "serving", serving)
        _set(conn, "target", target)
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('vector_backend', ?)", (backend,)
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return VectorTables(serving, target, dropped)


def promote_target(conn: Any, serving: Generation, target: Generation) -> None:
    """Inside the caller's transaction: the target serves, the old generation goes."""
    _drop(conn, serving)
    _set(conn, "serving", target)
    _set(conn, "target", None)
