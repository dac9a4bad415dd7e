"""SyncWorker: an asyncio task that drains the outbox to a sink (Firestore) in the background.

The editor never waits on it: every database and network call runs on the worker's own thread
(one thread, so the outbox connection is only ever used by one thread at a time; open it with
`check_same_thread=False` since it is created elsewhere). Batches go out oldest first; a
transient failure (offline, timeout) pauses the worker with exponential backoff and jitter and
leaves the rows pending; a permanent failure isolates the bad event(s) by retrying one by one and
parks only those. Only events of the currently verified uid are sent: events queued for another
user wait until that user signs in again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from leo_lsp.cloud.firestore_sink import PermanentSinkError, Sink, TransientSinkError
from leo_lsp.cloud.outbox import Outbox, OutboxEvent

if TYPE_CHECKING:  # firebase-admin is imported only when Firebase is switched on
    from leo_lsp.cloud.firebase import VerifiedUser

logger = logging.getLogger(__name__)

T = TypeVar("T")


class UserSource(Protocol):
    """Anything that knows the current verified user (`firebase.Identity`)."""

    @property
    def user(self) -> VerifiedUser | None: ...

    @property
    def error(self) -> Any: ...


@dataclass
class Backoff:
    """Exponential backoff with jitter: `base * 2**(attempt-1)`, capped, minus up to `jitter`."""

    base: float = 1.0
    cap: float = 300.0
    jitter: float = 0.5
    rng: random.Random | None = None

    def __call__(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt ≥ 1)."""
        raw = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        # Jitter spreads retries of many clients after an outage instead of synchronising them.
        r: float = (self.rng or random).random()
        return float(raw * (1.0 - self.jitter * r))


@dataclass(frozen=True)
class FirebaseHealth:
    """What `leo.health` shows for firebase: state is disabled|connected|offline|auth error."""

    state: str
    queued: int = 0
    dead: int = 0
    uid: str | None = None
    message: str = ""

    @classmethod
    def disabled(cls) -> FirebaseHealth:
        """Firebase sync is switched off in the settings."""
        return cls(state="disabled", message="firebase.enabled is false")

    def label(self) -> str:
        """One line: `connected`, `offline (3 queued)`, `auth error: …`, `disabled`."""
        if self.state == "offline":
            return f"offline ({self.queued} queued)"
        if self.state == "auth error":
            return f"auth error: {self.message}"
        return self.state

    def to_dict(self) -> dict[str, Any]:
        """JSON for `leo.health`'s `services.firebase`."""
        return {
            "state": self.state,
            "label": self.label(),
            "queued": self.queued,
            "dead": self.dead,
            "uid": self.uid,
            "message": self.message,
        }


