"""Profiles, projects, collaborators and access checks; each write enqueues in one transaction."""

from __future__ import annotations

import json
import sqlite3

import pytest

from leo_lsp.cloud.outbox import Outbox
from leo_lsp.cloud.profiles import LOCAL_ACTOR, Actor, ProfileRepository
from leo_lsp.errors import AuthError, InvalidArguments, NotFound

OWNER = Actor("owner-uid", "owner@example.com", True)
BOB = Actor("bob-uid", "bob@example.com", True)
CAROL = Actor("carol-uid", "Carol@Example.com", True)
STRANGER = Actor("mallory-uid", "mallory@example.com", True)


@pytest.fixture
def conn() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", check_same_thread=False)


@pytest.fixture
def repo(conn: sqlite3.Connection) -> ProfileRepository:
    return ProfileRepository(conn, sync=True, require_verified_email=True)


def outbox_rows(conn: sqlite3.Connection) -> list[tuple[str, str, str, dict[str, object]]]:
    return [
        (r[0], r[1], r[2], json.loads(r[3]))
        for r in conn.execute("SELECT collection, doc_id, op, payload FROM outbox ORDER BY id")
    ]


def test_profile_round_trip_and_sync_row(repo: ProfileRepository, conn: sqlite3.Connection) -> None:
    assert repo.get_profile(OWNER).display_name == ""
    repo.set_profile(OWNER, display_name="Olga", preferences={"theme": "dark"})
    p = repo.set_profile(OWNER, preferences={"hints": False})
    assert p.preferences == {"theme": "dark", "hints": False}
    assert repo.get_profile(OWNER).to_dict()["displayName"] == "Olga"
    rows = outbox_rows(conn)
    assert [(c, d, op) for c, d, op, _ in rows] == [("users", "owner-uid", "set")] * 2
    assert rows[-1][3]["preferences"] == {"theme": "dark", "hints": False}
    with pytest.raises(InvalidArguments):
        repo.set_profile(OWNER, email="someone-else@example.com")


def test_create_requires_verified_email_when_identity_is_on(repo: ProfileRepository) -> None:
    with pytest.raises(AuthError) as info:
        repo.create_project(Actor("u", "u@example.com", False), "x")
    assert info.value.data["reason"] == "email_not_verified"
    local = ProfileRepository(sqlite3.connect(":memory:"))
    assert local.create_project(LOCAL_ACTOR, "offline project").owner == "local"


def test_collaborator_sees_project_stranger_is_denied(
    repo: ProfileRepository, conn: sqlite3.Connection
) -> None:
    project = repo.create_project(OWNER, "leo", "search", folder_uri="file:///work/leo")
    pid = project.id
    repo.add_collaborator(OWNER, pid, uid=BOB.uid)
    repo.add_collaborator(OWNER, pid, email="carol@example.com")
    assert repo.get_project(BOB, pid).name == "leo"
    assert repo.get_project(CAROL, pid).name == "leo"  # by verified email, case-insensitive
    assert [p.id for p in repo.list_projects(BOB)] == [pid]
    with pytest.raises(AuthError, match="permission denied"):
        repo.get_project(STRANGER, pid)
    with pytest.raises(AuthError):
        repo.update_stats(STRANGER, pid, {"files": 1})
    with pytest.raises(AuthError):
        repo.link_folder(STRANGER, pid, "file:///tmp")
    assert repo.list_projects(STRANGER) == []
    # An unverified email does not unlock a project shared with that email.
    assert repo.list_projects(Actor("x", "carol@example.com", False)) == []
    with pytest.raises(AuthError, match="only the project's owner"):
        repo.add_collaborator(BOB, pid, uid=STRANGER.uid)
    with pytest.raises(NotFound):
        repo.get_project(OWNER, "nope")

    repo.remove_collaborator(OWNER, pid, uid=BOB.uid)
    with pytest.raises(AuthError):
        repo.get_project(BOB, pid)
    with pytest.raises(NotFound):
        repo.remove_collaborator(OWNER, pid, uid=BOB.uid)

    doc = outbox_rows(conn)[-1]
    assert doc[:3] == ("projects", pid, "set")
    assert doc[3]["collaborators"] == [] and doc[3]["collaboratorEmails"] == ["carol@example.com"]
    assert "folderUri" not in doc[3] and "file:///work/leo" not in json.dumps(doc[3])
    assert repo.project_for_folder(CAROL, "file:///work/leo") is not None
    assert repo.project_for_folder(STRANGER, "file:///work/leo") is None


def test_stats_merge_update_and_delete(repo: ProfileRepository, conn: sqlite3.Connection) -> None:
    pid = repo.create_project(OWNER, "p").id
    repo.add_collaborator(OWNER, pid, uid=BOB.uid)
    assert repo.update_stats(BOB, pid, {"files": 2, "chunks": 9}).stats == {"files": 2, "chunks": 9}
    repo.update_project(OWNER, pid, name="renamed")
    with pytest.raises(AuthError):
        repo.delete_project(BOB, pid)
    repo.delete_project(OWNER, pid)
    ops = [(c, op) for c, _, op, _ in outbox_rows(conn)]
    assert ops[-3:] == [("projects", "merge"), ("projects", "set"), ("projects", "delete")]
    with pytest.raises(NotFound):
        repo.get_project(OWNER, pid)


def test_a_failed_write_leaves_neither_change_nor_outbox_row(
    repo: ProfileRepository, conn: sqlite3.Connection
) -> None:
    pid = repo.create_project(OWNER, "p").id
    before = Outbox(conn).pending_count()
    with pytest.raises(InvalidArguments):
        repo.update_project(OWNER, pid, description="new", name="")
    assert repo.get_project(OWNER, pid).description == ""
    assert Outbox(conn).pending_count() == before
    with pytest.raises(InvalidArguments):
        repo.update_stats(OWNER, pid, {"content": "print(1)"})
    assert repo.get_project(OWNER, pid).stats == {}


def test_sync_off_writes_locally_only(conn: sqlite3.Connection) -> None:
    repo = ProfileRepository(conn)
    repo.set_profile(LOCAL_ACTOR, display_name="me")
    repo.create_project(LOCAL_ACTOR, "p")
    assert Outbox(conn).pending_count() == 0
