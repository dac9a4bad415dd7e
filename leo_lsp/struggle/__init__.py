"""Struggle hints: notice when a developer keeps hitting the same error and help from their code.

Plain Python (no pygls/lsprotocol). The whole API the server needs:

    from leo_lsp.struggle import (
        StruggleDetector, ObservedDiagnostic, StruggleEvent,   # detection
        StruggleRepository, ensure_schema,                     # persistence
        build_hint, Hint, Related,                             # hints
        LlmClassifier, classify, Classification,               # categories
        normalise, signature, Fix,
    )

Wiring (all lines 0-indexed, inclusive; times Unix seconds):

    detector = StruggleDetector(settings.struggle.threshold, settings.struggle.window_seconds)
    ensure_schema(conn); repo = StruggleRepository(conn)
    detector.fixes.load(repo.all_fixes())            # remembered fixes survive restarts

    # leo/observeDiagnostics {uri, diagnostics}: the FULL current set of a file
    events = detector.observe(uri, [ObservedDiagnostic(d.message, d.range.start.line,
                              d.range.end.line, d.severity, d.code, d.source) ...], text=doc_text)
    #   An observation is an *attempt* only when `text` changed since the last one counted
    #   (re-publications for the same text count once); pass text=None to count every call.
    # leo.reportStruggle {errorMessage, uri?, range?, language?}: always returns an event
    event = detector.report(error_message, uri, line, language)   # event.open → attach a hint
    # leo's own signals (no client support needed)
    events = detector.observe_syntax_errors(uri, error_lines, text)     # after each parse
    events = detector.observe_edit(uri, range(first_changed, last_changed + 1), text)

    for e in events:            # kind: opened | updated → show/refresh; resolved → remove
        repo.save_event(e, project_id)
        if e.fix: repo.save_fix(e.fix, project_id)
        if e.kind != "resolved":
            hint = await build_hint(e, search, detector.fixes_for(e.signature))
            # → Diagnostic(range=lines, message=hint.message, severity=Hint, source="leo",
            #              code=hint.code, relatedInformation=hint.related)

    detector.open_struggles(uri)   # every open hint of a file (publishDiagnostics replaces all)
    detector.dismiss(signature, uri)          # code action "dismiss hint": quiet for the window
    detector.sweep()                          # optional timer: expire report/churn struggles
    repo.list(limit, project)                 # leo.struggles
    # categories the rules cannot place ("other", confidence < 0.5):
    c = await LlmClassifier(client.chat_json, model).classify(e.raw_message, e.language)
    detector.reclassify(e.signature, c)

`search` is `async (query: str, limit: int) -> list[SearchHit]`. Hint codes are
`struggle/<category>` with category in `CATEGORIES` or `churn`. `StruggleEvent.metadata()` and the
repository's `on_event` hooks carry no code text, so they are safe to hand to the cloud outbox.
"""

from __future__ import annotations

from leo_lsp.struggle.classify import CATEGORIES, Classification, LlmClassifier, classify
from leo_lsp.struggle.detector import (
    CHURN,
    OPENED,
    RESOLVED,
    UPDATED,
    ObservedDiagnostic,
    StruggleDetector,
    StruggleEvent,
    language_of,
)
from leo_lsp.struggle.fixes import Fix, FixMemory
from leo_lsp.struggle.hints import Hint, Related, SearchFn, build_hint
from leo_lsp.struggle.repository import StruggleRepository, ensure_schema
from leo_lsp.struggle.signatures import normalise, signature

__all__ = [
    "CATEGORIES",
    "CHURN",
    "OPENED",
    "RESOLVED",
    "UPDATED",
    "Classification",
    "Fix",
    "FixMemory",
    "Hint",
    "LlmClassifier",
    "ObservedDiagnostic",
    "Related",
    "SearchFn",
    "StruggleDetector",
    "StruggleEvent",
    "StruggleRepository",
    "build_hint",
    "classify",
    "ensure_schema",
    "language_of",
    "normalise",
    "signature",
]
