"""cloud: verified Firebase identity, local profile/projects, a durable outbox synced to Firestore.

Nothing here imports pygls or lsprotocol. Wiring (what the server does with it):

Start-up (firebase.enabled)::

    identity = Identity.from_settings(settings.firebase)          # never honours the emulator
    # AuthError(reason=...) on failure: leo keeps working locally and says why
    user = await identity.sign_in_async(settings.firebase.id_token)
    repo = ProfileRepository(conn, sync=True, require_verified_email=True)
    # the worker's own connection: sqlean.connect(db, check_same_thread=False)
    outbox = Outbox(sync_conn)
    worker = SyncWorker(outbox, FirestoreSink.from_app(identity.app), identity)
    worker.start()                 # asyncio task; await worker.stop(deadline=5) at shutdown
    limiter = RateLimiter.from_settings(settings.rate_limits)

With firebase off: `ProfileRepository(conn)` (sync=False) and the actor `LOCAL_ACTOR`; health is
`FirebaseHealth.disabled()`.

Commands → API (`actor = Actor.from_user(identity.require_user())`, or LOCAL_ACTOR):

    leo.auth.signIn {idToken}        identity.sign_in_async(token) → VerifiedUser; then
                                     worker.notify() (events queued for that uid now flow)
    leo.profile.get                  repo.get_profile(actor).to_dict()
    leo.profile.set {displayName?, email?, preferences?}
                                     repo.set_profile(actor, display_name=, email=, preferences=)
    leo.projects.create {name, description?, folderUri?}
                                     repo.create_project(actor, name, description, folder_uri=)
    leo.projects.list                [p.to_dict() for p in repo.list_projects(actor)]
    leo.projects.get {projectId}     repo.get_project(actor, project_id).to_dict()
    (collaborators)                  repo.add_collaborator / remove_collaborator(actor, pid,
                                     uid= | email=)   owner only
    (folder link)                    repo.link_folder(actor, pid, uri); repo.project_for_folder
    leo.projectStats                 after computing stats locally: repo.update_stats(actor, pid,
                                     {files, chunks, languages, denied, lastIndexed, searches})
    leo.overview                     repo.list_projects(actor) (+ the store's totals)
    leo.health → services.firebase   (await worker.health()).to_dict()  state: disabled |
                                     connected | offline (label "offline (n queued)") | auth error
    leo.search                       limiter.check(actor.uid, "leo.search") first (RateLimited has
                                     .retry_after); after the search, in the same transaction as
                                     any local write (or alone):
                                     enqueue(conn, "search_activity", new_event_id(),
                                             search_activity_payload(uid=, query=, result_count=,
                                             latency_ms=, project_id=, sync_queries=), uid=uid)
    struggles                        enqueue(conn, "struggles", struggle_doc_id(uid, pid, sig),
                                             {...aggregate, no code...}, uid=uid)
    after committing any enqueue     worker.notify()

Every error raised is from `leo_lsp.errors`: AuthError (data.reason: expired | revoked |
disabled | user_not_found | wrong_project | bad_signature | malformed | unreachable |
no_credentials | not_configured | emulator_env | signed_out | forbidden | email_not_verified),
NotFound, InvalidArguments (e.g. a payload that would carry code), RateLimited.

Guarantees: `enqueue` never commits (the caller's transaction decides); `assert_metadata_only`
refuses code-like keys (code, text, snippet, content…), long strings and JWT-shaped values; the
worker sends only events whose uid is the verified user's, writes with set()/merge/delete on the
document id fixed at enqueue time (a retry never duplicates), backs off with jitter when Firestore
is unreachable, and leaves undelivered events in the outbox across crashes and restarts.
"""

from typing import TYPE_CHECKING, Any

from leo_lsp.cloud.firestore_sink import (
    FirestoreSink,
    PermanentSinkError,
    Sink,
    TransientSinkError,
    coalesce,
)
from leo_lsp.cloud.outbox import (
    Outbox,
    OutboxEvent,
    assert_metadata_only,
    enqueue,
    ensure_schema,
    new_event_id,
    search_activity_payload,
    struggle_doc_id,
)
from leo_lsp.cloud.profiles import (
    LOCAL_ACTOR,
    Actor,
    Collaborator,
    Profile,
    ProfileRepository,
    Project,
)
from leo_lsp.cloud.ratelimit import RateLimiter
from leo_lsp.cloud.sync import Backoff, FirebaseHealth, SyncWorker

if TYPE_CHECKING:
    from leo_lsp.cloud.firebase import Identity, VerifiedUser, scrub

_LAZY = {"Identity", "VerifiedUser", "scrub"}


def __getattr__(name: str) -> Any:
    # firebase-admin takes ~0.5 s to import: only sessions with Firebase on should pay for it.
    if name in _LAZY:
        from leo_lsp.cloud import firebase

        return getattr(firebase, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LOCAL_ACTOR",
    "Actor",
    "Backoff",
    "Collaborator",
    "FirebaseHealth",
    "FirestoreSink",
    "Identity",
    "Outbox",
    "OutboxEvent",
    "PermanentSinkError",
    "Profile",
    "ProfileRepository",
    "Project",
    "RateLimiter",
    "Sink",
    "SyncWorker",
    "TransientSinkError",
    "VerifiedUser",
    "assert_metadata_only",
    "coalesce",
    "enqueue",
    "ensure_schema",
    "new_event_id",
    "scrub",
    "search_activity_payload",
    "struggle_doc_id",
]
