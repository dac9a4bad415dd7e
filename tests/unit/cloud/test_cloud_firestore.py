"""FirestoreSink + SyncWorker against @firestore-emulator/server over real gRPC (loopback)."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloud_fakes import PROJECT, FirestoreEmulator, StaticUser
from google.cloud import firestore

from leo_lsp.cloud.firestore_sink import FirestoreSink, TransientSinkError
from leo_lsp.cloud.outbox import Outbox, OutboxEvent, enqueue
from leo_lsp.cloud.profiles import Actor, ProfileRepository
from leo_lsp.cloud.sync import Backoff, SyncWorker

logger = logging.getLogger(__name__)


@pytest.fixture
def client(firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    firestore_emulator.command("up")
    # The client reads the variable once, in its constructor: insecure channel, anonymous creds.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    c = firestore.Client(project=PROJECT)
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST")
    yield c
    c.close()  # type: ignore[no-untyped-call]
    firestore_emulator.command("up")


def ev(i: int, collection: str, doc: str, op: str, payload: dict[str, Any]) -> OutboxEvent:
    return OutboxEvent(i, "u", collection, doc, op, payload, 0.0, 0)


def test_set_merge_delete_reach_the_emulator(client: Any) -> None:
    tag = str(time.time_ns())
    sink = FirestoreSink(client, timeout=10)
    sink.write(
        [
            ev(
                1,
                "projects",
                f"p{tag}",
                "set",
                {"name": "leo", "owner": "u", "createdAt": 1.7e9, "stats": {"files": 1}},
            ),
            ev(2, "users", f"u{tag}", "set", {"displayName": "Ada"}),
        ]
    )
    sink.write([ev(3, "projects", f"p{tag}", "merge", {"stats": {"files": 5}})])
    snap = client.collection("projects").document(f"p{tag}").get()
    assert snap.exists
    data = snap.to_dict()
    assert data["name"] == "leo" and data["stats"] == {"files": 5}
    assert data["createdAt"] == dt.datetime.fromtimestamp(1.7e9, tz=dt.UTC)
    sink.write([ev(4, "users", f"u{tag}", "delete", {})])
    assert not client.collection("users").document(f"u{tag}").get().exists


def test_unreachable_firestore_is_a_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{dead}")
    c = firestore.Client(project=PROJECT)
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST")
    with pytest.raises(TransientSinkError):
        FirestoreSink(c, timeout=2).write([ev(1, "users", "x", "set", {"a": 1})])
    c.close()  # type: ignore[no-untyped-call]


async def test_outage_for_the_whole_session_then_back_delivers_exactly_once(
    client: Any, firestore_emulator: FirestoreEmulator, tmp_path: Path
) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite", check_same_thread=False)
    clock = [time.time() + 1]
    outbox = Outbox(conn, clock=lambda: clock[0])
    repo = ProfileRepository(conn, sync=True, require_verified_email=True)
    alice = Actor(f"alice{time.time_ns()}", "alice@example.com", True)
    n = 300
    pid = repo.create_project(alice, "leo").id
    with conn:
        for i in range(n):
            enqueue(
                conn,
                "search_activity",
                f"{alice.uid}-{i}",
                {"userId": alice.uid, "resultCount": i, "latencyMs": 3.0},
                uid=alice.uid,
            )
    repo.update_stats(alice, pid, {"files": 10, "searches": n})

    firestore_emulator.command("down")
    sink = FirestoreSink(client, timeout=5)
    worker = SyncWorker(
        outbox,
        sink,
        StaticUser(alice.uid),
        batch_size=100,
        clock=lambda: clock[0],
        backoff=Backoff(base=1, cap=60, jitter=0.2),
    )
    for _ in range(4):
        assert await worker.drain_once() == 0
        clock[0] = worker._paused_until
    assert (await worker.health()).label() == f"offline ({n + 2} queued)"

    firestore_emulator.command("up")
    clock[0] += 3600  # the outage is over and every backoff has expired
    t0 = time.perf_counter()
    delivered = 0
    while sent := await worker.drain_once():
        delivered += sent
    took = time.perf_counter() - t0
    logger.info(
        "drained %d events to the emulator in %.2f s (%.0f events/s)",
        delivered,
        took,
        delivered / took,
    )
    await worker.stop()
    assert delivered == n + 2 and outbox.pending_count() == 0
    writes = firestore_emulator.stats()["writes"]
    activity = {k: v for k, v in writes.items() if k.startswith(f"search_activity/{alice.uid}-")}
    assert len(activity) == n
    assert set(activity.values()) == {1}, "each event delivered exactly once"
    # create + stats: two events on one document, coalesced into one write when in one batch
    assert 1 <= writes[f"projects/{pid}"] <= 2
    project = client.collection("projects").document(pid).get().to_dict()
    assert project["owner"] == alice.uid and project["stats"] == {"files": 10, "searches": n}
    assert (
        client.collection("search_activity")
        .document(f"{alice.uid}-7")
        .get()
        .to_dict()["resultCount"]
        == 7
    )
