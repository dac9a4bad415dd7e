"""One project's index: files, chunks, vectors (sqlite-vec), lexical (FTS5), decisions.

sqlite is the store of record; searches run on an in-memory `VectorIndex` rebuilt from it at open.
When the embedding model changes, the old model's vectors keep answering searches while the new
model's fill a table of their own (see `schema`); `complete_switch` swaps them in when complete.
Every method is synchronous and thread-safe (one lock around the connection): callers on the
event loop run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from leo_lsp.errors import StoreError
from leo_lsp.records import Chunk, Decision, SearchHit
from leo_lsp.store import lexical, schema
from leo_lsp.store.database import DatabaseError, open_checked, open_reader
from leo_lsp.store.schema import Generation
from leo_lsp.store.vector_index import VectorIndex

logger = logging.getLogger(__name__)

# Rows a lexical query may make BM25 score (~1 µs each here): bounds its cost at any size.
LEXICAL_POSTINGS_BUDGET = 20_000


@dataclass(frozen=True, slots=True)
class FileState:
    """What the store knows of one file, enough to skip it when unchanged."""

    path: str
    content_hash: str
    size: int
    mtime_ns: int
    allowed: bool


# Which pending texts `ProjectStore.pending` returns: chunks, name views, or both.
PendingTexts = Literal["all", "chunks", "names"]


@dataclass(frozen=True, slots=True)
class PendingChunk:
    """A text (a chunk, or a chunk's name view) whose vector is not yet stored."""

    chunk_id: int
    hash: str
    text: str
    name_view: bool = False


def embed_text(chunk_text: str, context: str) -> str:
    """What the embedder sees for a chunk: the kept signature, then the code."""
    return f"{context}\n{chunk_text}" if context else chunk_text


class ProjectStore:
    """The sqlite database of one project (workspace folder)."""

    def __init__(
        self,
        db_path: Path | str,
        *,
        project_id: str,
        root: str,
        dim: int,
        model_id: str,
        load_vec: bool = True,
    ) -> None:
        self.project_id = project_id
        self.root = root
        self.db_path = str(db_path)
        self._lock = threading.RLock()
        try:
            if self.db_path == ":memory:":
                from leo_lsp.store.database import connect

                self._conn, self.vec_loaded = connect(":memory:", load_vec=load_vec)
                self.recovery_note: str | None = None
            else:
                self._conn, self.vec_loaded, self.recovery_note = open_checked(
                    Path(self.db_path), load_vec=load_vec
                )
            self.schema_version = schema.migrate(self._conn)
            tables = schema.ensure_vector_table(
                self._conn, vec=self.vec_loaded, dim=dim, model_id=model_id
            )
        except DatabaseError as exc:
            raise StoreError(f"cannot open the index at {self.db_path}: {exc}") from exc
        # Searches read through their own connection: in WAL mode a reader never waits for the
        # writer, so a search does not queue behind a crawl's vector writes.
        if self.db_path == ":memory:":
            self._reader, self._rlock = self._conn, self._lock
        else:
            self._reader, _ = open_reader(Path(self.db_path), load_vec=self.vec_loaded)
            self._rlock = threading.RLock()
        self._vocab = self._open_vocabulary()
        self._serving: Generation = tables.serving
        self._target: Generation | None = tables.target
        self.reembed_all = tables.dropped or tables.target is not None
        """Opened with vectors to (re-)embed for a new model (dropped, or a switch under way)."""
        self._pending_cache: tuple[float, str, int] | None = None
        self._progress_cache: tuple[float, dict[str, Any] | None] | None = None
        self._search_buf: list[tuple[float, int, int, float, str]] = []
        self._search_buf_lock = threading.Lock()
        # The index and the generation it holds, as one value: a search reads both at once, so
        # a model swap can never pair a query of one model with the vectors of another.
        self._view: tuple[VectorIndex, Generation] = (self._build_index(), self._serving)
        if self._target is not None:
            # Killed after the last target vector was written but before the swap: finish it.
            self.complete_switch()

    def _open_vocabulary(self) -> bool:
        """FTS5 term counts as a table on the reader (see `_affordable`); False if unavailable."""
        try:
            with self._rlock:
                # The reader is query_only, which refuses even a TEMP table: lifted for this one.
                self._reader.execute("PRAGMA query_only=OFF")
                try:
                    self._reader.execute(
                        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.lexical_vocab"
                        " USING fts5vocab(main, lexical, 'row')"
                    )
                finally:
                    if self._reader is not self._conn:
                        self._reader.execute("PRAGMA query_only=ON")
        except DatabaseError as exc:
            logger.info("no FTS5 vocabulary (%s): lexical queries keep every term", exc)
            return False
        return True

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """Which vector path is live: 'sqlite-vec' or 'numpy' (fallback)."""
        return "sqlite-vec" if self.vec_loaded else "numpy"

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        if self._reader is not self._conn:
            with self._rlock:
                self._reader.close()
        self._flush_searches()
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except DatabaseError:
                pass
            self._conn.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn, self._lock)

    @property
    def model_id(self) -> str:
        """The model new vectors are written for (the target while switching)."""
        return (self._target or self._serving).model

    @property
    def dim(self) -> int:
        """The dimension of `model_id`."""
        return (self._target or self._serving).dim

    @property
    def serving_model(self) -> str:
        """The model whose vectors answer searches (a query must be embedded with it)."""
        return self._serving.model

    @property
    def serving_dim(self) -> int:
        """The dimension of `serving_model`."""
        return self._serving.dim

    @property
    def target_model(self) -> str | None:
        """The model being switched to, or None when no switch is under way."""
        return self._target.model if self._target is not None else None

    @property
    def switching(self) -> bool:
        """Whether a model switch is under way (old vectors serve until the new are complete)."""
        return self._target is not None

    def use_model(self, model_id: str, dim: int) -> bool:
        """Write vectors of another embedding model (or a newly learned dimension) from now on.

        The serving vectors keep answering searches until every text has a vector of the new
        model (`complete_switch`). Returns True if there is re-embedding to do.
        """
        with self._lock:
            if (model_id, dim) == (self.model_id, self.dim):
                return False
            try:
                tables = schema.ensure_vector_table(
                    self._conn, vec=self.vec_loaded, dim=dim, model_id=model_id
                )
            except DatabaseError as exc:
                raise StoreError(f"cannot switch the index to {model_id}: {exc}") from exc
            old = self._serving
            self._serving, self._target = tables.serving, tables.target
            self._pending_cache = self._progress_cache = None
            index = self._build_index() if self._serving != old else self.index
            self._view = (index, self._serving)
        return tables.target is not None or tables.serving != old

    def complete_switch(self) -> bool:
        """If every text has a vector of the target model, make it serve (one transaction).

        Returns True if the switch happened; the old model's vectors are gone then.
        """
        with self._lock:
            serving, target = self._serving, self._target
            if target is None:
                return False
            with self._tx() as c:
                if self._missing_texts(c, target.model) > 0:
                    return False
                # Built before the swap (the lock keeps writers out), so the swap is one
                # assignment for searches.
                index = self._build_index(target)
                schema.promote_target(c, serving, target)
            self._serving, self._target = target, None
            self._pending_cache = self._progress_cache = None
            self._view = (index, target)
        logger.info(
            "%s: vectors of %s complete; they replace those of %s",
            self.project_id,
            target.model,
            serving.model,
            extra={"project": self.project_id},
        )
        return True

    @property
    def index(self) -> VectorIndex:
        """The in-memory index of the serving model's vectors."""
        return self._view[0]

    def _build_index(self, generation: Generation | None = None) -> VectorIndex:
        """A VectorIndex of the serving generation, or of `generation` (caller holds the lock)."""
        gen = generation or self._serving
        index = VectorIndex(gen.dim)
        rows = self._conn.execute(
            f"""SELECT c.id, c.language, f.path, v.embedding
               FROM chunks c JOIN files f ON f.id = c.file_id
               JOIN vec_items vi ON vi.hash = c.hash AND vi.model = ?
               JOIN {gen.table} v ON v.rowid = vi.id""",
            (gen.model,),
        ).fetchall()
        if not rows:
            return index
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(
            len(rows), gen.dim
        )
        index.add(
            ids,
            vecs,
            [r[1] for r in rows],
            [self.project_id] * len(rows),
            [r[2] for r in rows],
        )
        return index

    # -- files -----------------------------------------------------------------------------

    def file_states(self) -> dict[str, FileState]:
        """Every known file's state, keyed by path."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, content_hash, size, mtime_ns, allowed FROM files"
            ).fetchall()
        return {r[0]: FileState(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows}

    def file_state(self, path: str) -> FileState | None:
        """One file's state, or None if the store has never seen it."""
        with self._lock:
            r = self._conn.execute(
                "SELECT path, content_hash, size, mtime_ns, allowed FROM files WHERE path = ?",
                (path,),
            ).fetchone()
        return FileState(r[0], r[1], r[2], r[3], bool(r[4])) if r else None

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        """Record a new mtime for a file whose content did not change."""
        with self._tx() as c:
            c.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path)
            )

    def upsert_file(
        self,
        path: str,
        *,
        content_hash: str,
        size: int,
        mtime_ns: int,
        language: str,
        decision: Decision,
        chunks: Sequence[Chunk],
    ) -> int:
        """Replace a file's chunks in one transaction; return how many chunks still need vectors.

        Chunks whose content hash already has a vector reuse it (no re-embedding); while the
        model switches, a chunk needs a vector of the new model to count as done.
        """
        now = time.time()
        removed: list[int] = []
        added: list[tuple[int, Chunk]] = []
        with self._tx() as c:
            row = c.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
            # Existing chunks by identity: an edit keeps every chunk it did not touch (its row,
            # lexical entry and vector), and only moves those below the edit.
            existing: dict[tuple[str, str, str, str], list[tuple[int, tuple[int, ...]]]] = {}
            if row:
                file_id = int(row[0])
                for r in c.execute(
                    """SELECT id, hash, symbol, kind, scope, ordinal, start_line, end_line,
                              start_col, end_col, start_byte, end_byte
                       FROM chunks WHERE file_id = ? ORDER BY ordinal""",
                    (file_id,),
                ):
                    existing.setdefault((r[1], r[2], r[3], r[4]), []).append((r[0], tuple(r[5:])))
                c.execute(
                    """UPDATE files SET content_hash=?, size=?, mtime_ns=?, language=?, allowed=?,
                       reason=?, indexed_at=? WHERE id=?""",
                    (
                        content_hash,
                        size,
                        mtime_ns,
                        language,
                        int(decision.allowed),
                        decision.reason,
                        now,
                        file_id,
                    ),
                )
            else:
                cur = c.execute(
                    """INSERT INTO files (path, content_hash, size, mtime_ns, language, allowed,
                       reason, indexed_at) VALUES (?,?,?,?,?,?,?,?)""",
                    (
                        path,
                        content_hash,
                        size,
                        mtime_ns,
                        language,
                        int(decision.allowed),
                        decision.reason,
                        now,
                    ),
                )
                file_id = int(cur.lastrowid)
            fresh: list[tuple[int, Chunk]] = []
            for ordinal, ch in enumerate(chunks if decision.allowed else ()):
                same = existing.get((ch.hash, ch.symbol, ch.kind, ch.scope))
                if same:
                    chunk_id, coords = same.pop(0)
                    new_coords = (
                        ordinal,
                        ch.start_line,
                        ch.end_line,
                        ch.start_col,
                        ch.end_col,
                        ch.start_byte,
                        ch.end_byte,
                    )
                    if coords != new_coords:
                        c.execute(
                            """UPDATE chunks SET ordinal=?, start_line=?, end_line=?, start_col=?,
                               end_col=?, start_byte=?, end_byte=? WHERE id=?""",
                            (*new_coords, chunk_id),
                        )
                else:
                    fresh.append((ordinal, ch))
            removed = [cid for rows in existing.values() for cid, _ in rows]
            for i in range(0, len(removed), 500):
                part = removed[i : i + 500]
                marks = ",".join("?" * len(part))
                c.execute(f"DELETE FROM lexical WHERE rowid IN ({marks})", part)
                c.execute(f"DELETE FROM chunks WHERE id IN ({marks})", part)
            for ordinal, ch in fresh:
                cur = c.execute(
                    """INSERT INTO chunks (file_id, ordinal, hash, language, symbol, kind, scope,
                       start_line, end_line, start_col, end_col, start_byte, end_byte, text,
                       context, name_text, name_hash)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                    (
                        file_id,
                        ordinal,
                        ch.hash,
                        ch.language,
                        ch.symbol,
                        ch.kind,
                        ch.scope,
                        ch.start_line,
                        ch.end_line,
                        ch.start_col,
                        ch.end_col,
                        ch.start_byte,
                        ch.end_byte,
                        ch.text,
                        ch.context,
                        *lexical.name_columns(ch.symbol, ch.scope, ch.text),
                    ),
                )
                chunk_id = int(cur.lastrowid)
                added.append((chunk_id, ch))
                c.execute(
                    "INSERT INTO lexical (rowid, symbol, path, body) VALUES (?,?,?,?)",
                    (
                        chunk_id,
                        lexical.expand(ch.qualified_name),
                        lexical.expand(path),
                        lexical.expand(ch.text),
                    ),
                )
            # Read under the lock: a model swap cannot come between these and the index they fit.
            index, serving, target = self.index, self._serving, self._target
            known = self._known_vectors(c, [ch.hash for _, ch in added], serving)
            written: set[str] = set(known)
            if target is not None:
                written = self._known_hashes(c, [ch.hash for _, ch in added], target.model)
        if removed:
            index.remove(np.array(removed, dtype=np.int64))
        reuse = [(cid, ch) for cid, ch in added if ch.hash in known]
        if reuse:
            index.add(
                np.array([cid for cid, _ in reuse], dtype=np.int64),
                np.stack([known[ch.hash] for _, ch in reuse]),
                [ch.language for _, ch in reuse],
                [self.project_id] * len(reuse),
                [path] * len(reuse),
            )
        return sum(1 for _, ch in added if ch.hash not in written)

    @staticmethod
    def _known_vectors(
        c: Any, hashes: Iterable[str], gen: Generation
    ) -> dict[str, npt.NDArray[np.float32]]:
        wanted = list(set(hashes))
        out: dict[str, npt.NDArray[np.float32]] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            rows = c.execute(
                f"""SELECT vi.hash, v.embedding FROM vec_items vi JOIN {gen.table} v
                    ON v.rowid = vi.id
                    WHERE vi.model = ? AND vi.hash IN ({",".join("?" * len(part))})""",
                [gen.model, *part],
            ).fetchall()
            for h, blob in rows:
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    @staticmethod
    def _known_hashes(c: Any, hashes: Iterable[str], model: str) -> set[str]:
        wanted = list(set(hashes))
        out: set[str] = set()
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            rows = c.execute(
                f"""SELECT hash FROM vec_items
                    WHERE model = ? AND hash IN ({",".join("?" * len(part))})""",
                [model, *part],
            ).fetchall()
            out.update(r[0] for r in rows)
        return out

    def delete_file(self, path: str) -> bool:
        """Forget a file and its chunks; True if it was known."""
        with self._tx() as c:
            row = c.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
            if not row:
                return False
            ids = [r[0] for r in c.execute("SELECT id FROM chunks WHERE file_id = ?", (row[0],))]
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                c.execute(f"DELETE FROM lexical WHERE rowid IN ({','.join('?' * len(part))})", part)
            c.execute("DELETE FROM files WHERE id = ?", (row[0],))
            index = self.index
        if ids:
            index.remove(np.array(ids, dtype=np.int64))
        return True

    # -- vectors ---------------------------------------------------------------------------

    def pending(
        self,
        limit: int = 10_000,
        paths: Sequence[str] | None = None,
        *,
        model: str | None = None,
        texts: PendingTexts = "all",
    ) -> list[PendingChunk]:
        """Texts without a stored vector of `model` (default `model_id`), one per distinct hash:
        chunks first (those of the most recently changed files first: they are what the developer
        is working on), then name views; `texts` = "chunks" or "names" for one kind only.

        Without `paths` both queries scan every chunk (~6 s each at 1M chunks): a full pass
        should go a group of paths at a time (paths_by_recency).
        """
        model = model or self.model_id
        where = ""
        args: list[Any] = []
        if paths:
            where = f" AND f.path IN ({','.join('?' * len(paths))})"
            args.extend(paths)
        chunks_sql = f"""SELECT MIN(c.id), c.hash, c.text, c.context FROM chunks c
                 JOIN files f ON f.id = c.file_id
                 LEFT JOIN vec_items vi ON vi.hash = c.hash AND vi.model = ?
                 WHERE vi.id IS NULL{where} GROUP BY c.hash
                 ORDER BY MAX(f.mtime_ns) DESC LIMIT ?"""
        names_sql = f"""SELECT MIN(c.id), c.name_hash, c.name_text FROM chunks c
                 JOIN files f ON f.id = c.file_id
                 LEFT JOIN vec_items vi ON vi.hash = c.name_hash AND vi.model = ?
                 WHERE c.name_hash != '' AND vi.id IS NULL{where} GROUP BY c.name_hash LIMIT ?"""
        with self._lock:
            out: list[PendingChunk] = []
            if texts != "names":
                rows = self._conn.execute(chunks_sql, [model, *args, limit]).fetchall()
                out = [PendingChunk(r[0], r[1], embed_text(r[2], r[3])) for r in rows]
            if len(out) < limit and texts != "chunks":
                rows = self._conn.execute(names_sql, [model, *args, limit - len(out)]).fetchall()
                out.extend(PendingChunk(r[0], r[1], r[2], name_view=True) for r in rows)
        return out

    def paths_by_recency(self) -> list[str]:
        """Every file's path, the most recently changed first."""
        with self._rlock:
            rows = self._reader.execute("SELECT path FROM files ORDER BY mtime_ns DESC, id DESC")
            return [r[0] for r in rows]

    def file_count(self) -> int:
        """How many files the project has (indexed or denied)."""
        with self._rlock:
            return int(self._reader.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    def pending_count(self, *, max_age: float = 0.0) -> int:
        """How many distinct chunk contents still need a vector (of `model_id`).

        A full count scans every chunk, so callers on the search path accept a value up to
        `max_age` seconds old.
        """
        now = time.monotonic()
        model = self.model_id
        cached = self._pending_cache
        if max_age and cached is not None and cached[1] == model and now - cached[0] <= max_age:
            return cached[2]
        with self._lock:
            count = self._missing(self._conn, "hash", model)
        self._pending_cache = (now, model, count)
        return count

    @staticmethod
    def _missing(c: Any, column: str, model: str) -> int:
        assert column in ("hash", "name_hash")
        row = c.execute(
            f"""SELECT COUNT(DISTINCT c.{column}) FROM chunks c
               LEFT JOIN vec_items vi ON vi.hash = c.{column} AND vi.model = ?
               WHERE c.{column} != '' AND vi.id IS NULL""",
            (model,),
        ).fetchone()
        return int(row[0])

    def _missing_texts(self, c: Any, model: str) -> int:
        return self._missing(c, "hash", model) + self._missing(c, "name_hash", model)

    def pending_texts(self) -> int:
        """Everything still to embed: chunk texts plus name views (the crawl's progress total)."""
        with self._lock:
            return self._missing_texts(self._conn, self.model_id)

    def switch_progress(self, *, max_age: float = 0.0) -> dict[str, Any] | None:
        """While switching models: {"from", "to", "done", "total"} in texts (chunks and name
        views); None when no switch is under way. Cached up to `max_age` seconds.
        """
        now = time.monotonic()
        cached = self._progress_cache
        if max_age and cached is not None and now - cached[0] <= max_age:
            return cached[1]
        with self._lock:
            serving, target = self._serving, self._target
            out: dict[str, Any] | None = None
            if target is not None:
                c = self._conn
                total = int(
                    c.execute(
                        "SELECT (SELECT COUNT(DISTINCT hash) FROM chunks) + "
                        "(SELECT COUNT(DISTINCT name_hash) FROM chunks WHERE name_hash != '')"
                    ).fetchone()[0]
                )
                missing = self._missing_texts(c, target.model)
                out = {
                    "from": serving.model,
                    "to": target.model,
                    "done": total - missing,
                    "total": total,
                }
        self._progress_cache = (now, out)
        return out

    def save_vectors(
        self,
        hashes: Sequence[str],
        vectors: npt.NDArray[np.float32],
        *,
        model: str | None = None,
    ) -> int:
        """Store vectors of `model` (default `model_id`) for content hashes, in one transaction.

        Returns how many chunks got a vector. Vectors of the serving model are searchable at
        once; those of the target model when the switch completes; those of a model the store
        no longer uses (replaced meanwhile) are dropped.
        """
        if len(hashes) == 0:
            return 0
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._tx() as c:
            gen = (self._target or self._serving) if model is None else self._generation_of(model)
            if gen is None:
                logger.info("%s: vectors of %s dropped: no longer in use", self.project_id, model)
                return 0
            if vectors.shape != (len(hashes), gen.dim):
                raise StoreError(
                    f"vector shape {vectors.shape} does not match {len(hashes)}×{gen.dim}"
                )
            serves = gen == self._serving
            index = self.index
            self._flush_searches(c)
            for h, v in zip(hashes, vectors, strict=True):
                cur = c.execute(
                    "INSERT OR IGNORE INTO vec_items (hash, model) VALUES (?, ?)", (h, gen.model)
                )
                if cur.rowcount:
                    c.execute(
                        f"INSERT INTO {gen.table} (rowid, embedding) VALUES (?, ?)",
                        (cur.lastrowid, v.tobytes()),
                    )
            rows: list[tuple[int, str, str, str]] = []
            for i in range(0, len(hashes), 500):
                part = list(hashes[i : i + 500])
                rows.extend(
                    c.execute(
                        f"""SELECT c.id, c.hash, c.language, f.path FROM chunks c
                            JOIN files f ON f.id = c.file_id
                            WHERE c.hash IN ({",".join("?" * len(part))})""",
                        part,
                    ).fetchall()
                )
        if rows and serves:
            pos = {h: i for i, h in enumerate(hashes)}
            index.add(
                np.array([r[0] for r in rows], dtype=np.int64),
                vectors[[pos[r[1]] for r in rows]],
                [r[2] for r in rows],
                [self.project_id] * len(rows),
                [r[3] for r in rows],
            )
        return len(rows)

    def _generation_of(self, model: str) -> Generation | None:
        if model == self._serving.model:
            return self._serving
        if self._target is not None and model == self._target.model:
            return self._target
        return None

    # -- search ----------------------------------------------------------------------------

    def vector_search(
        self,
        query: npt.NDArray[np.float32],
        k: int,
        *,
        languages: set[str] | None = None,
        path_filter: Callable[[str], bool] | None = None,
        model: str | None = None,
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) best first, from the in-memory index of the serving model.

        `model` names the query's model: if the serving model is another one (swapped since the
        query was embedded), there is no vector answer.
        """
        index, serving = self._view
        if (model is not None and model != serving.model) or query.shape != (serving.dim,):
            return []
        return index.search(query, k, languages=languages, path_filter=path_filter)

    def file_cosines(
        self, query: npt.NDArray[np.float32], paths: Iterable[str], *, model: str | None = None
    ) -> dict[str, float]:
        """Cosine of the query with each file's mean chunk vector (serving model; else empty)."""
        index, serving = self._view
        if (model is not None and model != serving.model) or query.shape != (serving.dim,):
            return {}
        return {p: float(c @ query) for p, c in index.centroids(paths).items()}

    def lexical_search(
        self,
        query: str,
        k: int,
        *,
        languages: set[str] | None = None,
        path_globs: Sequence[str] | None = None,
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25-derived score, higher is better) best first."""
        match = lexical.match_expression(self._affordable(lexical.fts_parts(query)))
        if match is None:
            return []
        sql = """SELECT l.rowid, bm25(lexical, 4.0, 1.5, 1.0) AS s FROM lexical l"""
        args: list[Any] = [match]
        filtered = bool(languages or path_globs)
        if filtered:
            sql += " JOIN chunks c ON c.id = l.rowid JOIN files f ON f.id = c.file_id"
        sql += " WHERE lexical MATCH ?"
        if languages:
            sql += f" AND c.language IN ({','.join('?' * len(languages))})"
            args.extend(sorted(languages))
        sql += " ORDER BY s LIMIT ?"
        # Path globs are applied in Python (GLOB semantics differ from gitignore-style globs),
        # so over-fetch to keep k results after filtering.
        args.append(k * 8 if path_globs else k)
        with self._rlock:
            try:
                rows = self._reader.execute(sql, args).fetchall()
                if path_globs:
                    paths = self._paths_of([r[0] for r in rows])
                    rows = [r for r in rows if _glob_any(paths.get(r[0], ""), path_globs)]
            except DatabaseError as exc:
                logger.warning("lexical query %r failed: %s", match, exc)
                return []
        return [(int(r[0]), -float(r[1])) for r in rows[:k]]

    def _affordable(self, parts: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
        """The rarest terms whose postings fit LEXICAL_POSTINGS_BUDGET (at least the rarest one).

        BM25 scores every row a term matches before the LIMIT applies: a word in every chunk
        ("items", "value") costs ~1 µs per row, 1 s at 1M chunks, and ranks by little more than
        the rarer terms and the vectors already do. Terms are looked up in the FTS5 vocabulary (a
        b-tree range, ~0.2 ms each) and the commonest dropped while they would exceed the budget.
        A prefix sums every word it covers ("item"* counts "item" and "items"), so the count is
        an upper bound and terms can be dropped from projects of well under 20k chunks.
        """
        if len(parts) < 2 or not self._vocab:
            return parts
        counted: list[tuple[int, tuple[str, bool]]] = []
        try:
            with self._rlock:
                for term, prefix in parts:
                    if prefix:
                        upper = term[:-1] + chr(ord(term[-1]) + 1)
                        row = self._reader.execute(
                            "SELECT COALESCE(SUM(doc), 0) FROM temp.lexical_vocab"
                            " WHERE term >= ? AND term < ?",
                            (term, upper),
                        ).fetchone()
                    else:
                        row = self._reader.execute(
                            "SELECT COALESCE(SUM(doc), 0) FROM temp.lexical_vocab WHERE term = ?",
                            (term,),
                        ).fetchone()
                    counted.append((int(row[0]), (term, prefix)))
        except DatabaseError as exc:
            logger.debug("vocabulary lookup failed (%s): every term kept", exc)
            return parts
        counted.sort(key=lambda c: c[0])
        kept, total = [counted[0][1]], counted[0][0]
        for docs, part in counted[1:]:
            if total + docs > LEXICAL_POSTINGS_BUDGET:
                break
            kept.append(part)
            total += docs
        return [p for p in parts if p in kept]

    def vectors_of(
        self, ids: Sequence[int], *, model: str | None = None
    ) -> dict[int, npt.NDArray[np.float32]]:
        """Stored vectors (serving model) of chunk ids; pending chunks are absent. For re-ranking;
        empty if `model` is given and no longer serves.

        Read from the in-memory index, which holds every serving vector (a vec0 lookup by rowid
        costs ~0.1 ms each, 16 ms for a hybrid query's lexical-only candidates); sqlite answers
        for any id the index does not hold.
        """
        index, gen = self._view
        if model is not None and model != gen.model:
            return {}
        out = index.vectors_of(list(ids))
        missing = [i for i in ids if i not in out]
        if missing:
            out.update(self._vectors_by("hash", missing, model))
        return out

    def name_vectors_of(
        self, ids: Sequence[int], *, model: str | None = None
    ) -> dict[int, npt.NDArray[np.float32]]:
        """Stored name-view vectors (serving model) of chunk ids (absent while pending)."""
        return self._vectors_by("name_hash", ids, model)

    def _vectors_by(
        self, column: str, ids: Sequence[int], model: str | None
    ) -> dict[int, npt.NDArray[np.float32]]:
        assert column in ("hash", "name_hash")
        gen = self._serving
        out: dict[int, npt.NDArray[np.float32]] = {}
        if model is not None and model != gen.model:
            return out
        with self._rlock:
            for i in range(0, len(ids), 500):
                part = list(ids[i : i + 500])
                try:
                    # Point lookups by rowid (~0.1 ms each). Not `rowid IN (…)`: twice as fast at
                    # 10k rows, but vec0 answers it with a scan: ~1.1 s per query at 1M rows.
                    rows = self._reader.execute(
                        f"""SELECT c.id, v.embedding FROM chunks c
                            JOIN vec_items vi ON vi.hash = c.{column} AND vi.model = ?
                            JOIN {gen.table} v ON v.rowid = vi.id
                            WHERE c.{column} != '' AND c.id IN ({",".join("?" * len(part))})""",
                        [gen.model, *part],
                    ).fetchall()
                except DatabaseError as exc:  # the generation was swapped out under the read
                    logger.info("vectors of %s no longer stored: %s", gen.model, exc)
                    return {}
                for cid, blob in rows:
                    out[int(cid)] = np.frombuffer(blob, dtype=np.float32)
        return out

    def continued(self, ids: Sequence[int]) -> set[int]:
        """The ids among `ids` that are later parts of a split definition (they carry context)."""
        if not ids:
            return set()
        with self._rlock:
            rows = self._reader.execute(
                f"SELECT id FROM chunks WHERE context != '' AND id IN ({','.join('?' * len(ids))})",
                list(ids),
            ).fetchall()
        return {int(r[0]) for r in rows}

    def _paths_of(self, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = self._reader.execute(
            f"""SELECT c.id, f.path FROM chunks c JOIN files f ON f.id = c.file_id
                WHERE c.id IN ({",".join("?" * len(ids))})""",
            list(ids),
        ).fetchall()
        return {int(r[0]): r[1] for r in rows}

    def hits(self, ids: Sequence[int]) -> dict[int, SearchHit]:
        """Chunk records for ids (missing ids are absent from the result)."""
        if not ids:
            return {}
        with self._rlock:
            rows = self._reader.execute(
                f"""SELECT c.id, f.path, c.start_line, c.end_line, c.start_col, c.end_col,
                           c.language, c.symbol, c.kind, c.scope, c.text
                    FROM chunks c JOIN files f ON f.id = c.file_id
                    WHERE c.id IN ({",".join("?" * len(ids))})""",
                list(ids),
            ).fetchall()
        return {
            int(r[0]): SearchHit(
                path=r[1],
                start_line=r[2],
                end_line=r[3],
                start_col=r[4],
                end_col=r[5],
                score=0.0,
                language=r[6],
                symbol=r[7],
                kind=r[8],
                scope=r[9],
                snippet=r[10],
                project_id=self.project_id,
                chunk_id=int(r[0]),
            )
            for r in rows
        }

    def chunks_of(self, path: str) -> list[SearchHit]:
        """A file's chunks in order (for symbols, tests and hints)."""
        with self._rlock:
            rows = self._reader.execute(
                "SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.path = ? "
                "ORDER BY c.ordinal",
                (path,),
            ).fetchall()
        ids = [int(r[0]) for r in rows]
        found = self.hits(ids)
        return [found[i] for i in ids if i in found]

    # -- decisions (the gatekeeper's cache and audit log) ----------------------------------

    def get_decision(self, path: str, content_hash: str) -> Decision | None:
        """A cached gatekeeper decision for this exact content, if any."""
        with self._lock:
            r = self._conn.execute(
                "SELECT allowed, reason, redactions FROM decisions WHERE path=? AND content_hash=?",
                (path, content_hash),
            ).fetchone()
        return Decision(path, bool(r[0]), r[1], "cache", int(r[2])) if r else None

    def put_decision(self, decision: Decision, content_hash: str) -> None:
        """Cache a decision for (path, content); auditing is `record`'s job."""
        with self._tx() as c:
            c.execute(
                """INSERT OR REPLACE INTO decisions (path, content_hash, allowed, reason, source,
                   redactions, at) VALUES (?,?,?,?,?,?,?)""",
                (
                    decision.path,
                    content_hash,
                    int(decision.allowed),
                    decision.reason,
                    decision.source,
                    decision.redactions,
                    time.time(),
                ),
            )

    def record(self, decision: Decision) -> None:
        """Append a decision (including cache hits) to the audit log."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO decision_log (path, allowed, reason, source, at) VALUES (?,?,?,?,?)",
                (
                    decision.path,
                    int(decision.allowed),
                    decision.reason,
                    decision.source,
                    time.time(),
                ),
            )

    def get(self, path: str, content_hash: str) -> Decision | None:
        """DecisionCache protocol: alias of get_decision."""
        return self.get_decision(path, content_hash)

    def put(self, decision: Decision, content_hash: str) -> None:
        """DecisionCache protocol: alias of put_decision."""
        self.put_decision(decision, content_hash)

    def decisions(self, path: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Audit rows, newest first."""
        sql = "SELECT path, allowed, reason, source, at FROM decision_log"
        args: list[Any] = []
        if path:
            sql += " WHERE path = ?"
            args.append(path)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [
            {
                "path": r[0],
                "decision": "allow" if r[1] else "deny",
                "reason": r[2],
                "source": r[3],
                "at": r[4],
            }
            for r in rows
        ]

    # -- stats -----------------------------------------------------------------------------

    def log_search(self, query_len: int, results: int, took_ms: float, mode: str) -> None:
        """Record search activity (never the query text).

        Buffered: a search must not wait for the writer (a crawl's vector batch); the rows are
        written with the next write or when stats are read.
        """
        with self._search_buf_lock:
            self._search_buf.append((time.time(), query_len, results, took_ms, mode))

    def _flush_searches(self, c: Any = None) -> None:
        with self._search_buf_lock:
            rows, self._search_buf = self._search_buf, []
        if not rows:
            return
        sql = "INSERT INTO search_log (at, query_len, results, took_ms, mode) VALUES (?,?,?,?,?)"
        if c is not None:
            c.executemany(sql, rows)
        else:
            with self._tx() as conn:
                conn.executemany(sql, rows)

    def stats(self) -> dict[str, Any]:
        """Files, chunks, languages, denied, pending, last indexed, searches."""
        self._flush_searches()
        with self._lock:
            c = self._conn
            files = c.execute("SELECT COUNT(*) FROM files WHERE allowed = 1").fetchone()[0]
            denied = c.execute("SELECT COUNT(*) FROM files WHERE allowed = 0").fetchone()[0]
            chunks = c.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            langs = dict(
                c.execute(
                    "SELECT language, COUNT(*) FROM files WHERE allowed = 1 GROUP BY language"
                ).fetchall()
            )
            last = c.execute("SELECT MAX(indexed_at) FROM files").fetchone()[0]
            searches = c.execute("SELECT COUNT(*) FROM search_log").fetchone()[0]
        return {
            "files": files,
            "chunks": chunks,
            "languages": langs,
            "denied": denied,
            "pending": self.pending_count(),
            "lastIndexed": last,
            "searches": searches,
        }

    def integrity_ok(self) -> bool:
        """PRAGMA integrity_check says ok."""
        with self._lock:
            return bool(self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Run one read statement (tests and diagnostics)."""
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    @property
    def connection(self) -> Any:
        """The raw connection, for services that keep their own tables in this database."""
        return self._conn

    @property
    def lock(self) -> threading.RLock:
        """The lock that guards the connection."""
        return self._lock


class _Transaction:
    """`with store._tx() as c:` — BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error, under the lock."""

    def __init__(self, conn: Any, lock: threading.RLock) -> None:
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> Any:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._conn.execute("COMMIT")
            else:
                self._conn.execute("ROLLBACK")
        except DatabaseError as err:
            raise StoreError(f"index write failed: {err}") from err
        finally:
            self._lock.release()


def _glob_any(path: str, globs: Sequence[str]) -> bool:
    return _path_filter(tuple(globs))(path)


@functools.lru_cache(maxsize=64)
def _path_filter(globs: tuple[str, ...]) -> Callable[[str], bool]:
    # fnmatch.fnmatch semantics (the path or its file name), as one compiled alternation: a new
    # filter judges every candidate path in Python, 0.5 µs each instead of 3.3 µs.
    pattern = re.compile("|".join(f"(?:{fnmatch.translate(os.path.normcase(g))})" for g in globs))

    def accepts(path: str) -> bool:
        path = os.path.normcase(path)
        return bool(pattern.match(path) or pattern.match(path.rsplit("/", 1)[-1]))

    return accepts


def path_filter_for(globs: Sequence[str] | None) -> Callable[[str], bool] | None:
    """A predicate for path globs (matched against the path and its file name), or None.

    The same globs give the same predicate object, so the vector index can reuse its per-path
    verdicts across queries (a rare glob at 1M rows: ~50 ms first, ~4 ms after).
    """
    if not globs:
        return None
    return _path_filter(tuple(globs))
