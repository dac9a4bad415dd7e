"""Struggle history and remembered fixes in sqlite (any DB-API connection shaped like sqlite3's).

Tables (created with `ensure_schema`, prefixed `struggle_` so they live beside the store's):
- `struggle_files`: one row per (project, signature, uri) with its category, normalised message,
  occurrence counts, first/last seen and whether it is still open. An episode (one detector
  struggle, identified by its `first_seen`) updates its row in place; a new episode adds to the
  row's past occurrences, so repeated `updated` events never double-count.
- `struggle_fixes`: the before/after of fixes (local only: this is code).

Every write runs in one `with conn:` transaction. Subscribers in `on_event` are called inside that
transaction with the connection and the event's metadata (never code or raw message text), so the
cloud outbox can enqueue in the same transaction as the local write.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from leo_lsp.errors import LeoError, StoreError
from leo_lsp.struggle.detector import RESOLVED, StruggleEvent
from leo_lsp.struggle.fixes import Fix

logger = logging.getLogger(__name__)


class Connection(Protocol):
    """The part of `sqlite3.Connection` used here (sqlean's connection has it too)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Any: ...


EventHook = Callable[[Connection, dict[str, Any]], None]
"""Called inside the write transaction with the connection and the event's metadata."""

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS struggle_files (
        project TEXT NOT NULL DEFAULT '',
        signature TEXT NOT NULL,
        uri TEXT NOT NULL,
        category TEXT NOT NULL,
        message TEXT NOT NULL,
        language TEXT NOT NULL DEFAULT '',
        origin TEXT NOT NULL DEFAULT '',
        past_occurrences INTEGER NOT NULL DEFAULT 0,
        episode_occurrences INTEGER NOT NULL DEFAULT 0,
        episode_first_seen REAL NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        open INTEGER NOT NULL DEFAULT 0,
        resolved_at REAL,
        PRIMARY KEY (project, signature, uri)
    )""",
    "CREATE INDEX IF NOT EXISTS struggle_files_last_seen ON struggle_files (project, last_seen)",
    """CREATE TABLE IF NOT EXISTS struggle_fixes (
        id INTEGER PRIMARY KEY,
        project TEXT NOT NULL DEFAULT '',
        signature TEXT NOT NULL,
        category TEXT NOT NULL,
        message TEXT NOT NULL,
        uri TEXT NOT NULL,
        start_line INTEGER NOT NULL,
        end_line INTEGER NOT NULL,
        before TEXT NOT NULL,
        after TEXT NOT NULL,
        diff TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS struggle_fixes_signature ON struggle_fixes (signature, created_at)",
]


def ensure_schema(conn: Connection) -> None:
    """Create the struggle tables if they do not exist (idempotent)."""
    with conn:
        for statement in _SCHEMA:
            conn.execute(statement)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StruggleRepository:
    """Saves struggle events and fixes; lists the history `leo.struggles` returns."""

    def __init__(self, conn: Connection, fixes_per_signature: int = 5) -> None:
        self.conn = conn
        self.fixes_per_signature = fixes_per_signature
        self.on_event: list[EventHook] = []

    def save_event(self, event: StruggleEvent, project: str = "") -> None:
        """Record an event (opened/updated/resolved) of one struggle in one file."""
        metadata = {**event.metadata(), "projectId": project}
        try:
            with self.conn:
                row = self.conn.execute(
                    "SELECT episode_first_seen, episode_occurrences FROM struggle_files "
                    "WHERE project = ? AND signature = ? AND uri = ?",
                    (project, event.signature, event.uri),
                ).fetchone()
                is_open = 0 if event.kind == RESOLVED else int(event.open)
                resolved_at = event.last_seen if event.kind == RESOLVED else None
                if row is None:
                    self.conn.execute(
                        "INSERT INTO struggle_files (project, signature, uri, category, message, "
                        "language, origin, past_occurrences, episode_occurrences, "
                        "episode_first_seen, first_seen, last_seen, open, resolved_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
                        (
                            project,
                            event.signature,
                            event.uri,
                            event.category,
                            event.message,
                            event.language,
                            event.origin,
                            event.occurrences,
                            event.first_seen,
                            event.first_seen,
                            event.last_seen,
                            is_open,
                            resolved_at,
                        ),
                    )
                else:
                    same_episode = abs(float(row[0]) - event.first_seen) < 1e-6
                    self.conn.execute(
                        "UPDATE struggle_files SET category = ?, message = ?, "
                        "past_occurrences = past_occurrences + ?, episode_occurrences = ?, "
                        "episode_first_seen = ?, first_seen = MIN(first_seen, ?), "
                        "last_seen = MAX(last_seen, ?), open = ?, resolved_at = ? "
                        "WHERE project = ? AND signature = ? AND uri = ?",
                        (
                            event.category,
                            event.message,
                            0 if same_episode else int(row[1]),
                            max(event.occurrences, int(row[1]))
                            if same_episode
                            else event.occurrences,
                            event.first_seen,
                            event.first_seen,
                            event.last_seen,
                            is_open,
                            resolved_at,
                            project,
                            event.signature,
                            event.uri,
                        ),
                    )
                for hook in self.on_event:
                    hook(self.conn, metadata)
        except LeoError:
            raise
        except Exception as exc:  # sqlite3/sqlean errors have no common base we can name here
            raise StoreError(f"could not save the struggle: {exc}") from exc

    def save_fix(self, fix: Fix, project: str = "") -> None:
        """Store a fix, keeping the `fixes_per_signature` most recent of its signature."""
        try:
            with self.conn:
                self.conn.execute(
                    "INSERT INTO struggle_fixes (project, signature, category, message, uri, "
                    "start_line, end_line, before, after, diff, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        project,
                        fix.signature,
                        fix.category,
                        fix.message,
                        fix.uri,
                        fix.start_line,
                        fix.end_line,
                        fix.before,
                        fix.after,
                        fix.diff,
                        fix.created_at,
                    ),
                )
                self.conn.execute(
                    "DELETE FROM struggle_fixes WHERE signature = ? AND id NOT IN ("
                    "SELECT id FROM struggle_fixes WHERE signature = ? "
                    "ORDER BY created_at DESC, id DESC LIMIT ?)",
                    (fix.signature, fix.signature, self.fixes_per_signature),
                )
        except Exception as exc:
            raise StoreError(f"could not save the fix: {exc}") from exc

    def fixes_for(self, signature: str, limit: int = 5) -> builtins.list[Fix]:
        """Fixes for a signature, in any project and file, most recent first."""
        rows = self.conn.execute(
            "SELECT signature, category, message, uri, start_line, end_line, before, after, "
            "diff, created_at FROM struggle_fixes WHERE signature = ? "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (signature, limit),
        ).fetchall()
        return [
            Fix(
                signature=r[0],
                category=r[1],
                message=r[2],
                uri=r[3],
                start_line=int(r[4]),
                end_line=int(r[5]),
                before=r[6],
                after=r[7],
                diff=r[8],
                created_at=float(r[9]),
            )
            for r in rows
        ]

    def all_fixes(self, limit: int = 1000) -> builtins.list[Fix]:
        """The most recent fixes of every signature (to seed a `FixMemory` at start-up)."""
        signatures = [
            r[0]
            for r in self.conn.execute(
                "SELECT signature FROM struggle_fixes GROUP BY signature "
                "ORDER BY MAX(created_at) DESC LIMIT ?",
                (limit,),
            ).fetchall()
        ]
        return [fix for sig in signatures for fix in self.fixes_for(sig)]

    def list(self, limit: int = 50, project: str | None = None) -> builtins.list[dict[str, Any]]:
        """Struggle history per signature, most recent first, as `leo.struggles` returns it.

        Each: {category, signature, message, occurrences, firstSeen, lastSeen (ISO 8601 UTC),
        files: [uri…], open (a hint is up in some file), resolved (no longer open)}.
        """
        where, params = ("WHERE project = ?", [project]) if project is not None else ("", [])
        rows = self.conn.execute(
            "SELECT signature, MAX(category), MAX(message), "
            "SUM(past_occurrences + episode_occurrences), MIN(first_seen), MAX(last_seen), "
            f"MAX(open) FROM struggle_files {where} GROUP BY signature "
            "ORDER BY MAX(last_seen) DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        result = []
        for sig, category, message, occurrences, first, last, any_open in rows:
            files = [
                r[0]
                for r in self.conn.execute(
                    f"SELECT uri FROM struggle_files {where} {'AND' if where else 'WHERE'} "
                    "signature = ? ORDER BY last_seen DESC",
                    (*params, sig),
                ).fetchall()
            ]
            result.append(
                {
                    "category": category,
                    "signature": sig,
                    "message": message,
                    "occurrences": int(occurrences),
                    "firstSeen": _iso(float(first)),
                    "lastSeen": _iso(float(last)),
                    "files": files,
                    "open": bool(any_open),
                    "resolved": not any_open,
                }
            )
        return result
