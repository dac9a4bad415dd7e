"""The user's own database (data dir/leo.sqlite3): struggles, fixes, profile, projects, outbox.

Per-folder indexes live in their own databases; what belongs to the person rather than to a
folder lives here, so that a struggle row and its outbox event commit in one transaction.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from leo_lsp.store.database import open_checked


class UserDatabase:
    """Owns one connection (and the lock that serialises it) to the user database."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        self.conn: Any
        self.conn, _vec, self.recovery_note = open_checked(self.path, load_vec=False)
        # Implicit BEGIN before writes, so `with conn:` (used by the repositories) is one
        # transaction: a struggle row and its outbox event commit together.
        self.conn.isolation_level = "DEFERRED"

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()
