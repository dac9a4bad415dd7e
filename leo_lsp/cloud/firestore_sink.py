"""Where outbox events go: the `Sink` interface and its Firestore implementation.

A sink's `write(events)` is blocking (the worker calls it with `asyncio.to_thread`) and either
delivers every event or raises: `TransientSinkError` (offline, timeout, server busy: retry later)
or `PermanentSinkError` (the request itself is bad: retrying cannot help). Writes are idempotent:
each event is a `set()` (or merge/delete) of a document whose id was fixed when the event was
enqueued, so delivering a batch twice leaves the same documents.

Collections (compatible with the seed backend):
    users/{uid}               profile
    projects/{projectId}      owner, collaborators, stats
    struggles/{id}            one aggregated struggle signature per user and project
    search_activity/{eventId} query length, result count, latency (query text if syncQueries)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from leo_lsp.cloud.outbox import OutboxEvent

logger = logging.getLogger(__name__)

MAX_BATCH = 500  # Firestore's limit of writes per commit
TIMESTAMP_KEYS = frozenset({"timestamp", "firstSeen", "lastSeen", "lastIndexed"})


class TransientSinkError(Exception):
    """The sink could not deliver now; the same events may succeed later."""


class PermanentSinkError(Exception):
    """The sink rejected the events themselves; retrying the same request cannot succeed."""


class Sink(Protocol):
    """Delivers a batch of outbox events, all or nothing (raises on failure)."""

    def write(self, events: Sequence[OutboxEvent]) -> None: ...


def coalesce(events: Sequence[OutboxEvent]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Fold events on the same document into one write each, keeping first-seen order.

    set then merge → set of the merged fields; merge then merge → merged merge; delete wins until a
    later set. Result rows: (collection, doc_id, op, payload).
    """
    out: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for ev in events:
        key = (ev.collection, ev.doc_id)
        prev = out.get(key)
        if ev.op == "merge" and prev is not None and prev[0] in ("set", "merge"):
            out[key] = (prev[0], {**prev[1], **ev.payload})
        elif ev.op == "merge" and prev is not None and prev[0] == "delete":
            out[key] = ("set", dict(ev.payload))
        else:
            out[key] = (ev.op, dict(ev.payload))
    return [(c, d, op, payload) for (c, d), (op, payload) in out.items()]


def to_firestore(value: Any, key: str = "") -> Any:
    """Encode a JSON payload for Firestore: epoch seconds under timestamp-like keys → datetime."""
    if isinstance(value, dict):
        return {k: to_firestore(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [to_firestore(v) for v in value]
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (key in TIMESTAMP_KEYS or key.endswith("At"))
    ):
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    return value


class FirestoreSink:
    """Writes events with one batched commit per call through a `google.cloud.firestore.Client`."""

    def __init__(self, client: Any, *, timeout: float = 20.0) -> None:
        self._client = client
        self._timeout = timeout

    @classmethod
    def from_app(cls, app: Any, *, timeout: float = 20.0) -> FirestoreSink:
        """A sink using the Firestore client of a firebase-admin app (its credentials/project)."""
        from firebase_admin import firestore  # imports google-cloud-firestore; only when syncing

        return cls(firestore.client(app), timeout=timeout)

    def write(self, events: Sequence[OutboxEvent]) -> None:
        """Commit every event (in chunks of 500 writes); raise Transient/PermanentSinkError."""
        from google.api_core import exceptions as gexc

        writes = coalesce(events)
        for start in range(0, len(writes), MAX_BATCH):
            batch = self._client.batch()
            for collection, doc_id, op, payload in writes[start : start + MAX_BATCH]:
                ref = self._client.collection(collection).document(doc_id)
                if op == "delete":
                    batch.delete(ref)
                else:
                    batch.set(ref, to_firestore(payload), merge=(op == "merge"))
            try:
                # retry=None: the worker owns retries (with backoff), so a commit never hangs
                # inside the client's own retry loop while Firestore is down.
                batch.commit(retry=None, timeout=self._timeout)
            except (gexc.InvalidArgument, gexc.FailedPrecondition, gexc.OutOfRange) as exc:
                raise PermanentSinkError(f"Firestore rejected the batch: {exc}") from exc
            except (TypeError, ValueError) as exc:
                raise PermanentSinkError(f"cannot encode the batch: {exc}") from exc
            except (gexc.GoogleAPIError, OSError) as exc:
                # Unavailable, DeadlineExceeded, PermissionDenied (fixable config), transport.
                raise TransientSinkError(f"Firestore write failed: {exc}") from exc
            except Exception as exc:  # e.g. google.auth refresh errors while offline
                raise TransientSinkError(f"Firestore write failed: {exc!r}") from exc