class SyncWorker:
    """Drains `outbox` into `sink` for the verified user of `identity`; start() / stop()."""

    def __init__(
        self,
        outbox: Outbox,
        sink: Sink,
        identity: UserSource,
        *,
        batch_size: int = 200,
        backoff: Callable[[int], float] | None = None,
        clock: Callable[[], float] = time.time,
        idle_poll: float = 30.0,
    ) -> None:
        self._outbox = outbox
        self._sink = sink
        self._identity = identity
        self._batch_size = batch_size
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._idle_poll = idle_poll
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="leo-sync"
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = 0
        self._paused_until = 0.0
        self.online: bool | None = None
        """None until the first attempt, then whether the last attempt reached the sink."""
        self.last_error: str | None = None
        self.delivered = 0
        """Events delivered since start (after coalescing, events, not writes)."""
        self.attempts = 0
        """Sink calls made (batches)."""

    async def _run_io(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start draining in the background (call from the running event loop)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="leo-sync")
        return self._task

    def notify(self) -> None:
        """Wake the worker: new events were committed (call from the event loop thread)."""
        self._wake.set()

    async def stop(self, deadline: float = 5.0) -> None:
        """Send what is due within `deadline` seconds, then stop; unsent events stay queued."""
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=deadline)
            except TimeoutError:
                task.cancel()
                logger.warning("sync stopped at its %.1f s deadline; events stay queued", deadline)
            except Exception:  # the task's own failure was already logged
                pass
        # A write still running in the thread finishes on its own; its rows keep their lease and
        # are released at the next start (a late duplicate write is harmless: writes are set()).
        self._executor.shutdown(wait=False)

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._run_io(self._outbox.release_claims)
        except Exception:
            logger.exception("sync: cannot release stale claims")
        while True:
            wait = self._idle_poll
            try:
                sent = await self.drain_once()
                if self._stopping and (sent == 0 or self.online is False):
                    return
                if sent > 0:
                    continue
                wait = await self._seconds_until_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("sync worker iteration failed; retrying")
                if self._stopping:
                    return
            self._wake.clear()
            if wait > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                except TimeoutError:
                    pass

    async def _seconds_until_due(self) -> float:
        now = self._clock()
        if self._paused_until > now:
            return self._paused_until - now
        due = await self._run_io(self._outbox.next_due_at)
        if due is None:
            return self._idle_poll
        return max(0.0, min(self._idle_poll, due - now))

    async def drain_once(self) -> int:
        """Claim one batch of due events for the verified user and deliver it; return the count.

        Returns 0 when nothing is due, no user is verified, or the worker is backing off.
        """
        now = self._clock()
        if now < self._paused_until and not self._stopping:
            return 0
        user = self._identity.user
        if user is None:
            return 0
        events = await self._run_io(
            functools.partial(self._outbox.claim_batch, self._batch_size, now, uids=[user.uid])
        )
        if not events:
            return 0
        self.attempts += 1
        started = time.perf_counter()
        try:
            await self._run_io(self._sink.write, events)
        except TransientSinkError as exc:
            await self._failed(events, str(exc))
            return 0
        except PermanentSinkError as exc:
            return await self._isolate(events, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an unexpected sink bug must not lose events: treat as transient
            await self._failed(events, f"{type(exc).__name__}: {exc}")
            return 0
        await self._run_io(self._outbox.mark_done, [e.id for e in events])
        self._succeeded()
        self.delivered += len(events)
        logger.debug(
            "sync: delivered %d events in %.1f ms",
            len(events),
            (time.perf_counter() - started) * 1000,
        )
        return len(events)

    def _succeeded(self) -> None:
        if self.online is False:
            logger.info("sync: Firestore reachable again")
        self.online, self.last_error, self._failures, self._paused_until = True, None, 0, 0.0

    async def _failed(self, events: Sequence[OutboxEvent], error: str) -> None:
        self._failures += 1
        delay = self._backoff(self._failures)
        now = self._clock()
        self._paused_until = now + delay
        if self.online is not False:
            logger.warning(
                "sync: offline (%s); %d events stay queued, retry in %.1f s",
                error,
                len(events),
                delay,
            )
        self.online, self.last_error = False, error
        await self._run_io(
            self._outbox.mark_failed, [e.id for e in events], error, self._backoff, now
        )

    async def _isolate(self, events: Sequence[OutboxEvent], error: str) -> int:
        """A batch was rejected: send its events one by one, park only the bad ones."""
        if len(events) == 1:
            logger.error(
                "sync: event %s/%s rejected permanently: %s",
                events[0].collection,
                events[0].doc_id,
                error,
            )
            await self._run_io(self._outbox.mark_dead, [events[0].id], error)
            self._succeeded()  # the sink answered: we are online
            return 0
        delivered = 0
        for i, ev in enumerate(events):
            try:
                await self._run_io(self._sink.write, [ev])
            except PermanentSinkError as exc:
                logger.error(
                    "sync: event %s/%s rejected permanently: %s", ev.collection, ev.doc_id, exc
                )
                await self._run_io(self._outbox.mark_dead, [ev.id], str(exc))
                continue
            except Exception as exc:
                await self._failed(events[i:], str(exc))
                return delivered
            await self._run_io(self._outbox.mark_done, [ev.id])
            delivered += 1
        self._succeeded()
        self.delivered += delivered
        return delivered

    # -- status --------------------------------------------------------------------------------

    async def health(self) -> FirebaseHealth:
        """disabled | connected | offline (n queued) | auth error, with the queue length."""
        queued = await self._run_io(self._outbox.pending_count)
        dead = await self._run_io(self._outbox.dead_count)
        user = self._identity.user
        if user is None:
            err = self._identity.error
            message = getattr(err, "message", None) or "not signed in"
            return FirebaseHealth("auth error", queued, dead, None, message)
        if self.online is False:
            return FirebaseHealth("offline", queued, dead, user.uid, self.last_error or "")
        return FirebaseHealth("connected", queued, dead, user.uid, "")
