"""Durable outbox: events to sync to Firestore, written in the same transaction as the local change.

The outbox lives in the workspace's sqlite database (any DB-API connection with the sqlite3
interface: stdlib `sqlite3` or `sqlean`). `enqueue` never commits: call it inside the caller's own
transaction so the local change and its outbox row commit together, or not at all. The `Outbox`
methods that the sync worker uses (`claim_batch`, `mark_done`, `mark_failed`) commit themselves, so
give the worker its own connection to the same database file (WAL mode lets both work at once).

A row is *pending* until it is marked done (then deleted) or dead (a permanent error, kept for
inspection). A claimed row carries a lease (`claimed_until`); a worker that dies mid-batch leaves
its rows claimable again once the lease expires, and `release_claims()` frees them at start-up.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from leo_lsp.errors import InvalidArguments

logger = logging.getLogger(__name__)

OPS = ("set", "merge", "delete")
"""`set` replaces the document, `merge` updates the given fields, `delete` removes it."""

# Keys that would carry code or file content. Code never leaves the machine: a payload with one of
# these keys (at any depth, any case) is refused before it reaches the outbox.
FORBIDDEN_KEYS = frozenset(
    {
        "code",
        "text",
        "snippet",
        "content",
        "contents",
        "body",
        "diff",
        "patch",
        "idtoken",
        "id_token",
        "token",
        "refreshtoken",
        "refresh_token",
        "password",
    }
)
# A long string is more likely a pasted file than metadata.
MAX_STRING_CHARS = 2000
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uid             TEXT NOT NULL,
    collection      TEXT NOT NULL,
    doc_id          TEXT NOT NULL,
    op              TEXT NOT NULL CHECK (op IN ('set', 'merge', 'delete')),
    payload         TEXT NOT NULL,
    created_at      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    claimed_until   REAL,
    dead            INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (dead, next_attempt_at, id);
"""


class Connection(Protocol):
    """The part of the sqlite3 DB-API connection the outbox uses."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, parameters: Any, /) -> Any: ...
    def executescript(self, sql: str, /) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


@dataclass(frozen=True)
class OutboxEvent:
    """One pending write: `op` on `collection/doc_id` with `payload`, on behalf of `uid`."""

    id: int
    uid: str
    collection: str
    doc_id: str
    op: str
    payload: dict[str, Any]
    created_at: float
    attempts: int

    @property
    def path(self) -> str:
        """The Firestore document path."""
        return f"{self.collection}/{self.doc_id}"


def ensure_schema(conn: Connection) -> None:
    """Create the outbox table and its index if they do not exist (idempotent)."""
    conn.executescript(SCHEMA)


def new_event_id() -> str:
    """A document id for an append-only event (search activity): generated once, at enqueue."""
    return uuid.uuid4().hex


def assert_metadata_only(data: Mapping[str, Any], *, _path: str = "") -> None:
    """Refuse a payload that could carry code, file content or a token (raises InvalidArguments)."""
    for key, value in data.items():
        where = f"{_path}.{key}" if _path else str(key)
        if str(key).lower() in FORBIDDEN_KEYS:
            raise InvalidArguments(
                f"refusing to sync field {where!r}: code and tokens never leave the machine",
                field=where,
            )
        _check_value(value, where)


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        assert_metadata_only(value, _path=where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
    elif isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise InvalidArguments(
                f"refusing to sync field {where!r}: {len(value)} characters is not metadata",
                field=where,
            )
        if _JWT_RE.search(value):
            raise InvalidArguments(
                f"refusing to sync field {where!r}: it looks like a token", field=where
            )
    elif value is not None and not isinstance(value, bool | int | float):
        raise InvalidArguments(
            f"field {where!r} has type {type(value).__name__}; only JSON values sync", field=where
        )


def search_activity_payload(
    *,
    uid: str,
    query: str,
    result_count: int,
    latency_ms: float,
    project_id: str | None = None,
    mode: str = "hybrid",
    sync_queries: bool = False,
    at: float | None = None,
) -> dict[str, Any]:
    """The `search_activity` document for one search: the query text only if `sync_queries`."""
    payload: dict[str, Any] = {
        "userId": uid,
        "projectId": project_id,
        "queryLength": len(query),
        "resultCount": int(result_count),
        "latencyMs": round(float(latency_ms), 1),
        "mode": mode,
        "timestamp": time.time() if at is None else at,
    }
    if sync_queries:
        payload["query"] = query[:MAX_STRING_CHARS]
    return payload


def enqueue(
    conn: Connection,
    collection: str,
    doc_id: str,
    data: Mapping[str, Any] | None,
    op: str = "set",
    *,
    uid: str,
    now: float | None = None,
) -> int:
    """Add one event to the outbox without committing; call it inside the caller's transaction."""
    if op not in OPS:
        raise InvalidArguments(f"op must be one of {', '.join(OPS)}, not {op!r}", field="op")
    if not collection or "/" in collection or not doc_id or "/" in doc_id:
        raise InvalidArguments(
            f"bad document path {collection!r}/{doc_id!r}: ids must be non-empty, without '/'"
        )
    data = {} if data is None else data
    assert_metadata_only(data)
    at = time.time() if now is None else now
    cur = conn.execute(
        "INSERT INTO outbox (uid, collection, doc_id, op, payload, created_at, next_attempt_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (uid, collection, doc_id, op, json.dumps(dict(data), sort_keys=True), at, at),
    )
    row_id = cur.lastrowid
    assert isinstance(row_id, int)
    return row_id


