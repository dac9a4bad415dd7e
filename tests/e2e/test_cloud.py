"""Account, rate limits and Firebase sync end to end: a real leo-lsp over stdio.

Firebase off: profile and projects on the local repository, access checks, the search rate limit.
Firebase on: real RS256 tokens verified against a loopback certificate server (FakeGoogle, started
through tests/e2e/cloud_launcher.py) and the Firestore emulator over gRPC; a search reaches
Firestore as a `search_activity` document without its text; an expired token leaves leo working.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "unit" / "cloud"))
from cloud_fakes import (  # noqa: E402
    PROJECT,
    FakeGoogle,
    FirestoreEmulator,
    SigningKey,
    ensure_node_tooling,
)
from session import command, start  # noqa: E402

from leo_lsp.cloud.profiles import Actor, ProfileRepository  # noqa: E402
from leo_lsp.store.user_db import UserDatabase  # noqa: E402

pytestmark = pytest.mark.slow

LAUNCHER = Path(__file__).parent / "cloud_launcher.py"
CART = (
    "class Cart:\n    def __init__(self):\n        self.items = []\n\n"
    "    def add_item(self, name, price):\n"
    '        """Put a product with its price into the shopping cart."""\n'
    "        self.items.append((name, price))\n"
)


def make_workspace(tmp: Path) -> Path:
    ws = tmp / "ws"
    ws.mkdir()
    (ws / "cart.py").write_text(CART)
    return ws


async def rpc_error(lsp: LanguageClient, name: str, args: dict[str, Any]) -> JsonRpcException:
    with pytest.raises(JsonRpcException) as info:
        await command(lsp, name, args)
    return info.value


async def wait_until(
    lsp: LanguageClient, cond: Callable[[], Any], method: str, timeout: float = 30
) -> Any:
    """Wait for `cond()` to hold, re-checking after each `method` notification."""
    deadline = time.monotonic() + timeout
    while not (found := cond()):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting on {method}")
        try:
            await asyncio.wait_for(lsp.protocol.wait_for_notification_async(method), left)
        except TimeoutError:
            continue
    return found


def err_data(err: JsonRpcException) -> dict[str, Any]:
    assert isinstance(err.data, dict)
    return err.data


def outbox_rows(data_dir: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(data_dir / "leo.sqlite3")
    try:
        return conn.execute("SELECT uid, collection FROM outbox").fetchall()
    finally:
        conn.close()


# -- Firebase off ------------------------------------------------------------------------------


async def test_local_account_access_and_search_rate_limit(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    data = tmp_path / "data"
    # A project another account created in this data dir (when bob was signed in).
    db = UserDatabase(data / "leo.sqlite3")
    bobs = ProfileRepository(db.conn).create_project(Actor("bob"), "bob's secret").id
    db.close()

    lsp = await start(ws, data, options={"rateLimits": {"searchPerHour": 2}})
    try:
        profile = await command(
            lsp, "leo.profile.set", {"displayName": "Ada", "preferences": {"theme": "dark"}}
        )
        assert profile["uid"] == "local" and profile["displayName"] == "Ada"
        got = await command(lsp, "leo.profile.get")
        assert (got["displayName"], got["preferences"]) == ("Ada", {"theme": "dark"})

        created = await command(
            lsp,
            "leo.projects.create",
            {"name": "shop", "description": "carts", "folderUri": ws.as_uri()},
        )
        assert created["owner"] == "local" and created["folderUri"] == ws.as_uri()
        pid = created["id"]
        listed = await command(lsp, "leo.projects.list")
        assert [p["id"] for p in listed] == [pid], "bob's project must not be listed"
        added = await command(
            lsp, "leo.projects.addCollaborator", {"projectId": pid, "email": "Eve@Example.com"}
        )
        assert added["collaborators"][0]["email"] == "eve@example.com"
        assert (await command(lsp, "leo.projects.get", {"projectId": pid}))["name"] == "shop"

        err = await rpc_error(lsp, "leo.projects.get", {"projectId": bobs})
        assert err.code == -32005 and err_data(err)["reason"] == "forbidden", err
        err = await rpc_error(
            lsp, "leo.projects.addCollaborator", {"projectId": bobs, "uid": "local"}
        )
        assert err.code == -32005
        err = await rpc_error(lsp, "leo.projects.create", {"name": 3})
        assert err.code == -32602 and "name" in err.message

        # Stats of the linked folder land on the account project.
        await command(lsp, "leo.indexWorkspace")
        stats = await command(lsp, "leo.projectStats")
        assert stats["linkedProject"] == pid and stats["files"] == 1
        project = await command(lsp, "leo.projects.get", {"projectId": pid})
        assert project["stats"]["files"] == 1 and project["stats"]["languages"] == {"python": 1}

        for _ in range(2):
            assert (await command(lsp, "leo.search", {"query": "shopping cart"}))["results"]
        err = await rpc_error(lsp, "leo.search", {"query": "shopping cart"})
        assert err.code == -32006, err
        assert 1000 < err_data(err)["retryAfter"] <= 1800, (
            err.data
        )  # 2 per hour: one token per 30 min
        assert "retry in" in err.message

        health = await command(lsp, "leo.health")
        assert health["services"]["firebase"]["status"] == "disabled"
    finally:
        await lsp.shutdown_session()
    assert outbox_rows(data) == [], "nothing is queued for sync with Firebase off"


# -- Firebase on -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def firestore() -> Iterator[FirestoreEmulator]:
    node, _ = ensure_node_tooling()
    emu = FirestoreEmulator(node)
    try:
        emu.wait_ready()
        yield emu
    finally:
        emu.close()


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle(SigningKey())
    yield fake
    fake.close()


async def start_cloud(
    ws: Path, data: Path, google: FakeGoogle, firestore: FirestoreEmulator, token: str
) -> LanguageClient:
    """leo-lsp (through the test launcher) with Firebase on and `token` as firebase.idToken."""
    env = {k: v for k, v in os.environ.items() if k != "FIREBASE_AUTH_EMULATOR_HOST"}
    env.update(
        LEO_TEST_CERT_URI=f"{google.base}/certs",
        LEO_TEST_ID_TOOLKIT_URL=f"{google.base}/v1",
        FIRESTORE_EMULATOR_HOST=firestore.host,
    )
    config = ClientServerConfig(server_command=[sys.executable, str(LAUNCHER)], server_env=env)
    lsp = await config.start()
    assert isinstance(lsp, LanguageClient)
    firebase = {
        "enabled": True,
        "projectId": PROJECT,
        "credentials": str(google.service_account(data.parent)),
        "idToken": token,
    }
    await lsp.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            root_uri=ws.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=ws.as_uri(), name=ws.name)],
            initialization_options={"dataDir": str(data), "firebase": firebase},
        )
    )
    return lsp


def firestore_doc(firestore: FirestoreEmulator, path: str) -> dict[str, Any] | None:
    from google.cloud import firestore as gfs

    old = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = firestore.host  # read once, in the constructor
    try:
        client = gfs.Client(project=PROJECT)
    finally:
        if old is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = old
    try:
        collection, doc_id = path.split("/")
        snap = client.collection(collection).document(doc_id).get()
        return snap.to_dict() if snap.exists else None
    finally:
        client.close()  # type: ignore[no-untyped-call]


def written(firestore: FirestoreEmulator, prefix: str) -> list[str]:
    return [k for k in firestore.stats()["writes"] if k.startswith(prefix)]


def all_text(lsp: LanguageClient) -> str:
    return "\n".join([m.message for m in lsp.messages] + [m.message for m in lsp.log_messages])


async def test_verified_user_search_activity_reaches_firestore_without_the_query(
    tmp_path: Path, google: FakeGoogle, firestore: FirestoreEmulator
) -> None:
    uid = f"alice{time.time_ns()}"
    google.add_user(uid)
    token = google.key.mint(uid, email=f"{uid}@example.com")
    ws = make_workspace(tmp_path)
    lsp = await start_cloud(ws, tmp_path / "data", google, firestore, token)
    try:
        health = await command(lsp, "leo.health")
        fb = health["services"]["firebase"]
        assert (fb["status"], fb["uid"]) == ("connected", uid), fb
        assert any(r[1].endswith("accounts:lookup") for r in google.requests), (
            "the revocation check must reach the Auth backend"
        )

        query = "put a product into the shopping cart"
        await command(lsp, "leo.indexWorkspace")
        result = await command(lsp, "leo.search", {"query": query})
        assert result["results"]
        profile = await command(lsp, "leo.profile.set", {"displayName": "Alice"})
        assert profile["uid"] == uid

        def delivered() -> list[str] | None:
            docs = written(firestore, "search_activity/")
            mine = [d for d in docs if (firestore_doc(firestore, d) or {}).get("userId") == uid]
            return mine if mine and written(firestore, f"users/{uid}") else None

        deadline = time.monotonic() + 30
        while not (docs := delivered()):
            assert time.monotonic() < deadline, "search activity never reached Firestore"
            await asyncio.sleep(0.1)  # polling Firestore (another process) for the condition
        activity = firestore_doc(firestore, docs[0])
        assert activity is not None
        assert activity["queryLength"] == len(query)
        assert activity["resultCount"] == len(result["results"])
        assert activity["latencyMs"] >= 0
        assert "query" not in activity, "query text is synced only with firebase.syncQueries"
        assert query not in str(activity)
        assert (firestore_doc(firestore, f"users/{uid}") or {})["displayName"] == "Alice"

        health = await command(lsp, "leo.health")
        assert health["services"]["firebase"]["queued"] == 0
        assert token not in all_text(lsp), "the token must never be logged"
    finally:
        await lsp.shutdown_session()


async def test_expired_token_keeps_leo_working_and_says_why(
    tmp_path: Path, google: FakeGoogle, firestore: FirestoreEmulator
) -> None:
    uid = f"bob{time.time_ns()}"
    google.add_user(uid)
    expired = google.key.mint(uid, issued=time.time() - 7200, lifetime=3600)
    ws = make_workspace(tmp_path)
    data = tmp_path / "data"
    lsp = await start_cloud(ws, data, google, firestore, expired)
    try:
        msg = await wait_until(
            lsp,
            lambda: next((m for m in lsp.messages if "sign-in failed" in m.message), None),
            "window/showMessage",
        )
        assert "expired" in msg.message and "leo.auth.signIn" in msg.message
        fb = (await command(lsp, "leo.health"))["services"]["firebase"]
        assert fb["status"] == "auth error" and "expired" in fb["message"], fb

        # Local work goes on: indexing and search answer; nothing is queued without a uid.
        await command(lsp, "leo.indexWorkspace")
        assert (await command(lsp, "leo.search", {"query": "shopping cart"}))["results"]
        err = await rpc_error(lsp, "leo.profile.get", {})
        assert err.code == -32005 and err_data(err)["reason"] == "expired", err
        assert outbox_rows(data) == []

        # A fresh token swaps in without a restart.
        fresh = google.key.mint(uid)
        signed = await command(lsp, "leo.auth.signIn", {"idToken": fresh})
        assert signed["uid"] == uid
        fb = (await command(lsp, "leo.health"))["services"]["firebase"]
        assert fb["status"] == "connected", fb
        assert (await command(lsp, "leo.profile.get"))["uid"] == uid
        err = await rpc_error(lsp, "leo.auth.signIn", {"idToken": "eyJhbGciOiJSUzI1NiJ9.x.y"})
        assert err.code == -32005 and err_data(err)["reason"] in {"malformed", "bad_signature"}
        text = all_text(lsp)
        assert expired not in text and fresh not in text, "tokens must never be logged"
    finally:
        await lsp.shutdown_session()
