"""The durable outbox: schema, transactional enqueue, guard, claims, backoff, kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlean
from cloud_fakes import RecordingSink, SigningKey, StaticUser

from leo_lsp.cloud.outbox import (
    Outbox,
    assert_metadata_only,
    enqueue,
    ensure_schema,
    new_event_id,
    search_activity_payload,
    struggle_doc_id,
)
from leo_lsp.cloud.sync import SyncWorker
from leo_lsp.errors import InvalidArguments


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def test_schema_has_the_documented_columns_and_is_idempotent(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db.sqlite")
    ensure_schema(conn)
    ensure_schema(conn)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(outbox)")}
    assert {
        "id",
        "collection",
        "doc_id",
        "op",
        "payload",
        "created_at",
        "attempts",
        "next_attempt_at",
        "last_error",
    } <= cols


def test_enqueue_commits_or_rolls_back_with_the_callers_transaction(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db.sqlite")
    ensure_schema(conn)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT)")
    conn.commit()
    with pytest.raises(RuntimeError):
        with conn:
            conn.execute("INSERT INTO notes (title) VALUES ('lost')")
            enqueue(conn, "projects", "p1", {"name": "lost"}, uid="u")
            raise RuntimeError("crash before commit")
    with conn:
        conn.execute("INSERT INTO notes (title) VALUES ('kept')")
        enqueue(conn, "projects", "p2", {"name": "kept"}, uid="u")
    assert [r[0] for r in conn.execute("SELECT title FROM notes")] == ["kept"]
    outbox = Outbox(conn)
    assert [e.doc_id for e in outbox.claim_batch(10)] == ["p2"]


def test_works_with_sqlean_connections(tmp_path: Path) -> None:
    conn = sqlean.connect(str(tmp_path / "db.sqlite"), check_same_thread=False)
    outbox = Outbox(conn)
    with conn:
        enqueue(conn, "users", "u", {"displayName": "Ada"}, uid="u")
    assert outbox.pending_count() == 1
    events = outbox.claim_batch(5)
    outbox.mark_done([e.id for e in events])
    assert outbox.pending_count() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"code": "def f(): pass"},
        {"stats": {"Snippet": "x = 1"}},
        {"hits": [{"content": "secret"}]},
        {"text": "hello"},
        {"note": "x" * 5000},
        {"who": "Bearer " + SigningKey().mint("u")},
        {"idToken": "abc"},
    ],
)
def test_guard_refuses_code_and_tokens(payload: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(InvalidArguments):
        assert_metadata_only(payload)
    conn = open_db(tmp_path / "db.sqlite")
    ensure_schema(conn)
    with pytest.raises(InvalidArguments):
        enqueue(conn, "struggles", "s", payload, uid="u")
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_search_activity_keeps_the_query_text_only_when_asked() -> None:
    query = "where do we parse the config file"
    plain = search_activity_payload(uid="u", query=query, result_count=7, latency_ms=12.345)
    assert plain["queryLength"] == len(query) and plain["resultCount"] == 7
    assert plain["latencyMs"] == 12.3
    assert query not in str(plain.values())
    assert "query" not in plain
    assert_metadata_only(plain)
    synced = search_activity_payload(
        uid="u", query=query, result_count=7, latency_ms=1, sync_queries=True
    )
    assert synced["query"] == query


def test_ids_are_stable_and_distinct() -> None:
    assert struggle_doc_id("u", "p", "TypeError: x") == struggle_doc_id("u", "p", "TypeError: x")
    assert struggle_doc_id("u", "p", "a") != struggle_doc_id("u", "p", "b")
    assert new_event_id() != new_event_id()


def test_claims_lease_rows_and_failures_back_off(tmp_path: Path) -> None:
    clock = [1000.0]
    conn = open_db(tmp_path / "db.sqlite")
    outbox = Outbox(conn, clock=lambda: clock[0], lease_seconds=60)
    with conn:
        for i in range(5):
            enqueue(conn, "search_activity", f"e{i}", {"resultCount": i}, uid="u", now=clock[0])
        enqueue(conn, "users", "v", {"displayName": "V"}, uid="v", now=clock[0])
    first = outbox.claim_batch(3)
    assert [e.doc_id for e in first] == ["e0", "e1", "e2"]
    assert [e.doc_id for e in outbox.claim_batch(10, uids=["u"])] == ["e3", "e4"]
    assert outbox.claim_batch(10, uids=["u"]) == []  # all leased
    outbox.mark_failed([e.id for e in first], "UNAVAILABLE", lambda attempt: 30.0 * attempt)
    assert outbox.pending_count() == 6 and outbox.pending_count("v") == 1
    clock[0] += 29
    assert outbox.claim_batch(10, uids=["u"]) == []
    clock[0] += 2  # backoff over; e3/e4's lease (60 s) still holds
    again = outbox.claim_batch(10, uids=["u"])
    assert [e.doc_id for e in again] == ["e0", "e1", "e2"] and again[0].attempts == 1
    assert outbox.last_error() == "UNAVAILABLE"
    clock[0] += 60  # the lease of a worker that died expires
    assert {e.doc_id for e in outbox.claim_batch(10, uids=["u"])} == {"e0", "e1", "e2", "e3", "e4"}
    outbox.mark_dead([again[0].id], "INVALID_ARGUMENT")
    assert outbox.pending_count() == 5 and outbox.dead_count() == 1


CHILD = textwrap.dedent(
    """
    import sqlite3, sys, time
    from leo_lsp.cloud.outbox import Outbox, enqueue, ensure_schema
    conn = sqlite3.connect(sys.argv[1])
    conn.execute("PRAGMA journal_mode=WAL")
    ensure_schema(conn)
    conn.execute("CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY)")
    conn.commit()
    for i in range(int(sys.argv[2])):
        with conn:
            conn.execute("INSERT INTO notes VALUES (?)", (f"n{i}",))
            enqueue(conn, "search_activity", f"ev{i}", {"resultCount": i}, uid="alice")
    # A worker leased a batch and died before delivering it.
    Outbox(conn).claim_batch(5)
    # A local change whose transaction never commits.
    conn.execute("INSERT INTO notes VALUES ('uncommitted')")
    enqueue(conn, "search_activity", "ev-uncommitted", {"resultCount": 0}, uid="alice")
    print("ready", flush=True)
    time.sleep(600)
    """
)


async def test_kill_9_loses_no_committed_event_and_delivers_each_once(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    n = 50
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(n)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    conn = open_db(db)
    notes = {r[0] for r in conn.execute("SELECT id FROM notes")}
    assert "uncommitted" not in notes and len(notes) == n
    outbox = Outbox(conn)
    assert outbox.pending_count() == n

    sink = RecordingSink()
    worker = SyncWorker(outbox, sink, StaticUser("alice"), batch_size=20)
    worker.start()  # releases the dead worker's leases first
    await worker.stop(deadline=30)  # stop() drains everything due before it returns
    assert outbox.pending_count() == 0
    assert set(sink.docs) == {f"search_activity/ev{i}" for i in range(n)}
    assert set(sink.writes.values()) == {1}, "every event delivered exactly once"
