"""Structured JSON-lines logging to stderr or a file, and a handler mirroring records to the client.

stdout is the LSP channel, so nothing here ever writes to it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Tokens and keys must never reach a log line, whichever module formats them.
_SECRETISH = re.compile(
    r"(eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{4,}"  # JWTs (Firebase ID tokens)
    r"|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{20}"
    r"|xox[abprs]-[\w-]{10,}|sk_live_\w{10,}|AIza[\w-]{35}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
)


def scrub(text: str) -> str:
    """Replace anything that looks like a token or key with a marker."""
    return _SECRETISH.sub("«redacted»", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    _std = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "t": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in self._std and not key.startswith("_"):
                out[key] = value if isinstance(value, int | float | bool) else scrub(str(value))
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


class ClientLogHandler(logging.Handler):
    """Forwards leo's log records to the client as window/logMessage.

    pygls's own records are dropped: sending a message logs, which would recurse.
    """

    def __init__(self, send: Callable[[int, str], None], level: int = logging.INFO) -> None:
        super().__init__(level)
        self._send = send
        self._busy = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("pygls") or self._busy:
            return
        self._busy = True
        try:
            self._send(record.levelno, scrub(record.getMessage()))
        except Exception:  # the client may be gone; logging must never raise
            pass
        finally:
            self._busy = False


def configure(verbose: int = 0, log_file: str | None = None, *, quiet: bool = False) -> None:
    """Route leo's logs as JSON lines to stderr or `log_file` (warnings only when `quiet`)."""
    handler: logging.Handler
    if log_file:
        Path(log_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(log_file).expanduser(), encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = logging.DEBUG if verbose >= 2 else logging.INFO
    logging.getLogger("leo_lsp").setLevel(logging.WARNING if quiet else level)
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)


@contextmanager
def timed(logger: logging.Logger, what: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """Log how long a block took, as a structured `ms` field."""
    t0 = time.perf_counter()
    info: dict[str, Any] = dict(fields)
    try:
        yield info
    finally:
        info["ms"] = round((time.perf_counter() - t0) * 1000, 2)
        logger.debug("%s took %.1f ms", what, info["ms"], extra=info)
