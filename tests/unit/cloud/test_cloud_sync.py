"""SyncWorker with a recording sink: offline → backoff → delivery, uid scoping, health, logs."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from cloud_fakes import RecordingSink, SigningKey, StaticUser

from leo_lsp.cloud.firestore_sink import PermanentSinkError, coalesce
from leo_lsp.cloud.outbox import Outbox, OutboxEvent, enqueue, search_activity_payload
from leo_lsp.cloud.profiles import Actor, ProfileRepository
from leo_lsp.cloud.sync import Backoff, FirebaseHealth, SyncWorker
from leo_lsp.errors import InvalidArguments


class Clock:
    def __init__(self) -> None:
        # Starts at the wall clock: enqueue() stamps rows with time.time() by default.
        self.now = time.time() + 1

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, clock: Clock) -> tuple[sqlite3.Connection, Outbox]:
    conn = sqlite3.connect(tmp_path / "db.sqlite", check_same_thread=False)
    return conn, Outbox(conn, clock=clock)


def add(conn: sqlite3.Connection, n: int, uid: str = "alice", start: int = 0) -> None:
    with conn:
        for i in range(start, start + n):
            enqueue(conn, "search_activity", f"ev{i}", {"resultCount": i}, uid=uid)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    b = Backoff(base=1, cap=60, jitter=0.5, rng=random.Random(7))
    delays = [b(a) for a in range(1, 10)]
    for attempt, d in enumerate(delays, start=1):
        raw = min(60, 2 ** (attempt - 1))
        assert raw * 0.5 <= d <= raw
    assert max(delays) <= 60


async def test_offline_events_stay_queued_then_drain_exactly_once(tmp_path: Path) -> None:
    clock = Clock()
    conn, outbox = make(tmp_path, clock)
    add(conn, 30)
    sink = RecordingSink()
    sink.offline = True
    worker = SyncWorker(
        outbox,
        sink,
        StaticUser("alice"),
        batch_size=10,
        clock=clock,
        backoff=Backoff(base=2, cap=100, jitter=0),
    )
    # A long outage: every attempt fails, the pause doubles, nothing is lost.
    pauses = []
    for _ in range(6):
        assert await worker.drain_once() == 0
        pauses.append(worker._paused_until - clock.now)
        assert await worker.drain_once() == 0  # still paused: the sink is not even called
        clock.now = worker._paused_until
    assert pauses == [2, 4, 8, 16, 32, 64]
    assert sink.calls == 6 and outbox.pending_count() == 30
    health = await worker.health()
    assert health.state == "offline" and health.label() == "offline (30 queued)"

    sink.offline = False
    while await worker.drain_once():
        pass
    assert outbox.pending_count() == 0
    assert len(sink.docs) == 30 and set(sink.writes.values()) == {1}
    assert (await worker.health()).state == "connected"
    await worker.stop()


async def test_only_the_verified_uid_is_sent(tmp_path: Path) -> None:
    clock = Clock()
    conn, outbox = make(tmp_path, clock)
    add(conn, 3, uid="alice")
    add(conn, 2, uid="bob", start=10)
    sink = RecordingSink()
    nobody = StaticUser(None)
    worker = SyncWorker(outbox, sink, nobody, clock=clock)
    assert await worker.drain_once() == 0 and sink.calls == 0
    health = await worker.health()
    assert health.state == "auth error" and health.queued == 5
    nobody.user = StaticUser("alice").user
    assert await worker.drain_once() == 3
    assert await worker.drain_once() == 0
    assert outbox.pending_count("bob") == 2  # waits for bob to sign in
    await worker.stop()


async def test_a_poison_event_is_parked_and_the_rest_delivered(tmp_path: Path) -> None:
    class Picky(RecordingSink):
        def write(self, events: Sequence[OutboxEvent]) -> None:
            if any(e.doc_id == "ev2" for e in events):
                raise PermanentSinkError("INVALID_ARGUMENT: bad field")
            super().write(events)

    clock = Clock()
    conn, outbox = make(tmp_path, clock)
    add(conn, 5)
    sink = Picky()
    worker = SyncWorker(outbox, sink, StaticUser("alice"), clock=clock)
    assert await worker.drain_once() == 4
    assert outbox.pending_count() == 0 and outbox.dead_count() == 1
    assert "search_activity/ev2" not in sink.docs and len(sink.docs) == 4
    assert (await worker.health()).dead == 1
    await worker.stop()


async def test_background_task_wakes_on_notify_and_stops_within_deadline(tmp_path: Path) -> None:
    conn, outbox = make(tmp_path, Clock())
    delivered = asyncio.Event()
    loop = asyncio.get_running_loop()

    class Signalling(RecordingSink):
        def write(self, events: Sequence[OutboxEvent]) -> None:
            super().write(events)
            loop.call_soon_threadsafe(delivered.set)

    sink = Signalling()
    worker = SyncWorker(outbox, sink, StaticUser("alice"), idle_poll=3600)
    worker.start()
    add(conn, 2)
    worker.notify()
    await asyncio.wait_for(delivered.wait(), timeout=10)
    await worker.stop()
    assert outbox.pending_count() == 0 and len(sink.docs) == 2

    # A sink that hangs (a dead network without timeouts) must not hold shutdown hostage.
    release = threading.Event()

    class Hanging(RecordingSink):
        def write(self, events: Sequence[OutboxEvent]) -> None:
            release.wait(30)

    hanging = SyncWorker(outbox, Hanging(), StaticUser("alice"), idle_poll=3600)
    add(conn, 1, start=100)
    hanging.start()
    await asyncio.sleep(0)  # let it claim and block
    t0 = loop.time()
    await hanging.stop(deadline=0.5)
    assert loop.time() - t0 < 3
    release.set()
    assert outbox.pending_count() == 1  # not lost: still queued for the next session


async def test_no_token_or_code_in_outbox_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = SigningKey().mint("alice")
    code = "def secret_algorithm(x):\n    return x * 42"
    clock = Clock()
    conn, outbox = make(tmp_path, clock)
    repo = ProfileRepository(conn, sync=True, require_verified_email=True, clock=clock)
    actor = Actor("alice", "alice@example.com", True)
    repo.set_profile(actor, display_name="Alice", preferences={"theme": "dark"})
    pid = repo.create_project(actor, "leo", "semantic search").id
    repo.update_stats(actor, pid, {"files": 3, "chunks": 40, "languages": {"python": 3}})
    with pytest.raises(InvalidArguments):
        repo.set_profile(actor, preferences={"snippet": code})
    with pytest.raises(InvalidArguments):
        repo.set_profile(actor, preferences={"lastToken": token})
    with conn:
        enqueue(
            conn,
            "search_activity",
            "s1",
            search_activity_payload(uid="alice", query=code, result_count=2, latency_ms=5),
            uid="alice",
        )
    sink = RecordingSink()
    sink.offline = True
    worker = SyncWorker(outbox, sink, StaticUser("alice"), clock=clock)
    await worker.drain_once()
    sink.offline = False
    clock.now += 3600
    while await worker.drain_once():
        pass
    await worker.stop()
    rows = " ".join(r[0] for r in conn.execute("SELECT payload FROM outbox"))
    everything = rows + repr(sink.docs) + " ".join(r.getMessage() for r in caplog.records)
    assert "secret_algorithm" not in everything and "x * 42" not in everything
    assert token not in everything and "eyJ" not in everything
    assert sink.docs["search_activity/s1"]["queryLength"] == len(code)
    assert sink.docs[f"projects/{pid}"]["stats"]["chunks"] == 40


def test_coalesce_folds_writes_per_document() -> None:
    def ev(i: int, doc: str, op: str, payload: dict[str, object]) -> OutboxEvent:
        return OutboxEvent(i, "u", "projects", doc, op, payload, 0.0, 0)

    out = coalesce(
        [
            ev(1, "a", "set", {"name": "A", "stats": {}}),
            ev(2, "b", "merge", {"stats": {"files": 1}}),
            ev(3, "a", "merge", {"stats": {"files": 2}}),
            ev(4, "c", "set", {"name": "C"}),
            ev(5, "c", "delete", {}),
        ]
    )
    assert out == [
        ("projects", "a", "set", {"name": "A", "stats": {"files": 2}}),
        ("projects", "b", "merge", {"stats": {"files": 1}}),
        ("projects", "c", "delete", {}),
    ]


def test_health_labels() -> None:
    assert FirebaseHealth.disabled().label() == "disabled"
    assert FirebaseHealth("offline", queued=4).label() == "offline (4 queued)"
    assert FirebaseHealth("auth error", message="expired").to_dict()["label"] == (
        "auth error: expired"
    )
