"""One error tree for leo; each class maps to one JSON-RPC code and a message a person can act on.

    LeoError                      -32603 internal error (base)
    ├── InvalidArguments          -32602 invalid params (names the field)
    ├── UnknownCommand            -32601 method not found
    ├── NotFound                  -32602 (unknown project, file or uri)
    ├── OutsideWorkspace          -32602 (a path outside every folder and the data dir)
    ├── GatekeeperError           -32001 (the gatekeeper could not decide)
    ├── UpstreamError             -32007 (an OpenAI-compatible server failed or answered garbage)
    │   └── EmbeddingUnavailable  -32002 (the embedding model/server cannot embed now)
    ├── StoreError                -32003 (the index database failed)
    ├── SyncError                 -32004 (Firebase sync failed)
    ├── AuthError                 -32005 (an ID token did not verify / access denied)
    └── RateLimited               -32006 (retry after `retry_after` seconds)

Services raise these; only `features/` turns them into JSON-RPC errors.
"""

from __future__ import annotations

from typing import Any


class LeoError(Exception):
    """Base of every error leo raises on purpose."""

    code: int = -32603

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = data


class InvalidArguments(LeoError):
    """A command's argument is missing or has the wrong type or value."""

    code = -32602


class UnknownCommand(LeoError):
    """The command name is not one leo knows."""

    code = -32601


class NotFound(LeoError):
    """A project, file or uri the request named does not exist."""

    code = -32602


class OutsideWorkspace(LeoError):
    """A path lies outside every workspace folder and the data dir."""

    code = -32602


class GatekeeperError(LeoError):
    """The gatekeeper could not reach a decision."""

    code = -32001


class UpstreamError(LeoError):
    """An OpenAI-compatible server (LM Studio) is unreachable, failed, or answered garbage."""

    code = -32007


class EmbeddingUnavailable(UpstreamError):
    """The embedding model or server cannot embed right now."""

    code = -32002


class StoreError(LeoError):
    """The index database failed."""

    code = -32003


class SyncError(LeoError):
    """Syncing to Firebase failed."""

    code = -32004


class AuthError(LeoError):
    """An identity token did not verify, or access was denied."""

    code = -32005


class RateLimited(LeoError):
    """Too many requests; `retry_after` says how many seconds to wait."""

    code = -32006

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retryAfter=round(retry_after, 1))
        self.retry_after = retry_after
