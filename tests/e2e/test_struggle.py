"""Struggle hints end to end: forwarded diagnostics and reported errors become a leo hint."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

sys.path.insert(0, str(Path(__file__).parent))
from session import command, open_buffer, start  # noqa: E402

pytestmark = pytest.mark.slow

BROKEN = "import json\n\n\ndef load(path):\n    return json.loads(open(path).read()).itmes()\n"
WORKING = (
    "import json\n\n\ndef read_settings(path):\n"
    "    with open(path) as fh:\n        data = json.loads(fh.read())\n"
    "    return {k: v for k, v in data.items()}\n"
)


def workspace(tmp: Path) -> Path:
    ws = tmp / "ws"
    ws.mkdir()
    (ws / "settings_io.py").write_text(WORKING)
    return ws


async def wait_hint(lsp, uri: str) -> list[types.Diagnostic]:
    """Wait for a publishDiagnostics of `uri` that carries a leo hint."""
    for _ in range(50):
        diags = lsp.diagnostics.get(uri, [])
        if any(d.source == "leo" for d in diags):
            return list(diags)
        await asyncio.wait_for(
            lsp.protocol.wait_for_notification_async("textDocument/publishDiagnostics"), 60
        )
    raise AssertionError(f"no leo hint for {uri}")


async def test_forwarded_diagnostics_recurring_become_a_hint_with_similar_code(
    tmp_path: Path,
) -> None:
    ws = workspace(tmp_path)
    lsp = await start(ws, tmp_path / "data")
    try:
        await command(lsp, "leo.indexWorkspace")
        path = ws / "loader.py"
        uri = path.as_uri()
        await open_buffer(lsp, path, BROKEN, "python")
        diag = {
            "range": {"start": {"line": 4, "character": 11}, "end": {"line": 4, "character": 50}},
            "message": "AttributeError: 'dict' object has no attribute 'itmes'",
            "severity": 1,
            "source": "pyright",
        }
        for version in range(2, 5):  # three attempts: the text changes between them
            lsp.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[
                        types.TextDocumentContentChangeWholeDocument(
                            text=BROKEN + f"# attempt {version}\n"
                        )
                    ],
                )
            )
            lsp.protocol.notify("leo/observeDiagnostics", {"uri": uri, "diagnostics": [diag]})
        diags = await wait_hint(lsp, uri)
        hint = next(d for d in diags if d.source == "leo")
        assert hint.severity == types.DiagnosticSeverity.Hint
        assert hint.code == "struggle/type" or str(hint.code).startswith("struggle/")
        assert hint.range.start.line == 4
        related = hint.related_information or []
        assert any(r.location.uri.endswith("settings_io.py") for r in related), related
        actions = await lsp.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=hint.range,
                context=types.CodeActionContext(diagnostics=[hint]),
            )
        )
        titles = [a.title for a in actions or []]
        assert any("dismiss" in t for t in titles) and any("similar" in t for t in titles)
        rows = await command(lsp, "leo.struggles")
        assert rows and rows[0]["occurrences"] >= 3
    finally:
        await lsp.shutdown_session()


async def test_reported_errors_reach_the_threshold(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    lsp = await start(ws, tmp_path / "data", options={"struggle": {"threshold": 3}})
    try:
        await command(lsp, "leo.indexWorkspace")
        uri = (ws / "loader.py").as_uri()
        results = []
        for name in ("a", "b", "c"):
            results.append(
                await command(
                    lsp,
                    "leo.reportStruggle",
                    {
                        "errorMessage": f"NameError: name '{name}_total' is not defined",
                        "uri": uri,
                        "language": "python",
                    },
                )
            )
        assert results[0]["category"] == "name"
        assert len({r["signature"] for r in results}) == 1  # one signature across identifiers
        assert not results[0]["open"] and results[-1]["open"]
        assert results[-1]["hint"]["code"] == "struggle/name"
        with pytest.raises(JsonRpcException) as info:
            await command(lsp, "leo.reportStruggle", {"uri": uri})
        assert "errorMessage" in info.value.message
    finally:
        await lsp.shutdown_session()
