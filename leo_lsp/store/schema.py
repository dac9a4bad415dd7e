"""Schema of a project database, as ordered migrations recorded in `meta.schema_version`.

The vector table depends on the embedding model's dimension, so it is created by
`ensure_vector_table`, not by a migration: a model change drops and recreates it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


MIGRATIONS: list[Migration] = [_v1, _v2]


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


def ensure_vector_table(conn: Any, *, vec: bool, dim: int, model_id: str) -> bool:
    """Create the vector table for (model, dim); drop old vectors if the model changed.

    Returns True if existing vectors were dropped (everything must be re-embedded).
    """
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    backend = "vec0" if vec else "blob"
    changed = rows.get("model_id") not in (None, model_id) or rows.get("dim") not in (
        None,
        str(dim),
    )
    backend_changed = rows.get("vector_backend") not in (None, backend)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if changed or backend_changed:
            conn.execute("DROP TABLE IF EXISTS vectors")
            if changed:
                conn.execute("DELETE FROM vec_items")
        if vec:
            conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS vectors USING vec0("
                f"embedding float[{int(dim)}] distance_metric=cosine)"
            )
        else:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors (rowid INTEGER PRIMARY KEY, embedding BLOB)"
            )
        if backend_changed and not changed:
            # The vectors themselves were lost with the table: re-embed from the chunks.
            conn.execute("DELETE FROM vec_items")
        for key, value in (("model_id", model_id), ("dim", str(dim)), ("vector_backend", backend)):
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return bool(changed or backend_changed)
