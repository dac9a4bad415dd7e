"""StruggleService: what it stores of forwarded diagnostics never includes a secret."""

from __future__ import annotations

import sqlite3
import threading

from leo_lsp.records import SearchHit
from leo_lsp.settings import StruggleSettings
from leo_lsp.struggle.detector import ObservedDiagnostic
from leo_lsp.struggle.service import StruggleService

TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


async def no_hits(query: str, limit: int) -> list[SearchHit]:
    return []


async def test_forwarded_messages_are_redacted_before_they_are_stored() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    svc = StruggleService(
        StruggleSettings(threshold=2), conn, threading.RLock(), no_hits, lambda uri: "p"
    )
    uri = "file:///w/client.py"
    diag = ObservedDiagnostic(f"HTTPError: 401 for token {TOKEN}", 3, 3)
    changed: set[str] = set()
    for attempt in range(3):
        changed |= await svc.observe(uri, [diag], f"text version {attempt}")
    assert uri in changed and svc.hints_for(uri)
    dump = "\n".join(conn.iterdump())
    assert TOKEN not in dump
    assert all(TOKEN not in h.message for h in svc.hints_for(uri))
