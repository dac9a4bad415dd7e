"""CloudService: the one object the server holds for identity, profile/projects, outbox and limits.

Built from Settings and the user database (data dir/leo.sqlite3, where profile, projects,
struggles and the outbox live, so a local write and its outbox row commit together). Plain Python:
the protocol stops at `features/`.

Who is acting (`actor()`):
- firebase.enabled = false (the default): `LOCAL_ACTOR`. Profile and project commands work on the
  local repository, and **nothing is enqueued**: there is no verified uid to scope a write, and
  rows queued under no uid could later be claimed by whoever signs in first.
- firebase.enabled = true and a token verified: that user; writes enqueue outbox rows under the
  uid and the sync worker drains them to Firestore.
- firebase.enabled = true but no valid token (expired, revoked, offline…): search, indexing and
  struggles keep working locally; profile/project commands answer AuthError saying why (they are
  the user's cloud records), search activity and struggle metadata are not queued until a
  `leo.auth.signIn` verifies a fresh token.

Start-up (`start`) never raises: it returns the messages to show the user instead. The token is
never logged (Identity scrubs every message it raises).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from leo_lsp.cloud.firestore_sink import FirestoreSink, Sink
from leo_lsp.cloud.outbox import (
    Outbox,
    enqueue,
    new_event_id,
    search_activity_payload,
    struggle_doc_id,
)
from leo_lsp.cloud.profiles import LOCAL_ACTOR, Actor, ProfileRepository
from leo_lsp.cloud.ratelimit import RateLimiter
from leo_lsp.cloud.sync import FirebaseHealth, SyncWorker
from leo_lsp.errors import AuthError
from leo_lsp.settings import RateLimitSettings, Settings
from leo_lsp.store.database import connect
from leo_lsp.store.user_db import UserDatabase

if TYPE_CHECKING:  # firebase-admin is imported only when Firebase is switched on
    from leo_lsp.cloud.firebase import Identity

logger = logging.getLogger(__name__)

T = TypeVar("T")

STOP_DEADLINE = 5.0
"""Seconds the worker may spend sending what is due at shutdown; the rest stays queued."""
START_WAIT = 15.0
"""How long a command waits for start-up (certificate fetch, revocation check) to finish."""
MAX_MESSAGE_CHARS = 500

SinkFactory = Callable[["Identity"], Sink]


class CloudService:
    """Identity, the profile/project repository, the outbox + sync worker, and rate limits."""

    def __init__(
        self,
        settings: Settings,
        user_db: UserDatabase,
        *,
        identity: Identity | None = None,
        sink_factory: SinkFactory | None = None,
    ) -> None:
        self._settings = settings
        self._db = user_db
        self.enabled = settings.firebase.enabled
        with user_db.lock:
            self._local_repo = ProfileRepository(user_db.conn)
            # Synced writes need a verified email to create projects, as the seed backend did.
            self._sync_repo = ProfileRepository(
                user_db.conn, sync=True, require_verified_email=True
            )
        self.limiter = RateLimiter.from_settings(settings.rate_limits)
        self.identity: Identity | None = None
        if self.enabled:
            from leo_lsp.cloud.firebase import Identity

            self.identity = identity or Identity.from_settings(settings.firebase)
        self._sink_factory: SinkFactory = sink_factory or (lambda ident: _firestore_sink(ident))
        self._worker: SyncWorker | None = None
        self._worker_conn: Any = None
        self._setup_error: AuthError | None = None
        self._start_task: asyncio.Task[list[str]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Sign in with firebase.idToken and start the sync worker; return messages for the user.

        Idempotent: later calls wait for the first and return the same messages. Never raises.
        """
        if self._start_task is None:
            self._loop = asyncio.get_running_loop()
            self._start_task = self._loop.create_task(self._start(), name="leo-cloud-start")
        return list(await asyncio.shield(self._start_task))

    async def _start(self) -> list[str]:
        if not self.enabled or self.identity is None:
            return []
        identity = self.identity
        notes: list[str] = []
        try:
            sink = await asyncio.to_thread(self._sink_factory, identity)
        except AuthError as exc:
            self._setup_error = exc
            notes.append(f"Firebase sync is off: {exc.message}. leo keeps working locally.")
            logger.warning("firebase: %s", exc.message)
            return notes
        except Exception as exc:  # the Firestore client could not be built (config, import)
            self._setup_error = AuthError(
                f"cannot create the Firestore client: {exc}", reason="not_configured"
            )
            notes.append(f"Firebase sync is off: {self._setup_error.message}.")
            logger.warning("firebase: %s", self._setup_error.message)
            return notes
        token = self._settings.firebase.id_token
        if token:
            try:
                await identity.sign_in_async(token)
            except AuthError as exc:
                notes.append(
                    f"Firebase sign-in failed ({exc.data.get('reason', 'error')}): {exc.message}."
                    " leo keeps working locally; send leo.auth.signIn {idToken} with a fresh"
                    " token to sync."
                )
        else:
            notes.append(
                "firebase.enabled is on but no firebase.idToken was given: leo works locally "
                "until leo.auth.signIn {idToken}."
            )
        try:
            self._worker_conn, _ = await asyncio.to_thread(connect, self._db.path, load_vec=False)
            # Transactions like the user database's own connection: Outbox commits explicitly.
            self._worker_conn.isolation_level = "DEFERRED"
            outbox = await asyncio.to_thread(Outbox, self._worker_conn)
        except Exception as exc:  # events stay queued in the database for the next session
            logger.exception("firebase: cannot open the outbox for syncing")
            notes.append(f"Firebase sync cannot start ({exc}); events stay queued locally.")
            return notes
        self._worker = SyncWorker(outbox, sink, identity)
        self._worker.start()
        return notes

    async def ready(self) -> None:
        """Wait (bounded) until start-up has finished; starts it if nobody did."""
        if self._start_task is None:
            await self.start()
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._start_task), START_WAIT)
        except TimeoutError:
            logger.warning("firebase start-up is still running after %.0f s", START_WAIT)

    async def stop(self, deadline: float = STOP_DEADLINE) -> None:
        """Stop the sync worker (sending what is due within `deadline` s) and release resources."""
        if self._closed:
            return
        self._closed = True
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop(deadline=deadline)
        for task in list(self._tasks):
            task.cancel()
        if self._worker_conn is not None:
            try:
                self._worker_conn.close()
            except Exception:  # a write still running in the worker thread holds it
                logger.debug("sync connection close deferred", exc_info=True)
            self._worker_conn = None
        if self.identity is not None:
            self.identity.close()

    async def close(self) -> None:
        """Same as `stop()` with the default deadline (Services.close calls this)."""
        await self.stop()

    def apply_rate_limits(self, settings: RateLimitSettings) -> None:
        """Take new rate limits live (didChangeConfiguration)."""
        self._settings.rate_limits = settings
        for command in ("leo.search", "workspace/symbol"):
            self.limiter.configure(command, settings.search_per_hour)

    # -- identity ------------------------------------------------------------------------------

    def _verified_actor(self) -> Actor | None:
        user = self.identity.user if self.identity is not None else None
        return Actor.from_user(user) if user is not None else None

    async def actor(self) -> Actor:
        """Who is acting: LOCAL_ACTOR with Firebase off, else the verified user (or AuthError)."""
        if not self.enabled or self.identity is None:
            return LOCAL_ACTOR
        await self.ready()
        if self._setup_error is not None:
            raise AuthError(
                f"Firebase is not usable: {self._setup_error.message}", **self._setup_error.data
            )
        return Actor.from_user(self.identity.require_user())

    async def sign_in(self, id_token: str) -> dict[str, Any]:
        """Verify a token and make its user current; queued events of that uid start flowing."""
        if not self.enabled or self.identity is None:
            raise AuthError(
                "Firebase is disabled: set firebase.enabled (and firebase.projectId) to sign in",
                reason="not_configured",
            )
        await self.ready()
        user = await self.identity.sign_in_async(id_token)
        if self._worker is not None:
            self._worker.notify()
        return {"uid": user.uid, "email": user.email, "emailVerified": user.email_verified}

    # -- profile and projects ------------------------------------------------------------------

    def _repo_for(self, actor: Actor) -> ProfileRepository:
        return self._local_repo if actor is LOCAL_ACTOR else self._sync_repo

    def _locked(self, fn: Callable[[], T]) -> T:
        with self._db.lock:
            return fn()

    async def call(self, op: Callable[[ProfileRepository, Actor], T]) -> T:
        """Run one repository operation as the current actor, off the event loop, then sync."""
        actor = await self.actor()
        repo = self._repo_for(actor)
        result = await asyncio.to_thread(self._locked, functools.partial(op, repo, actor))
        self._notify()
        return result

    async def update_folder_stats(self, folder_uri: str, stats: dict[str, Any]) -> str | None:
        """Store (and sync) the stats of the project linked to `folder_uri`; its id, or None.

        Never raises: stats are a side effect of `leo.projectStats`, which must not fail on them.
        """
        try:
            actor = await self.actor()
        except AuthError:
            return None
        repo = self._repo_for(actor)
        doc = {k: stats.get(k) for k in _STAT_KEYS if k in stats}

        def write() -> str | None:
            project = repo.project_for_folder(actor, folder_uri)
            if project is None:
                return None
            repo.update_stats(actor, project.id, doc)
            return project.id

        try:
            pid = await asyncio.to_thread(self._locked, write)
        except Exception:
            logger.exception("could not update the stats of the project linked to %s", folder_uri)
            return None
        self._notify()
        return pid

    async def linked_project(self, folder_uri: str) -> str | None:
        """The cloud project id linked to a folder the actor can access, if any."""
        try:
            actor = await self.actor()
        except AuthError:
            return None
        repo = self._repo_for(actor)
        project = await asyncio.to_thread(
            self._locked, functools.partial(repo.project_for_folder, actor, folder_uri)
        )
        return None if project is None else project.id

    # -- rate limits and activity --------------------------------------------------------------

    async def check_rate(self, command: str) -> None:
        """Take one token of `command` for the current user (RateLimited when exhausted)."""
        uid = LOCAL_ACTOR.uid
        if self.enabled:
            await self.ready()
            actor = self._verified_actor()
            uid = actor.uid if actor is not None else LOCAL_ACTOR.uid
        self.limiter.check(uid, command)

    async def record_search(
        self,
        *,
        query: str,
        result_count: int,
        latency_ms: float,
        mode: str = "hybrid",
        project_id: str | None = None,
    ) -> bool:
        """Queue one `search_activity` event (metadata only); True if queued. Never raises."""
        actor = self._verified_actor()
        if actor is None:
            return False
        payload = search_activity_payload(
            uid=actor.uid,
            query=query,
            result_count=result_count,
            latency_ms=latency_ms,
            project_id=project_id,
            mode=mode,
            sync_queries=self._settings.firebase.sync_queries,
        )

        def write() -> None:
            conn = self._db.conn
            try:
                enqueue(conn, "search_activity", new_event_id(), payload, uid=actor.uid)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

        try:
            await asyncio.to_thread(self._locked, write)
        except Exception:
            logger.exception("could not queue search activity")
            return False
        self._notify()
        return True

    def struggle_hook(self, conn: Any, metadata: dict[str, Any]) -> None:
        """StruggleService.on_event hook: queue the struggle's aggregate in the same transaction.

        Runs on the struggle writer's thread, inside its transaction, holding the database lock.
        The file uri stays local (it names the user's paths); the document is one per user,
        project and signature, merged so that every event refreshes it.
        """
        actor = self._verified_actor()
        if actor is None:
            return
        project = str(metadata.get("projectId") or "")
        signature = str(metadata.get("signature") or "")
        if not signature:
            return
        doc = {
            "userId": actor.uid,
            "projectId": project or None,
            "signature": signature,
            "category": metadata.get("category"),
            "message": str(metadata.get("message") or "")[:MAX_MESSAGE_CHARS],
            "language": metadata.get("language"),
            "origin": metadata.get("origin"),
            "occurrences": metadata.get("occurrences"),
            "firstSeen": metadata.get("firstSeen"),
            "lastSeen": metadata.get("lastSeen"),
            "open": metadata.get("open"),
            "lastEvent": metadata.get("kind"),
        }
        try:
            enqueue(
                conn,
                "struggles",
                struggle_doc_id(actor.uid, project, signature),
                doc,
                op="merge",
                uid=actor.uid,
            )
        except Exception:  # never fail the local struggle write because of sync
            logger.exception("could not queue the struggle %s", signature)
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._notify_after_commit)

    def _notify_after_commit(self) -> None:
        # The hook ran before its transaction committed; the writer holds the database lock until
        # after the commit, so waking the worker once the lock is free means the row is visible.
        if self._worker is None or self._loop is None:
            return

        async def wake() -> None:
            await asyncio.to_thread(self._locked, lambda: None)
            self._notify()

        task = self._loop.create_task(wake())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify(self) -> None:
        if self._worker is not None:
            self._worker.notify()

    # -- status --------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """`leo.health`'s firebase entry: disabled | connected | offline (n queued) | auth error."""
        if not self.enabled or self.identity is None:
            h = FirebaseHealth.disabled()
        else:
            await self.ready()
            # Counted on the main connection: the worker's thread may be blocked on a slow write.
            queued, dead = await asyncio.to_thread(self._locked, self._counts)
            user = self.identity.user
            worker = self._worker
            if self._setup_error is not None:
                h = FirebaseHealth("auth error", queued, dead, None, self._setup_error.message)
            elif user is None:
                err = self.identity.error
                message = getattr(err, "message", None) or "not signed in"
                h = FirebaseHealth("auth error", queued, dead, None, message)
            elif worker is not None and worker.online is False:
                h = FirebaseHealth("offline", queued, dead, user.uid, worker.last_error or "")
            else:
                h = FirebaseHealth("connected", queued, dead, user.uid, "")
        return {"status": h.state, **h.to_dict()}

    def _counts(self) -> tuple[int, int]:
        row = self._db.conn.execute(
            "SELECT coalesce(sum(dead = 0), 0), coalesce(sum(dead = 1), 0) FROM outbox"
        ).fetchone()
        return int(row[0]), int(row[1])


_STAT_KEYS = ("files", "chunks", "languages", "denied", "lastIndexed", "searches")


def _firestore_sink(identity: Identity) -> Sink:
    """The production sink: Firestore through the identity's firebase-admin app."""
    started = time.perf_counter()
    sink = FirestoreSink.from_app(identity.app)
    logger.debug("firestore client ready in %.0f ms", (time.perf_counter() - started) * 1000)
    return sink
