"""Local repository of the user's profile and projects (+ collaborators), with access checks.

Local first: every read and write works without Firebase. Each write commits its local change and,
when sync is on, its outbox row in one transaction. Access to a project = its owner or a
collaborator (by uid, or by email when the actor's email is verified); it is checked on every read
and write and a refusal is an `AuthError`. Adding or removing collaborators, renaming or deleting is
for the owner only. With `require_verified_email` (identity on) creating a project needs a verified
email, as in the seed backend.

The linked workspace folder (`folder_uri`) stays local: it is never synced.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from leo_lsp.cloud.outbox import Connection, assert_metadata_only, enqueue
from leo_lsp.cloud.outbox import ensure_schema as ensure_outbox_schema
from leo_lsp.errors import AuthError, InvalidArguments, NotFound

if TYPE_CHECKING:  # firebase-admin is imported only when Firebase is switched on
    from leo_lsp.cloud.firebase import VerifiedUser

SCHEMA = """
CREATE TABLE IF NOT EXISTS profile (
    uid          TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    email        TEXT,
    preferences  TEXT NOT NULL DEFAULT '{}',
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    owner       TEXT NOT NULL,
    folder_uri  TEXT,
    stats       TEXT NOT NULL DEFAULT '{}',
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS projects_owner ON projects (owner);
CREATE TABLE IF NOT EXISTS project_collaborators (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    member     TEXT NOT NULL,   -- 'uid:<uid>' or 'email:<lower-case email>'
    added_at   REAL NOT NULL,
    PRIMARY KEY (project_id, member)
);
CREATE INDEX IF NOT EXISTS project_collaborators_member ON project_collaborators (member);
"""

MAX_NAME = 200
MAX_DESCRIPTION = 2000


@dataclass(frozen=True)
class Actor:
    """Who is asking: the verified Firebase user, or the local user when identity is off."""

    uid: str
    email: str | None = None
    email_verified: bool = False

    @classmethod
    def from_user(cls, user: VerifiedUser) -> Actor:
        """The actor of a verified Firebase user."""
        return cls(user.uid, user.email, user.email_verified)


LOCAL_ACTOR = Actor("local")
"""The actor when Firebase identity is off: owns everything in this data dir."""


@dataclass(frozen=True)
class Profile:
    """The user's profile (synced to `users/{uid}`)."""

    uid: str
    display_name: str
    email: str | None
    preferences: dict[str, Any]
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """camelCase JSON for `leo.profile.get/set`."""
        return {
            "uid": self.uid,
            "displayName": self.display_name,
            "email": self.email,
            "preferences": self.preferences,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True)
class Collaborator:
    """A project member other than the owner, known by uid or by email."""

    uid: str | None
    email: str | None
    added_at: float

    def to_dict(self) -> dict[str, Any]:
        """camelCase JSON."""
        return {"uid": self.uid, "email": self.email, "addedAt": self.added_at}


@dataclass(frozen=True)
class Project:
    """A project record (synced to `projects/{id}`, except `folder_uri`)."""

    id: str
    name: str
    description: str
    owner: str
    created_at: float
    updated_at: float
    folder_uri: str | None = None
    collaborators: list[Collaborator] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """camelCase JSON for `leo.projects.*`."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "owner": self.owner,
            "collaborators": [c.to_dict() for c in self.collaborators],
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "folderUri": self.folder_uri,
            "stats": self.stats,
        }

    def firestore_doc(self) -> dict[str, Any]:
        """The `projects/{id}` document: metadata only, no local paths."""
        return {
            "name": self.name,
            "description": self.description,
            "owner": self.owner,
            "collaborators": sorted(c.uid for c in self.collaborators if c.uid),
            "collaboratorEmails": sorted(c.email for c in self.collaborators if c.email),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "stats": self.stats,
        }


def ensure_schema(conn: Connection) -> None:
    """Create the profile/projects/collaborators tables and the outbox (idempotent)."""
    conn.executescript(SCHEMA)
    ensure_outbox_schema(conn)


def _member(uid: str | None, email: str | None) -> str:
    if bool(uid) == bool(email):
        raise InvalidArguments("give exactly one of uid or email", field="uid")
    if uid:
        return f"uid:{uid}"
    assert email is not None
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise InvalidArguments(f"{email!r} is not an email address", field="email")
    return f"email:{email}"


class ProfileRepository:
    """Profile and projects on one sqlite connection; `sync=True` enqueues outbox rows."""

    def __init__(
        self,
        conn: Connection,
        *,
        sync: bool = False,
        require_verified_email: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conn = conn
        self.sync = sync
        self.require_verified_email = require_verified_email
        self._clock = clock
        ensure_schema(conn)
        conn.commit()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            yield self._conn
        except BaseException:
            self._conn.rollback()
            raise
        self._conn.commit()

    def _enqueue(
        self,
        actor: Actor,
        collection: str,
        doc_id: str,
        data: Mapping[str, Any] | None,
        op: str = "set",
    ) -> None:
        if self.sync:
            enqueue(self._conn, collection, doc_id, data, op, uid=actor.uid, now=self._clock())

    # -- profile -------------------------------------------------------------------------------

    def get_profile(self, actor: Actor) -> Profile:
        """The actor's profile (an empty one if never set); only their own."""
        row = self._conn.execute(
            "SELECT uid, display_name, email, preferences, created_at, updated_at FROM profile"
            " WHERE uid = ?",
            (actor.uid,),
        ).fetchone()
        if row is None:
            now = self._clock()
            return Profile(actor.uid, "", actor.email, {}, now, now)
        return Profile(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

    def set_profile(
        self,
        actor: Actor,
        *,
        display_name: str | None = None,
        email: str | None = None,
        preferences: Mapping[str, Any] | None = None,
    ) -> Profile:
        """Update the given fields of the actor's profile (preferences merge key by key)."""
        current = self.get_profile(actor)
        if display_name is not None and len(display_name) > MAX_NAME:
            raise InvalidArguments(
                f"displayName is longer than {MAX_NAME} characters", field="displayName"
            )
        if email is not None and actor.email and email.lower() != actor.email.lower():
            # The verified identity owns the email; a profile cannot claim another one.
            raise InvalidArguments("email must be the signed-in account's email", field="email")
        prefs = dict(current.preferences)
        if preferences is not None:
            if not isinstance(preferences, Mapping):
                raise InvalidArguments("preferences must be an object", field="preferences")
            assert_metadata_only({"preferences": dict(preferences)})
            prefs.update(preferences)
        now = self._clock()
        profile = Profile(
            actor.uid,
            current.display_name if display_name is None else display_name,
            current.email if email is None else email,
            prefs,
            current.created_at,
            now,
        )
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO profile (uid, display_name, email, preferences, created_at,"
                " updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO UPDATE SET"
                " display_name = excluded.display_name, email = excluded.email,"
                " preferences = excluded.preferences, updated_at = excluded.updated_at",
                (
                    profile.uid,
                    profile.display_name,
                    profile.email,
                    json.dumps(prefs),
                    profile.created_at,
                    now,
                ),
            )
            self._enqueue(
                actor,
                "users",
                actor.uid,
                {
                    "uid": actor.uid,
                    "displayName": profile.display_name,
                    "email": profile.email,
                    "preferences": prefs,
                    "createdAt": profile.created_at,
                    "updatedAt": now,
                },
            )
        return profile

    # -- projects ------------------------------------------------------------------------------

    def _load(self, project_id: str) -> Project:
        row = self._conn.execute(
            "SELECT id, name, description, owner, created_at, updated_at, folder_uri, stats"
            " FROM projects WHERE id = ?",
            (project_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no project {project_id!r}", projectId=project_id)
        collabs = []
        for member, added_at in self._conn.execute(
            "SELECT member, added_at FROM project_collaborators WHERE project_id = ?"
            " ORDER BY added_at, member",
            (project_id,),
        ):
            kind, _, value = str(member).partition(":")
            collabs.append(
                Collaborator(
                    value if kind == "uid" else None, value if kind == "email" else None, added_at
                )
            )
        return Project(
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], collabs, json.loads(row[7])
        )

    @staticmethod
    def can_access(actor: Actor, project: Project) -> bool:
        """Owner, or a collaborator by uid, or by email if the actor's email is verified."""
        if actor.uid == project.owner:
            return True
        for c in project.collaborators:
            if c.uid and c.uid == actor.uid:
                return True
            if (
                c.email
                and actor.email
                and actor.email_verified
                and (c.email == actor.email.lower())
            ):
                return True
        return False

    def _accessible(self, actor: Actor, project_id: str) -> Project:
        project = self._load(project_id)
        if not self.can_access(actor, project):
            raise AuthError(
                f"permission denied: you are neither the owner nor a collaborator of project "
                f"{project_id!r}",
                reason="forbidden",
                projectId=project_id,
            )
        return project

    def _owned(self, actor: Actor, project_id: str, what: str) -> Project:
        project = self._accessible(actor, project_id)
        if project.owner != actor.uid:
            raise AuthError(
                f"permission denied: only the project's owner can {what}",
                reason="forbidden",
                projectId=project_id,
            )
        return project

    def _sync_project(self, actor: Actor, project_id: str) -> Project:
        project = self._load(project_id)
        self._enqueue(actor, "projects", project.id, project.firestore_doc())
        return project

    def create_project(
        self,
        actor: Actor,
        name: str,
        description: str = "",
        *,
        folder_uri: str | None = None,
        project_id: str | None = None,
    ) -> Project:
        """Create a project owned by the actor (needs a verified email when identity is on)."""
        if self.require_verified_email and not actor.email_verified:
            raise AuthError(
                "verify your email address before creating projects", reason="email_not_verified"
            )
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidArguments(f"name must be 1–{MAX_NAME} characters", field="name")
        if len(description) > MAX_DESCRIPTION:
            raise InvalidArguments(
                f"description is longer than {MAX_DESCRIPTION} characters", field="description"
            )
        pid = project_id or uuid.uuid4().hex
        if "/" in pid or not pid:
            raise InvalidArguments(
                "projectId must be non-empty and contain no '/'", field="projectId"
            )
        now = self._clock()
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM projects WHERE id = ?", (pid,)).fetchone():
                raise InvalidArguments(f"project {pid!r} already exists", field="projectId")
            conn.execute(
                "INSERT INTO projects (id, name, description, owner, folder_uri, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (pid, name, description, actor.uid, folder_uri, now, now),
            )
            project = self._sync_project(actor, pid)
        return project

    def list_projects(self, actor: Actor) -> list[Project]:
        """Projects the actor owns or collaborates on, newest first."""
        members = [f"uid:{actor.uid}"]
        if actor.email and actor.email_verified:
            members.append(f"email:{actor.email.lower()}")
        rows = self._conn.execute(
            "SELECT id FROM projects WHERE owner = ? OR id IN (SELECT project_id FROM"
            f" project_collaborators WHERE member IN ({','.join('?' * len(members))}))"
            " ORDER BY created_at DESC, id",
            (actor.uid, *members),
        ).fetchall()
        return [self._load(r[0]) for r in rows]

    def get_project(self, actor: Actor, project_id: str) -> Project:
        """One project, if the actor may see it (NotFound / AuthError otherwise)."""
        return self._accessible(actor, project_id)

    def update_project(
        self,
        actor: Actor,
        project_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Project:
        """Rename or re-describe a project (owner only)."""
        self._owned(actor, project_id, "rename or re-describe it")
        with self._tx() as conn:
            if name is not None:
                if not name.strip() or len(name) > MAX_NAME:
                    raise InvalidArguments(f"name must be 1–{MAX_NAME} characters", field="name")
                conn.execute(
                    "UPDATE projects SET name = ? WHERE id = ?", (name.strip(), project_id)
                )
            if description is not None:
                conn.execute(
                    "UPDATE projects SET description = ? WHERE id = ?", (description, project_id)
                )
            conn.execute(
                "UPDATE projects SET updated_at = ? WHERE id = ?", (self._clock(), project_id)
            )
            return self._sync_project(actor, project_id)

    def delete_project(self, actor: Actor, project_id: str) -> None:
        """Delete a project (owner only); the Firestore document is deleted too."""
        self._owned(actor, project_id, "delete it")
        with self._tx() as conn:
            conn.execute("DELETE FROM project_collaborators WHERE project_id = ?", (project_id,))
            conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))
            self._enqueue(actor, "projects", project_id, None, op="delete")

    def link_folder(self, actor: Actor, project_id: str, folder_uri: str | None) -> Project:
        """Link a workspace folder to a project (any member; stays local, not synced)."""
        self._accessible(actor, project_id)
        with self._tx() as conn:
            conn.execute(
                "UPDATE projects SET folder_uri = ? WHERE id = ?", (folder_uri, project_id)
            )
        return self._load(project_id)

    def project_for_folder(self, actor: Actor, folder_uri: str) -> Project | None:
        """The project linked to a folder that the actor can access, if any."""
        for (pid,) in self._conn.execute(
            "SELECT id FROM projects WHERE folder_uri = ? ORDER BY created_at", (folder_uri,)
        ).fetchall():
            project = self._load(pid)
            if self.can_access(actor, project):
                return project
        return None

    def add_collaborator(
        self, actor: Actor, project_id: str, *, uid: str | None = None, email: str | None = None
    ) -> Project:
        """Add a collaborator by uid or email (owner only; adding twice is a no-op)."""
        member = _member(uid, email)
        project = self._owned(actor, project_id, "add collaborators")
        if member == f"uid:{project.owner}":
            raise InvalidArguments("the owner is already a member", field="uid")
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO project_collaborators (project_id, member, added_at)"
                " VALUES (?, ?, ?)",
                (project_id, member, self._clock()),
            )
            conn.execute(
                "UPDATE projects SET updated_at = ? WHERE id = ?", (self._clock(), project_id)
            )
            return self._sync_project(actor, project_id)

    def remove_collaborator(
        self, actor: Actor, project_id: str, *, uid: str | None = None, email: str | None = None
    ) -> Project:
        """Remove a collaborator by uid or email (owner only); NotFound if not a member."""
        member = _member(uid, email)
        self._owned(actor, project_id, "remove collaborators")
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM project_collaborators WHERE project_id = ? AND member = ?",
                (project_id, member),
            )
            if cur.rowcount == 0:
                raise NotFound(
                    f"{member.partition(':')[2]} is not a collaborator of {project_id!r}"
                )
            conn.execute(
                "UPDATE projects SET updated_at = ? WHERE id = ?", (self._clock(), project_id)
            )
            return self._sync_project(actor, project_id)

    def update_stats(self, actor: Actor, project_id: str, stats: Mapping[str, Any]) -> Project:
        """Replace a project's stats (files, chunks, languages…); any member; synced as a merge."""
        self._accessible(actor, project_id)
        assert_metadata_only({"stats": dict(stats)})
        with self._tx() as conn:
            conn.execute(
                "UPDATE projects SET stats = ? WHERE id = ?",
                (json.dumps(dict(stats), sort_keys=True), project_id),
            )
            self._enqueue(actor, "projects", project_id, {"stats": dict(stats)}, op="merge")
        return self._load(project_id)
