"""Opening a sqlite connection that can load sqlite-vec, with WAL and a corruption check.

The stdlib `sqlite3` of many Pythons (this one, most macOS builds) lacks `enable_load_extension`;
`sqlean` is a drop-in sqlite3 module that has it. If neither can load the extension the store keeps
its vectors in a plain BLOB table and searches them with numpy.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)


def _driver() -> ModuleType:
    try:
        import sqlean

        return sqlean  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover - depends on the platform's wheels
        return sqlite3


DRIVER = _driver()
DatabaseError: type[Exception] = DRIVER.DatabaseError
IntegrityError: type[Exception] = DRIVER.IntegrityError


def _load_vec(conn: Any) -> bool:
    try:
        import sqlite_vec

        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        return True
    except Exception as exc:  # AttributeError (no enable_load_extension), OperationalError, …
        logger.warning("sqlite-vec could not load (%s); searching with numpy instead", exc)
        return False


def connect(path: Path | str, *, load_vec: bool = True) -> tuple[Any, bool]:
    """Open `path` (or ':memory:') in WAL mode; return the connection and whether vec0 is loaded."""
    conn = DRIVER.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    vec = _load_vec(conn) if load_vec and os.environ.get("LEO_DISABLE_SQLITE_VEC") != "1" else False
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode is durable across application crashes (kill -9); only an OS crash or
    # power loss can drop the last transactions, and those are rebuilt by the next crawl.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn, vec


def open_checked(path: Path, *, load_vec: bool = True) -> tuple[Any, bool, str | None]:
    """Open a database file; a corrupt one is moved aside and a fresh one created.

    Returns (connection, vec loaded, note for the user or None).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    note: str | None = None
    try:
        conn, vec = connect(path, load_vec=load_vec)
        row = conn.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            conn.close()
            raise DRIVER.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")
        return conn, vec, None
    except DRIVER.DatabaseError as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                src.rename(Path(str(aside) + suffix))
        note = (
            f"The index database {path} was damaged ({exc}); it was moved to {aside} and the "
            "index is being rebuilt."
        )
        logger.error("%s", note)
    conn, vec = connect(path, load_vec=load_vec)
    return conn, vec, note


def open_reader(path: Path, *, load_vec: bool) -> tuple[Any, bool]:
    """A second connection for reads (searches) to an existing database."""
    conn, vec = connect(path, load_vec=load_vec)
    conn.execute("PRAGMA query_only=ON")
    return conn, vec