class Outbox:
    """The worker's view of the outbox: claim due rows, then mark them done, failed or dead."""

    def __init__(
        self,
        conn: Connection,
        *,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 120.0,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._lease = lease_seconds
        ensure_schema(conn)
        conn.commit()

    @property
    def connection(self) -> Connection:
        """The connection this outbox commits on."""
        return self._conn

    def claim_batch(
        self, n: int, now: float | None = None, *, uids: Iterable[str] | None = None
    ) -> list[OutboxEvent]:
        """Lease up to `n` due rows, oldest first; with `uids`, only rows of those users."""
        now = self._clock() if now is None else now
        params: list[Any] = [now + self._lease, now, now]
        uid_filter = ""
        if uids is not None:
            uid_list = list(uids)
            if not uid_list:
                return []
            uid_filter = f" AND uid IN ({','.join('?' * len(uid_list))})"
            params.extend(uid_list)
        params.append(n)
        # One UPDATE … RETURNING is atomic, so two workers can never lease the same row.
        sql = (
            "UPDATE outbox SET claimed_until = ? WHERE id IN ("
            " SELECT id FROM outbox WHERE dead = 0 AND next_attempt_at <= ?"
            " AND (claimed_until IS NULL OR claimed_until <= ?)"
            + uid_filter
            + " ORDER BY id LIMIT ?)"
            " RETURNING id, uid, collection, doc_id, op, payload, created_at, attempts"
        )
        try:
            rows = self._conn.execute(sql, params).fetchall()
            self._conn.commit()
        except BaseException:
            self._conn.rollback()
            raise
        events = [
            OutboxEvent(
                id=r[0],
                uid=r[1],
                collection=r[2],
                doc_id=r[3],
                op=r[4],
                payload=json.loads(r[5]),
                created_at=r[6],
                attempts=r[7],
            )
            for r in rows
        ]
        events.sort(key=lambda e: e.id)  # RETURNING order is unspecified; writes must keep order
        return events

    def mark_done(self, ids: Sequence[int]) -> None:
        """Delete delivered rows."""
        with _tx(self._conn):
            self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def mark_failed(
        self,
        ids: Sequence[int],
        error: str,
        backoff: Callable[[int], float] | float,
        now: float | None = None,
    ) -> None:
        """Release rows after a transient failure; retry after `backoff(attempts)` seconds."""
        now = self._clock() if now is None else now
        with _tx(self._conn):
            rows = (
                self._conn.execute(
                    f"SELECT id, attempts FROM outbox WHERE id IN ({','.join('?' * len(ids))})",
                    list(ids),
                ).fetchall()
                if ids
                else []
            )
            updates = []
            for row_id, attempts in rows:
                tries = int(attempts) + 1
                delay = backoff(tries) if callable(backoff) else float(backoff)
                updates.append((tries, now + delay, error[:500], row_id))
            self._conn.executemany(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?,"
                " claimed_until = NULL WHERE id = ?",
                updates,
            )

    def mark_dead(self, ids: Sequence[int], error: str) -> None:
        """Park rows that can never succeed (a permanent error); they stop counting as pending."""
        with _tx(self._conn):
            self._conn.executemany(
                "UPDATE outbox SET dead = 1, attempts = attempts + 1, last_error = ?,"
                " claimed_until = NULL WHERE id = ?",
                [(error[:500], i) for i in ids],
            )

    def release(self, ids: Sequence[int]) -> None:
        """Give leased rows back untouched (the worker is stopping before it could send them)."""
        with _tx(self._conn):
            self._conn.executemany(
                "UPDATE outbox SET claimed_until = NULL WHERE id = ?", [(i,) for i in ids]
            )

    def release_claims(self) -> int:
        """Free every lease (call at start-up: no other worker runs on this database)."""
        with _tx(self._conn):
            cur = self._conn.execute(
                "UPDATE outbox SET claimed_until = NULL WHERE claimed_until IS NOT NULL"
            )
        return int(cur.rowcount)

    def pending_count(self, uid: str | None = None) -> int:
        """Rows not yet delivered (excluding dead ones), optionally of one user."""
        if uid is None:
            row = self._conn.execute("SELECT count(*) FROM outbox WHERE dead = 0").fetchone()
        else:
            row = self._conn.execute(
                "SELECT count(*) FROM outbox WHERE dead = 0 AND uid = ?", (uid,)
            ).fetchone()
        return int(row[0])

    def dead_count(self) -> int:
        """Rows parked after a permanent error."""
        return int(self._conn.execute("SELECT count(*) FROM outbox WHERE dead = 1").fetchone()[0])

    def next_due_at(self) -> float | None:
        """When the earliest pending row becomes due (None when the outbox is empty)."""
        row = self._conn.execute(
            "SELECT min(max(next_attempt_at, coalesce(claimed_until, 0))) FROM outbox"
            " WHERE dead = 0"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def last_error(self) -> str | None:
        """The most recent failure message recorded on a pending or dead row."""
        row = self._conn.execute(
            "SELECT last_error FROM outbox WHERE last_error IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else str(row[0])


class _tx:
    """Commit on success, roll back on error (works for sqlite3 and sqlean connections)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __enter__(self) -> Connection:
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.commit()
        else:
            self._conn.rollback()


def struggle_doc_id(uid: str, project_id: str, signature: str) -> str:
    """The `struggles` document id of one signature: re-sending the aggregate overwrites it."""
    digest = hashlib.sha256(f"{uid}\0{project_id}\0{signature}".encode()).hexdigest()[:32]
    return f"{uid}_{digest}"
