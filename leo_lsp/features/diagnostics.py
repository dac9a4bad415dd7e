"""Struggle hints: leo/observeDiagnostics in, publishDiagnostics out, and the struggle commands."""

from __future__ import annotations

import logging
from typing import Any

import attrs
from lsprotocol import types

from leo_lsp.errors import InvalidArguments
from leo_lsp.features.arguments import parse
from leo_lsp.features.commands import wrap_errors
from leo_lsp.features.uris import path_to_uri, uri_to_path
from leo_lsp.server import LeoServer
from leo_lsp.struggle.detector import ObservedDiagnostic
from leo_lsp.struggle.hints import Hint

logger = logging.getLogger(__name__)

OBSERVE_DIAGNOSTICS = "leo/observeDiagnostics"


def plain(value: Any) -> Any:
    """pygls hands custom notifications' params over as namedtuples; make them JSON again."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _observed(raw: Any) -> ObservedDiagnostic | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("message"), str):
        return None
    rng = raw.get("range") or {}
    try:
        start = int(rng["start"]["line"])
        end = int(rng["end"]["line"])
    except (KeyError, TypeError, ValueError):
        return None
    sev = raw.get("severity")
    code = raw.get("code")
    return ObservedDiagnostic(
        message=raw["message"][:4000],
        start_line=max(0, start),
        end_line=max(start, end),
        severity=sev if isinstance(sev, int) else 1,
        code=str(code) if code is not None else None,
        source=raw.get("source") if isinstance(raw.get("source"), str) else None,
    )


def to_diagnostic(hint: Hint) -> types.Diagnostic:
    """A struggle hint as an LSP diagnostic (source leo, severity Hint)."""
    related = []
    for r in hint.related:
        uri = r.path if r.path.startswith("file:") else path_to_uri(r.path)
        related.append(
            types.DiagnosticRelatedInformation(
                location=types.Location(
                    uri=uri,
                    range=types.Range(
                        start=types.Position(line=r.start_line, character=0),
                        end=types.Position(line=r.end_line + 1, character=0),
                    ),
                ),
                message=r.message,
            )
        )
    return types.Diagnostic(
        range=types.Range(
            start=types.Position(line=hint.start_line, character=0),
            end=types.Position(line=hint.end_line + 1, character=0),
        ),
        message=hint.message,
        severity=types.DiagnosticSeverity.Hint,
        source="leo",
        code=hint.code,
        related_information=related or None,
        data={"signature": hint.signature, "category": hint.category},
    )


def publish(ls: LeoServer, uris: set[str]) -> None:
    """Publish the current hints of each uri (replacing what was there)."""
    struggles = ls.services.struggles
    for uri in uris:
        if not uri.startswith("file:"):
            continue
        hints = struggles.hints_for(uri)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[to_diagnostic(h) for h in hints])
        )


async def observe_diagnostics(ls: LeoServer, params: Any) -> None:
    """leo/observeDiagnostics {uri, diagnostics}: another server's full set for one file."""
    raw = plain(params)
    if not isinstance(raw, dict) or not isinstance(raw.get("uri"), str):
        logger.info("ignoring leo/observeDiagnostics without a uri")
        return
    uri = raw["uri"]
    diags = [d for d in (_observed(x) for x in raw.get("diagnostics") or []) if d is not None]
    doc = ls.workspace.text_documents.get(uri)
    changed = await ls.services.struggles.observe(uri, diags, doc.source if doc else None)
    publish(ls, changed)


@attrs.define
class ReportArgs:
    error_message: str
    uri: str | None = None
    range: dict[str, Any] | None = None
    language: str | None = None


@attrs.define
class StrugglesArgs:
    project_id: str | None = None
    limit: int = 50


@attrs.define
class DismissArgs:
    uri: str
    signature: str


for _cls in (ReportArgs, StrugglesArgs, DismissArgs):
    attrs.resolve_types(_cls)


async def report_struggle(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.reportStruggle {errorMessage, uri?, range?, language?}."""
    a = parse(ReportArgs, args)
    if a.uri is not None:
        uri_to_path(a.uri)  # validates: a file:// URI
    line = None
    if a.range is not None:
        try:
            line = int(a.range["start"]["line"])
        except (KeyError, TypeError, ValueError):
            raise InvalidArguments(
                "range: expected {start: {line, character}, end: …}", field="range"
            ) from None
    result: dict[str, Any] = await ls.services.struggles.report(
        a.error_message, a.uri, line, a.language
    )
    if a.uri:
        publish(ls, {a.uri})
    return result


async def list_struggles(ls: LeoServer, *args: Any) -> list[dict[str, Any]]:
    """leo.struggles {projectId?, limit?}."""
    a = parse(StrugglesArgs, args)
    if not 1 <= a.limit <= 1000:
        raise InvalidArguments("limit: must be between 1 and 1000", field="limit")
    rows: list[dict[str, Any]] = ls.services.struggles.list(a.limit, a.project_id)
    return rows


async def dismiss_hint(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.dismissHint {uri, signature}: quiet one hint for the struggle window."""
    a = parse(DismissArgs, args)
    ls.services.struggles.dismiss(a.signature, a.uri)
    publish(ls, {a.uri})
    return {"dismissed": True}


async def observe_edits(ls: LeoServer, params: types.DidChangeTextDocumentParams) -> None:
    """Feed edited line ranges to churn detection (needs no client support: Helix too)."""
    struggles = ls.services.struggles
    if struggles is None:
        return
    uri = params.text_document.uri
    doc = ls.workspace.text_documents.get(uri)
    text = doc.source if doc else None
    changed: set[str] = set()
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            first = change.range.start.line
            last = max(first + change.text.count("\n"), change.range.end.line)
            changed |= await struggles.observe_edit(uri, range(first, last + 1), text)
    publish(ls, changed)


def register(server: LeoServer) -> None:
    """Register struggle notifications and commands."""
    server.feature(OBSERVE_DIAGNOSTICS)(observe_diagnostics)
    server.command("leo.reportStruggle")(wrap_errors(report_struggle))
    server.command("leo.struggles")(wrap_errors(list_struggles))
    server.command("leo.dismissHint")(wrap_errors(dismiss_hint))
