"""StruggleService: what it stores of forwarded diagnostics never includes a secret."""

from __future__ import annotations

import asyncio
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


def test_hint_json_has_the_diagnostic_ranges_and_uris() -> None:
    from leo_lsp.struggle.hints import Hint, Related
    from leo_lsp.struggle.service import hint_json

    hint = Hint(
        uri="file:///w/a.py",
        start_line=4,
        end_line=4,
        message="m",
        code="struggle/type",
        signature="python:1",
        category="type",
        related=[
            Related("file:///w/b.py", 2, 2, "past fix of this error", "fix"),
            Related("/w/c.py", 7, 9, "similar code: f", "similar"),
            Related("src/d.py", 1, 1, "similar code: g", "similar"),
        ],
    )
    out = hint_json(hint)
    assert out["range"] == {
        "start": {"line": 4, "character": 0},
        "end": {"line": 5, "character": 0},
    }
    assert [r["uri"] for r in out["related"]] == ["file:///w/b.py", "file:///w/c.py", None]
    assert out["related"][1]["path"] == "/w/c.py" and out["related"][1]["endLine"] == 9


class GatedSearch:
    """A search whose first call waits until the test opens the gate (a slow search)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.called = asyncio.Event()
        self.calls = 0

    async def __call__(self, query: str, limit: int) -> list[SearchHit]:
        self.calls += 1
        if self.calls == 1:
            self.called.set()
            await self.gate.wait()
        return []

    def reset(self) -> None:
        self.gate.clear()
        self.called.clear()
        self.calls = 0


async def test_a_slow_older_hint_never_overwrites_a_newer_one_or_outlives_the_fix() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    search = GatedSearch()
    svc = StruggleService(StruggleSettings(threshold=3), conn, threading.RLock(), search, str)
    uri = "file:///w/report.py"
    diag = ObservedDiagnostic("TypeError: unsupported operand type(s) for +: 'int' and 'str'", 4, 4)
    for attempt in range(2):
        await svc.observe(uri, [diag], f"v{attempt}")
    slow = asyncio.create_task(svc.observe(uri, [diag], "v2"))  # opens; its search hangs
    await asyncio.wait_for(search.called.wait(), 30)
    assert await svc.observe(uri, [diag], "v3") == {uri}
    (hint,) = svc.hints_for(uri)
    assert "seen 4 times" in hint.message
    search.gate.set()
    assert await slow == set()
    (hint,) = svc.hints_for(uri)
    assert "seen 4 times" in hint.message  # not the stale "3 times"
    assert svc.list(10, None)[0]["occurrences"] == 4

    # A hint still being built when the error is fixed does not come back afterwards.
    search.reset()
    slow = asyncio.create_task(svc.observe(uri, [diag], "v4"))
    await asyncio.wait_for(search.called.wait(), 30)
    await svc.observe(uri, [], "fixed 1")
    assert await svc.observe(uri, [], "fixed 2") == {uri}
    search.gate.set()
    await slow
    assert svc.hints_for(uri) == []
    assert svc.list(10, None)[0]["open"] is False
    await svc.close()
