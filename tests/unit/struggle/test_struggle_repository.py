"""Struggle history and fixes round-trip through a real sqlite database."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

import pytest

from leo_lsp.errors import StoreError
from leo_lsp.struggle.detector import ObservedDiagnostic, StruggleDetector, StruggleEvent
from leo_lsp.struggle.fixes import Fix, make_fix
from leo_lsp.struggle.repository import StruggleRepository, ensure_schema

T0 = 1_700_000_000.0


def event(**changes: Any) -> StruggleEvent:
    base = StruggleEvent(
        kind="opened",
        category="null",
        signature="js:abc123abc123",
        message="Cannot read property '_' of undefined",
        uri="file:///w/a.ts",
        start_line=3,
        end_line=3,
        occurrences=3,
        score=4.5,
        first_seen=T0,
        last_seen=T0 + 60,
        open=True,
        explanation="x",
        language="typescript",
        origin="diagnostics",
        raw_message="Cannot read property 'secretThing' of undefined",
        context="const k = secretThing.map(f)",
    )
    return replace(base, **changes)


@pytest.fixture
def repo() -> StruggleRepository:
    conn = sqlite3.connect(":memory:")
    ensure_schema(conn)
    ensure_schema(conn)  # idempotent
    return StruggleRepository(conn)


def test_events_round_trip_without_double_counting(repo: StruggleRepository) -> None:
    repo.save_event(event())
    repo.save_event(event(kind="updated", occurrences=4, last_seen=T0 + 90))
    repo.save_event(
        event(uri="file:///w/b.ts", occurrences=3, first_seen=T0 + 100, last_seen=T0 + 200)
    )
    repo.save_event(event(kind="resolved", occurrences=4, open=False, last_seen=T0 + 120))
    # a second episode in a.ts adds to the first
    repo.save_event(event(first_seen=T0 + 500, last_seen=T0 + 560, occurrences=3))
    repo.save_event(
        event(
            signature="py:000000000000",
            category="name",
            message="name '_' is not defined",
            uri="file:///w/c.py",
            first_seen=T0 - 10,
            last_seen=T0 - 5,
            occurrences=1,
            open=False,
        ),
        project="other",
    )

    rows = repo.list(limit=10)
    assert [r["signature"] for r in rows] == ["js:abc123abc123", "py:000000000000"]
    top = rows[0]
    assert top["category"] == "null"
    assert top["occurrences"] == 4 + 3 + 3
    assert top["firstSeen"] == "2023-11-14T22:13:20Z"
    assert top["lastSeen"] == "2023-11-14T22:22:40Z"
    assert set(top["files"]) == {"file:///w/a.ts", "file:///w/b.ts"}
    assert top["resolved"] is False
    assert rows[1]["resolved"] is True
    assert [r["signature"] for r in repo.list(project="other")] == ["py:000000000000"]
    assert repo.list(limit=1) == rows[:1]


def test_hooks_get_metadata_only_inside_the_transaction(repo: StruggleRepository) -> None:
    seen: list[dict[str, Any]] = []

    def outbox(conn: Any, metadata: dict[str, Any]) -> None:
        assert conn.in_transaction  # same transaction as the local write
        seen.append(metadata)

    repo.on_event.append(outbox)
    repo.save_event(event(), project="p1")
    assert len(seen) == 1
    flat = repr(seen[0])
    assert "secretThing" not in flat and "map(f)" not in flat
    assert seen[0]["projectId"] == "p1" and seen[0]["signature"] == "js:abc123abc123"


def test_failing_hook_rolls_back_the_write(repo: StruggleRepository) -> None:
    def broken(conn: Any, metadata: dict[str, Any]) -> None:
        raise RuntimeError("outbox full")

    repo.on_event.append(broken)
    with pytest.raises(StoreError):
        repo.save_event(event())
    assert repo.list() == []


def test_fixes_round_trip_and_are_bounded(repo: StruggleRepository) -> None:
    fixes = []
    for n in range(7):
        fix = make_fix(
            signature="js:abc123abc123",
            category="null",
            message="m",
            uri="file:///w/a.ts",
            before_text=f"a\nconst x = items{n}.map(f)\nb\n",
            after_text=f"a\nconst x = (items{n} ?? []).map(f)\nb\n",
            near=(1, 1),
            created_at=T0 + n,
        )
        assert fix is not None
        fixes.append(fix)
        repo.save_fix(fix)
    loaded = repo.fixes_for("js:abc123abc123", limit=10)
    assert loaded == list(reversed(fixes))[:5]
    assert repo.fixes_for("nope") == []
    assert repo.all_fixes() == loaded


def test_detector_events_and_fixes_persist(repo: StruggleRepository) -> None:
    clock = [0.0]
    detector = StruggleDetector(3, 600, lambda: clock[0])
    diag = ObservedDiagnostic("Object is possibly 'undefined'.", 1, 1, 1, 2532, "ts")
    saved: list[Fix] = []
    for n in range(3):
        clock[0] += 10
        for e in detector.observe("file:///w/a.ts", [diag], f"let a\na.b.c({n})\n"):
            repo.save_event(e)
    for n in range(2):
        clock[0] += 10
        for e in detector.observe("file:///w/a.ts", [], f"let a\na?.b.c({n})\n//{n}\n"):
            repo.save_event(e)
            if e.fix:
                repo.save_fix(e.fix)
                saved.append(e.fix)
    [row] = repo.list()
    assert row["category"] == "null" and row["occurrences"] == 3 and row["resolved"] is True
    assert repo.fixes_for(row["signature"]) == saved and len(saved) == 1
