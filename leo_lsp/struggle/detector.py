"""Notice when a developer is stuck: a struggle score per (error signature, file).

The score follows the spirit of Jadud's Error Quotient: each *attempt* (an observation of a file
whose text changed since the last one counted) that still shows the same error adds to the score,
and consecutive recurrences weigh more than scattered ones; an attempt without the error (a fix)
halves the score and breaks the streak. Occurrences older than `window_seconds` stop counting.

    occurrence weight = 1 + 0.5 × min(consecutive recurrences before it, 4)
    three consecutive attempts with the same error: 1 + 1.5 + 2 = 4.5  (≥ the default threshold 3)

A struggle opens when its score reaches `threshold` and stays open until the error is gone for good:
absent from `resolve_after` consecutive attempts, or `resolve()`d. Struggles from explicit reports
and from edit churn cannot be observed to disappear; they resolve once nothing recurs within the
window (see `sweep`).

Four inputs, all plain values:
- `observe`: the full current diagnostics of a file, as another language server published them
  (absence means fixed). Re-publications for unchanged text count once.
- `report`: an error from a terminal or test run.
- `observe_syntax_errors`: leo's own parse errors (tree-sitter ERROR nodes) — they count when they
  persist while the rest of the file is edited, or for longer than `syntax_grace_seconds`; never
  while the developer is still typing the construct (edits that extend the text right below the
  error, line after line: an open bracket or signature whose body is being written).
- `observe_edit`: the same lines rewritten again and again (edit bursts separated by pauses or by
  edits elsewhere) within the window is a `churn` struggle.

Not thread-safe: call it from one thread (the server's event loop). Every call is O(struggles of
that file) and does no I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from leo_lsp.records import content_hash
from leo_lsp.struggle.classify import Classification, classify
from leo_lsp.struggle.fixes import Fix, FixMemory, make_fix
from leo_lsp.struggle.signatures import normalise, signature

logger = logging.getLogger(__name__)

OPENED = "opened"
UPDATED = "updated"
RESOLVED = "resolved"

CHURN = "churn"
"""The category of edit-churn struggles (not an error category; `classify` never returns it)."""

CONSECUTIVE_BONUS = 0.5
MAX_STREAK_BONUS = 4
FIX_DECAY = 0.5
# Diagnostics less severe than this (LSP: 1 error, 2 warning, 3 information, 4 hint) are noise for
# struggle detection: people do not get stuck on an unused-variable hint.
MAX_SEVERITY = 1
SYNTAX_MESSAGE = "syntax error that persists across edits"
CHURN_MESSAGE = "the same lines rewritten again and again"
CONTEXT_LINES = 3

_EXTENSIONS = {
    "py": "python",
    "pyi": "python",
    "ts": "typescript",
    "tsx": "typescriptreact",
    "mts": "typescript",
    "cts": "typescript",
    "js": "javascript",
    "jsx": "javascriptreact",
    "mjs": "javascript",
    "cjs": "javascript",
    "go": "go",
    "rs": "rust",
    "java": "java",
    "kt": "kotlin",
    "c": "c",
    "h": "c",
    "cc": "cpp",
    "cpp": "cpp",
    "hpp": "cpp",
    "cs": "csharp",
    "rb": "ruby",
    "php": "php",
    "swift": "swift",
}


def language_of(uri: str) -> str:
    """The language id guessed from a uri's or path's extension ("" when unknown)."""
    name = uri.rsplit("/", 1)[-1]
    return _EXTENSIONS.get(name.rsplit(".", 1)[-1].lower(), "") if "." in name else ""


@dataclass(frozen=True, slots=True)
class ObservedDiagnostic:
    """One diagnostic another language server published (lines 0-indexed, inclusive)."""

    message: str
    start_line: int
    end_line: int
    severity: int | None = 1  # LSP DiagnosticSeverity; None counts as an error
    code: str | int | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class StruggleEvent:
    """A struggle opened, changed or resolved (lines 0-indexed, inclusive; times Unix seconds).

    `opened` and `updated` both mean "show or refresh the hint" when `open` is true; `resolved`
    means "remove it" and carries the remembered `fix` when the error went away after an edit.
    `raw_message` and `context` may name the user's code: keep them local (`metadata()` leaves
    them out).
    """

    kind: str  # opened | updated | resolved
    category: str
    signature: str
    message: str  # normalised
    uri: str
    start_line: int
    end_line: int
    occurrences: int
    score: float
    first_seen: float
    last_seen: float
    open: bool
    explanation: str
    language: str
    origin: str  # diagnostics | report | syntax | churn
    raw_message: str = ""
    context: str = ""  # the source lines at the range, when known
    fix: Fix | None = None

    def metadata(self) -> dict[str, Any]:
        """The event without code or raw message text: safe to sync."""
        return {
            "kind": self.kind,
            "category": self.category,
            "signature": self.signature,
            "message": self.message,
            "uri": self.uri,
            "occurrences": self.occurrences,
            "firstSeen": self.first_seen,
            "lastSeen": self.last_seen,
            "open": self.open,
            "language": self.language,
            "origin": self.origin,
        }


@dataclass(slots=True)
class _Struggle:
    signature: str
    uri: str
    origin: str
    language: str
    message: str
    raw_message: str
    classification: Classification
    start_line: int
    end_line: int
    first_seen: float
    last_seen: float
    hits: list[tuple[float, float]] = field(default_factory=list)  # (clock, weight)
    occurrences: int = 0
    streak: int = 0
    absent: int = 0
    is_open: bool = False
    counted_version: str | None = None
    text_before: str | None = None  # the last text that still had the error
    text_after: str | None = None  # the first text without it
    context: str = ""


@dataclass(slots=True)
class _Burst:
    start_line: int
    end_line: int
    last: float


@dataclass(slots=True)
class _FileState:
    version: str | None = None
    syntax_version: str | None = None
    syntax_line_texts: frozenset[str] = frozenset()
    syntax_lines: list[str] = field(default_factory=list)  # the last parsed text, while broken
    typing_end: int = -1  # the last line of the text being typed right below a syntax error
    bursts: list[_Burst] = field(default_factory=list)


def _changed_lines(old: list[str], new: list[str]) -> tuple[int, int] | None:
    """The first and last line of `new` that differ from `old` (common prefix/suffix), or None."""
    if old == new:
        return None
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return prefix, max(prefix, len(new) - suffix - 1)


def _context(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start : min(end, start + CONTEXT_LINES - 1) + 1])[:400]


class StruggleDetector:
    """Struggle scores per (signature, file); see the module docstring for the model."""

    def __init__(
        self,
        threshold: int,
        window_seconds: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] = time.time,
        resolve_after: int = 2,
        churn_threshold: int | None = None,
        burst_gap_seconds: float = 5.0,
        syntax_grace_seconds: float = 10.0,
        fixes: FixMemory | None = None,
        max_struggles: int = 2000,
    ) -> None:
        self.threshold = threshold
        self.window_seconds = window_seconds
        self._clock = clock
        # Event times are wall-clock (they are shown and stored); the window runs on `clock`.
        self._offset = wall_clock() - clock()
        self.resolve_after = max(1, resolve_after)
        self.churn_threshold = churn_threshold or max(threshold, 3) + 2
        self.burst_gap_seconds = burst_gap_seconds
        self.syntax_grace_seconds = syntax_grace_seconds
        self.fixes = fixes if fixes is not None else FixMemory()
        self._max = max_struggles
        self._struggles: dict[tuple[str, str], _Struggle] = {}
        self._files: dict[str, _FileState] = {}
        self._dismissed: dict[tuple[str, str], float] = {}
        self._overrides: dict[str, Classification] = {}

    # --- inputs --------------------------------------------------------------------------------

    def observe(
        self,
        uri: str,
        diagnostics: Iterable[ObservedDiagnostic],
        text: str | None,
        language: str | None = None,
    ) -> list[StruggleEvent]:
        """Take the full current diagnostics of a file; return the events this causes.

        An observation counts as an attempt when `text` differs from the last counted one (or
        is None); a re-publication for the same text only adds errors not yet counted for it.
        Diagnostics with source `leo` (our own hints forwarded back) are ignored.
        """
        now = self._clock()
        lang = language or language_of(uri)
        state = self._files.setdefault(uri, _FileState())
        version = None if text is None else content_hash(text)
        new_attempt = version is None or version != state.version
        state.version = version

        lines = text.splitlines() if text else []
        present: dict[str, ObservedDiagnostic] = {}
        for diag in diagnostics:
            if (diag.source or "").lower() == "leo":
                continue
            if diag.severity is not None and diag.severity > MAX_SEVERITY:
                continue
            sig = signature(diag.message, lang)
            if sig not in present or diag.start_line < present[sig].start_line:
                present[sig] = diag

        events: list[StruggleEvent] = []
        for sig, diag in present.items():
            struggle = self._struggles.get((sig, uri))
            if struggle is None:
                struggle = self._new(sig, uri, "diagnostics", lang, diag.message, now, diag)
            elif not new_attempt and struggle.counted_version == version:
                continue
            struggle.start_line, struggle.end_line = diag.start_line, diag.end_line
            struggle.context = _context(lines, diag.start_line, diag.end_line) or struggle.context
            event = self._occur(struggle, now, text, version)
            if event:
                events.append(event)

        if new_attempt:
            for (sig, key_uri), struggle in list(self._struggles.items()):
                if key_uri == uri and struggle.origin == "diagnostics" and sig not in present:
                    event = self._absent(struggle, now, text)
                    if event:
                        events.append(event)
        events.extend(self.sweep())
        return events

    def report(
        self,
        error_message: str,
        uri: str | None = None,
        line: int | None = None,
        language: str | None = None,
    ) -> StruggleEvent:
        """Count an explicitly reported error (terminal, test run); return its current state."""
        now = self._clock()
        key_uri = uri or ""
        lang = language or language_of(key_uri)
        sig = signature(error_message, lang)
        struggle = self._struggles.get((sig, key_uri))
        if struggle is None:
            struggle = self._new(sig, key_uri, "report", lang, error_message, now, None)
        if line is not None:
            struggle.start_line = struggle.end_line = max(0, line)
        struggle.raw_message = error_message
        event = self._occur(struggle, now, None, None)
        return event or self._snapshot(struggle, UPDATED)

    def observe_syntax_errors(
        self, uri: str, error_lines: Iterable[int], text: str, language: str | None = None
    ) -> list[StruggleEvent]:
        """Take the lines of the parse errors (tree-sitter ERROR/MISSING nodes) in `text`."""
        now = self._clock()
        lang = language or language_of(uri)
        state = self._files.setdefault(uri, _FileState())
        version = content_hash(text)
        if version == state.syntax_version:
            return []
        state.syntax_version = version
        lines = sorted(set(error_lines))
        source_lines = text.splitlines()
        line_texts = frozenset(
            source_lines[n].strip()
            for n in lines
            if 0 <= n < len(source_lines) and source_lines[n].strip()
        )
        previous_texts, state.syntax_line_texts = state.syntax_line_texts, line_texts
        previous_lines, state.syntax_lines = state.syntax_lines, source_lines if lines else []
        sig = signature(SYNTAX_MESSAGE, lang)
        struggle = self._struggles.get((sig, uri))
        events: list[StruggleEvent] = []
        if not lines:
            state.typing_end = -1
            if struggle is not None:
                event = self._absent(struggle, now, text)
                if event:
                    events.append(event)
            return events + self.sweep()

        if struggle is None:
            struggle = self._new(sig, uri, "syntax", lang, SYNTAX_MESSAGE, now, None)
            struggle.classification = classify("SyntaxError: invalid syntax", lang)
            state.typing_end = lines[-1]
            counts = True
        else:
            changed = _changed_lines(previous_lines, source_lines)
            if (
                changed is not None
                and lines[0] < changed[0] <= max(state.typing_end, lines[-1]) + 1
            ):
                # The text right below the error grows line after line: the construct the parser
                # cannot close yet is still being written (a list, a body under its signature).
                state.typing_end = changed[1]
                counts = False
            else:
                # The error persisted while the rest of the file changed, or for a long while: a
                # developer mid-way through typing a line is not stuck.
                counts = bool(line_texts & previous_texts) or (
                    now - struggle.first_seen >= self.syntax_grace_seconds
                )
        struggle.start_line, struggle.end_line = lines[0], lines[-1]
        struggle.context = _context(source_lines, lines[0], lines[-1])
        if counts:
            event = self._occur(struggle, now, text, version)
            if event:
                events.append(event)
        else:
            struggle.text_before = text
        return events + self.sweep()

    def observe_edit(self, uri: str, changed_lines: range, text: str | None) -> list[StruggleEvent]:
        """Take the lines one edit replaced; the same lines rewritten again and again is churn."""
        now = self._clock()
        state = self._files.setdefault(uri, _FileState())
        lo = changed_lines.start
        hi = max(lo, changed_lines.stop - 1)
        last = state.bursts[-1] if state.bursts else None
        if (
            last is not None
            and now - last.last <= self.burst_gap_seconds
            and last.start_line - 1 <= hi
            and lo <= last.end_line + 1
        ):
            last.start_line, last.end_line = min(last.start_line, lo), max(last.end_line, hi)
            last.last = now
            new_burst = False
        else:
            state.bursts.append(_Burst(lo, hi, now))
            new_burst = True
        horizon = now - self.window_seconds
        state.bursts = [b for b in state.bursts if b.last >= horizon]
        region = [b for b in state.bursts if b.start_line - 1 <= hi and lo <= b.end_line + 1]

        lang = language_of(uri)
        sig = signature(CHURN_MESSAGE, lang)
        struggle = self._struggles.get((sig, uri))
        if len(region) < self.churn_threshold and struggle is None:
            return []
        if struggle is None:
            struggle = self._new(sig, uri, "churn", lang, CHURN_MESSAGE, now, None)
            struggle.classification = Classification(
                CHURN,
                0.6,
                "These lines have been rewritten again and again: step back and look at a "
                "working example.",
            )
        struggle.start_line = min(b.start_line for b in region)
        struggle.end_line = max(b.end_line for b in region)
        struggle.context = _context(
            text.splitlines() if text else [], struggle.start_line, struggle.end_line
        )
        if not new_burst:
            return []
        struggle.hits = [(b.last, 1.0) for b in region]
        struggle.occurrences = len(region)
        struggle.last_seen = now
        return self._maybe_open(struggle, now)

    # --- control -------------------------------------------------------------------------------

    def resolve(
        self, signature: str, uri: str | None = None, text: str | None = None
    ) -> list[StruggleEvent]:
        """Close struggles of a signature (in one file or all) now, e.g. after a passing run."""
        now = self._clock()
        events = []
        for key, struggle in list(self._struggles.items()):
            if key[0] != signature or (uri is not None and key[1] != uri):
                continue
            if text is not None and struggle.text_after is None:
                struggle.text_after = text
            del self._struggles[key]
            if struggle.is_open:
                events.append(self._resolved(struggle, now))
        return events

    def dismiss(self, signature: str, uri: str | None = None) -> None:
        """Silence a signature (in one file, or everywhere) for the window."""
        self._dismissed[(signature, uri or "*")] = self._clock() + self.window_seconds

    def is_dismissed(self, signature: str, uri: str) -> bool:
        """Whether `dismiss` silenced this signature in this file and the window has not passed."""
        now = self._clock()
        for key in ((signature, uri), (signature, "*")):
            until = self._dismissed.get(key)
            if until is not None:
                if until > now:
                    return True
                del self._dismissed[key]
        return False

    def reclassify(self, signature: str, classification: Classification) -> None:
        """Use this classification for a signature from now on (e.g. the LLM's, for `other`)."""
        self._overrides[signature] = classification
        for (sig, _), struggle in self._struggles.items():
            if sig == signature:
                struggle.classification = classification

    def open_struggles(self, uri: str | None = None) -> list[StruggleEvent]:
        """The open, not dismissed struggles (of one file), as `updated` snapshots."""
        return [
            self._snapshot(s, UPDATED)
            for (sig, key_uri), s in self._struggles.items()
            if s.is_open and (uri is None or key_uri == uri) and not self.is_dismissed(sig, key_uri)
        ]

    def fixes_for(self, signature: str) -> list[Fix]:
        """Remembered fixes for a signature, most recent first."""
        return self.fixes.fixes_for(signature)

    def sweep(self) -> list[StruggleEvent]:
        """Forget expired occurrences; resolve open report/churn struggles quiet for a window."""
        now = self._clock()
        horizon = now - self.window_seconds
        events = []
        for key, struggle in list(self._struggles.items()):
            struggle.hits = [hit for hit in struggle.hits if hit[0] >= horizon]
            if struggle.hits:
                continue
            if struggle.is_open and struggle.origin in ("diagnostics", "syntax"):
                continue  # still on screen until observed gone
            del self._struggles[key]
            if struggle.is_open:
                events.append(self._resolved(struggle, now))
        if len(self._struggles) > self._max:
            closed = sorted(
                (s.last_seen, key) for key, s in self._struggles.items() if not s.is_open
            )
            for _, key in closed[: len(self._struggles) - self._max]:
                del self._struggles[key]
        return events

    # --- internals -----------------------------------------------------------------------------

    def _new(
        self,
        sig: str,
        uri: str,
        origin: str,
        language: str,
        message: str,
        now: float,
        diag: ObservedDiagnostic | None,
    ) -> _Struggle:
        classification = self._overrides.get(sig) or classify(
            message,
            language,
            diag.code if diag else None,
            diag.source if diag else None,
        )
        struggle = _Struggle(
            signature=sig,
            uri=uri,
            origin=origin,
            language=language,
            message=normalise(message),
            raw_message=message,
            classification=classification,
            start_line=diag.start_line if diag else 0,
            end_line=diag.end_line if diag else 0,
            first_seen=now,
            last_seen=now,
        )
        self._struggles[(sig, uri)] = struggle
        return struggle

    def _score(self, struggle: _Struggle, now: float) -> float:
        horizon = now - self.window_seconds
        return sum(weight for at, weight in struggle.hits if at >= horizon)

    def _occur(
        self, struggle: _Struggle, now: float, text: str | None, version: str | None
    ) -> StruggleEvent | None:
        weight = 1.0 + CONSECUTIVE_BONUS * min(struggle.streak, MAX_STREAK_BONUS)
        struggle.hits.append((now, weight))
        struggle.occurrences += 1
        struggle.streak += 1
        struggle.absent = 0
        struggle.last_seen = now
        struggle.counted_version = version
        struggle.text_after = None
        if text is not None:
            struggle.text_before = text
        events = self._maybe_open(struggle, now)
        return events[0] if events else None

    def _maybe_open(self, struggle: _Struggle, now: float) -> list[StruggleEvent]:
        if not struggle.is_open:
            if self._score(struggle, now) < self.threshold:
                return []
            struggle.is_open = True
            kind = OPENED
        else:
            kind = UPDATED
        if self.is_dismissed(struggle.signature, struggle.uri):
            return []
        return [self._snapshot(struggle, kind)]

    def _absent(self, struggle: _Struggle, now: float, text: str | None) -> StruggleEvent | None:
        struggle.hits = [(at, weight * FIX_DECAY) for at, weight in struggle.hits]
        struggle.streak = 0
        struggle.absent += 1
        if struggle.absent == 1:
            # The edit that removed the error is the one between the last text with it and this.
            struggle.text_after = text
        if struggle.absent < self.resolve_after:
            return None
        del self._struggles[(struggle.signature, struggle.uri)]
        return self._resolved(struggle, now) if struggle.is_open else None

    def _resolved(self, struggle: _Struggle, now: float) -> StruggleEvent:
        struggle.is_open = False
        fix = None
        if struggle.text_before is not None and struggle.text_after is not None:
            fix = make_fix(
                signature=struggle.signature,
                category=struggle.classification.category,
                message=struggle.message,
                uri=struggle.uri,
                before_text=struggle.text_before,
                after_text=struggle.text_after,
                near=(struggle.start_line, struggle.end_line),
                created_at=now + self._offset,
            )
            if fix is not None:
                self.fixes.add(fix)
        logger.info(
            "struggle resolved: %s %s in %s after %d occurrences (fix: %s)",
            struggle.classification.category,
            struggle.signature,
            struggle.uri,
            struggle.occurrences,
            fix is not None,
        )
        return replace(self._snapshot(struggle, RESOLVED), fix=fix)

    def _snapshot(self, struggle: _Struggle, kind: str) -> StruggleEvent:
        return StruggleEvent(
            kind=kind,
            category=struggle.classification.category,
            signature=struggle.signature,
            message=struggle.message,
            uri=struggle.uri,
            start_line=struggle.start_line,
            end_line=struggle.end_line,
            occurrences=struggle.occurrences,
            score=round(self._score(struggle, self._clock()), 3),
            first_seen=struggle.first_seen + self._offset,
            last_seen=struggle.last_seen + self._offset,
            open=struggle.is_open,
            explanation=struggle.classification.explanation,
            language=struggle.language,
            origin=struggle.origin,
            raw_message=struggle.raw_message,
            context=struggle.context,
        )
