"""The struggle service: detector + repository + hints, behind four calls the server makes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from leo_lsp.errors import InvalidArguments
from leo_lsp.gatekeeper.secrets import redact
from leo_lsp.log import scrub
from leo_lsp.settings import StruggleSettings
from leo_lsp.struggle.detector import (
    OPENED,
    RESOLVED,
    ObservedDiagnostic,
    StruggleDetector,
    StruggleEvent,
)
from leo_lsp.struggle.hints import Hint, SearchFn, build_hint
from leo_lsp.struggle.repository import StruggleRepository, ensure_schema

logger = logging.getLogger(__name__)

EventHook = Callable[[Any, dict[str, Any]], None]


class StruggleService:
    """Turns observed errors into persisted struggles and publishable hints."""

    def __init__(
        self,
        settings: StruggleSettings,
        conn: Any,
        lock: Any,
        search: SearchFn,
        project_of: Callable[[str], str],
    ) -> None:
        self.settings = settings
        self._lock = lock
        self._search = search
        self._project_of = project_of
        with lock:
            ensure_schema(conn)
            self.repo = StruggleRepository(conn)
            fixes = self.repo.all_fixes()
        self.detector = StruggleDetector(settings.threshold, settings.window_seconds)
        self.detector.fixes.load(fixes)
        self._hints: dict[str, dict[str, Hint]] = {}  # uri → signature → hint
        self._generation: dict[tuple[str, str], int] = {}  # (uri, signature) → events handled
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leo-struggles")

    @property
    def on_event(self) -> list[EventHook]:
        """Hooks called in the struggle row's transaction with (conn, metadata) — the outbox."""
        hooks: list[EventHook] = self.repo.on_event
        return hooks

    def apply_settings(self, settings: StruggleSettings) -> None:
        """Take new thresholds live."""
        self.settings = settings
        self.detector.threshold = settings.threshold
        self.detector.window_seconds = settings.window_seconds

    async def observe(
        self, uri: str, diagnostics: Sequence[ObservedDiagnostic], text: str | None
    ) -> set[str]:
        """A file's full current diagnostics; returns the uris whose hints changed."""
        if not self.settings.enabled:
            return set()
        # Messages can quote values (a token in a failing request): they are stored, so redact.
        diagnostics = [
            dataclasses.replace(d, message=scrub(redact(d.message)[0])) for d in diagnostics
        ]
        events = self.detector.observe(uri, diagnostics, text)
        return await self._handle(events)

    async def observe_syntax(self, uri: str, error_lines: list[int], text: str) -> set[str]:
        """leo's own signal: parse errors that persist across edits (no client support needed)."""
        if not self.settings.enabled:
            return set()
        return await self._handle(self.detector.observe_syntax_errors(uri, error_lines, text))

    async def observe_edit(self, uri: str, lines: range, text: str | None) -> set[str]:
        """Edit churn: the same lines rewritten again and again."""
        if not self.settings.enabled:
            return set()
        return await self._handle(self.detector.observe_edit(uri, lines, text))

    async def report(
        self, message: str, uri: str | None, line: int | None, language: str | None
    ) -> dict[str, Any]:
        """leo.reportStruggle: count one reported error; attach a hint once it is a struggle.

        `open`: the error is a struggle now; `opened`: this very report made it one (a terminal
        integration can notify once instead of on every run).
        """
        if not message.strip():
            raise InvalidArguments("errorMessage: must not be empty", field="errorMessage")
        # Error output quotes tokens and keys (401s, failed logins); none may reach the database.
        message = scrub(redact(message)[0])
        event = self.detector.report(message, uri, line, language)
        await self._handle([event])
        out: dict[str, Any] = {
            "category": event.category,
            "signature": event.signature,
            "occurrences": event.occurrences,
            "open": event.open,
            "opened": event.kind == OPENED,
            "explanation": event.explanation,
        }
        hint = self._hints.get(event.uri, {}).get(event.signature)
        if hint is not None:
            out["hint"] = hint_json(hint)
        return out

    def hints_for(self, uri: str) -> list[Hint]:
        """Every open hint of a file (publishDiagnostics replaces a file's whole set)."""
        return list(self._hints.get(uri, {}).values())

    def dismiss(self, signature: str, uri: str) -> None:
        """Quiet a hint for the window."""
        self.detector.dismiss(signature, uri)
        key = (uri, signature)
        self._generation[key] = self._generation.get(key, 0) + 1  # drop hints being built
        self._hints.get(uri, {}).pop(signature, None)

    def list(self, limit: int, project: str | None) -> list[dict[str, Any]]:
        """leo.struggles rows."""
        with self._lock:
            return self.repo.list(limit, project)

    async def _handle(self, events: Sequence[StruggleEvent]) -> set[str]:
        changed: set[str] = set()
        loop = asyncio.get_running_loop()
        # Observations of one file are handled concurrently and finish in any order (each awaits
        # a save and a search). Stamp each event before the first await: a later event of the
        # same struggle makes this one's result stale, so an older hint never overwrites a newer
        # one nor comes back after the struggle resolved. Saves run on one writer thread in
        # submission order, so a stored row never steps back either.
        stamped = []
        for e in events:
            key = (e.uri, e.signature)
            self._generation[key] = self._generation.get(key, 0) + 1
            project = self._project_of(e.uri) if e.uri else ""
            saved = loop.run_in_executor(self._writer, self._save, e, project)
            stamped.append((e, key, self._generation[key], saved))
        for e, key, generation, saved in stamped:
            await saved
            if self._generation.get(key) != generation:
                continue
            hints = self._hints.setdefault(e.uri, {})
            if e.kind == RESOLVED or not e.open or self.detector.is_dismissed(e.signature, e.uri):
                if e.kind == RESOLVED:
                    del self._generation[key]
                if hints.pop(e.signature, None) is not None:
                    changed.add(e.uri)
                continue
            try:
                hint = await build_hint(e, self._search, self.detector.fixes_for(e.signature))
            except Exception:  # a hint without similar code beats no hint
                logger.exception("building the hint for %s failed", e.signature)
                continue
            if self._generation.get(key) != generation:
                continue
            hints[e.signature] = hint
            changed.add(e.uri)
        return changed

    async def close(self) -> None:
        """Finish pending writes (the server's shutdown awaits this)."""
        await asyncio.to_thread(self._writer.shutdown, True)

    def _save(self, event: StruggleEvent, project: str) -> None:
        with self._lock:
            self.repo.save_event(event, project)
            if event.fix is not None:
                self.repo.save_fix(event.fix, project)


def _as_uri(path: str) -> str | None:
    if path.startswith("file:"):
        return path
    return Path(path).as_uri() if Path(path).is_absolute() else None


def hint_json(hint: Hint) -> dict[str, Any]:
    """A hint as plain JSON (for leo.reportStruggle), with the ranges its diagnostic has.

    Ranges are LSP ranges (end exclusive: whole lines); `related[].uri` is a file URI (None for
    a relative path), `path` is kept as the search gave it.
    """
    return {
        "message": hint.message,
        "code": hint.code,
        "category": hint.category,
        "range": {
            "start": {"line": hint.start_line, "character": 0},
            "end": {"line": hint.end_line + 1, "character": 0},
        },
        "related": [
            {
                "uri": _as_uri(r.path),
                "path": r.path,
                "startLine": r.start_line,
                "endLine": r.end_line,
                "message": r.message,
                "kind": r.kind,
            }
            for r in hint.related
        ],
    }
