"""CloudService in process: real RS256 sign-in (loopback certs), the user database, the worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import firebase_admin._token_gen
import firebase_admin._user_mgt
import pytest
from cloud_fakes import PROJECT, FakeGoogle, RecordingSink, SigningKey

from leo_lsp.cloud.firebase import EMULATOR_ENV, Identity
from leo_lsp.cloud.outbox import OutboxEvent, struggle_doc_id
from leo_lsp.cloud.profiles import LOCAL_ACTOR
from leo_lsp.cloud.service import CloudService
from leo_lsp.errors import AuthError
from leo_lsp.settings import Settings, build_settings
from leo_lsp.store.user_db import UserDatabase
from leo_lsp.struggle.service import StruggleService


class SignallingSink(RecordingSink):
    """A RecordingSink that signals every call, so tests wait on an event instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.called = threading.Event()

    def write(self, events: Sequence[OutboxEvent]) -> None:
        try:
            super().write(events)
        finally:
            self.called.set()

    async def wait_call(self) -> None:
        import asyncio

        assert await asyncio.to_thread(self.called.wait, 15), "the sync worker never wrote"
        self.called.clear()


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    fake = FakeGoogle(SigningKey())
    monkeypatch.setattr(firebase_admin._token_gen, "ID_TOKEN_CERT_URI", f"{fake.base}/certs")
    monkeypatch.setattr(firebase_admin._user_mgt.UserManager, "ID_TOOLKIT_URL", f"{fake.base}/v1")
    yield fake
    fake.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[UserDatabase]:
    d = UserDatabase(tmp_path / "leo.sqlite3")
    yield d
    d.close()


def outbox(db: UserDatabase) -> list[tuple[str, str, str]]:
    with db.lock:
        rows = db.conn.execute("SELECT uid, collection, doc_id FROM outbox").fetchall()
    return [tuple(r) for r in rows]


def cloud_settings(tmp_path: Path, token: str, **firebase: Any) -> Settings:
    return build_settings(
        {
            "dataDir": str(tmp_path),
            "firebase": {"enabled": True, "projectId": PROJECT, "idToken": token, **firebase},
        },
        environ={},
    )


async def signed_in(
    tmp_path: Path, google: FakeGoogle, db: UserDatabase, **firebase: Any
) -> tuple[CloudService, SignallingSink, str]:
    google.add_user("alice")
    sink = SignallingSink()
    identity = Identity(PROJECT, str(google.service_account(tmp_path)))
    cloud = CloudService(
        cloud_settings(tmp_path, google.key.mint("alice"), **firebase),
        db,
        identity=identity,
        sink_factory=lambda _ident: sink,
    )
    assert await cloud.start() == []
    return cloud, sink, "alice"


async def test_struggle_metadata_is_synced_after_its_transaction_commits(
    tmp_path: Path, google: FakeGoogle, db: UserDatabase
) -> None:
    cloud, sink, uid = await signed_in(tmp_path, google, db)
    try:

        async def no_hits(query: str, limit: int) -> list[Any]:
            return []

        struggles = StruggleService(
            build_settings({}, environ={}).struggle, db.conn, db.lock, no_hits, lambda uri: "p1"
        )
        struggles.on_event.append(cloud.struggle_hook)
        out = await struggles.report(
            "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
            "file:///home/alice/shop/cart.py",
            3,
            "python",
        )
        await sink.wait_call()
        path = f"struggles/{struggle_doc_id(uid, 'p1', out['signature'])}"
        doc = sink.docs[path]
        assert doc["userId"] == uid and doc["projectId"] == "p1"
        assert doc["signature"] == out["signature"] and doc["category"] == out["category"]
        assert "uri" not in doc and "/home/alice" not in str(doc), "local paths stay local"
        assert (await cloud.health())["status"] == "connected"
    finally:
        await cloud.stop()


async def test_a_rolled_back_struggle_write_leaves_no_outbox_row(
    tmp_path: Path, google: FakeGoogle, db: UserDatabase
) -> None:
    cloud, _sink, _uid = await signed_in(tmp_path, google, db)
    try:
        meta = {"signature": "sig", "category": "type", "projectId": "p", "message": "m"}
        with pytest.raises(RuntimeError), db.lock:
            with db.conn:
                cloud.struggle_hook(db.conn, meta)
                assert len(outbox(db)) == 1
                raise RuntimeError("the struggle row failed")
        assert outbox(db) == []
    finally:
        await cloud.stop()


async def test_search_activity_offline_is_queued_and_health_says_so(
    tmp_path: Path, google: FakeGoogle, db: UserDatabase
) -> None:
    cloud, sink, uid = await signed_in(tmp_path, google, db, syncQueries=True)
    try:
        sink.offline = True
        assert await cloud.record_search(query="retry with backoff", result_count=4, latency_ms=12)
        await sink.wait_call()
        for _ in range(50):  # health() hops to a thread, so the worker's failure handling runs
            health = await cloud.health()
            if health["status"] == "offline":
                break
        assert (health["status"], health["label"]) == ("offline", "offline (1 queued)"), health
        [(row_uid, collection, _doc)] = outbox(db)
        assert (row_uid, collection) == (uid, "search_activity")
        sink.offline = False
        await cloud.sign_in(google.key.mint(uid))  # a sign-in also wakes the worker
        # The backoff (≥ 0.5 s) must pass before the retry; the event is delivered then.
        await sink.wait_call()
        [doc] = [d for p, d in sink.docs.items() if p.startswith("search_activity/")]
        assert doc["query"] == "retry with backoff", "syncQueries on: the text is synced"
        assert doc["resultCount"] == 4 and doc["queryLength"] == len("retry with backoff")
    finally:
        await cloud.stop()


async def test_firebase_off_acts_locally_and_queues_nothing(
    tmp_path: Path, db: UserDatabase
) -> None:
    cloud = CloudService(build_settings({"dataDir": str(tmp_path)}, environ={}), db)
    try:
        assert await cloud.start() == []
        assert await cloud.actor() is LOCAL_ACTOR
        assert not await cloud.record_search(query="q", result_count=1, latency_ms=1.0)
        cloud.struggle_hook(db.conn, {"signature": "s", "projectId": "p"})
        db.conn.commit()
        pid = await cloud.call(lambda repo, actor: repo.create_project(actor, "local").id)
        assert (await cloud.call(lambda repo, actor: repo.get_project(actor, pid))).owner == "local"
        assert outbox(db) == []
        assert (await cloud.health())["status"] == "disabled"
        with pytest.raises(AuthError) as info:
            await cloud.sign_in("eyJ.x.y")
        assert info.value.data["reason"] == "not_configured"
    finally:
        await cloud.stop()
