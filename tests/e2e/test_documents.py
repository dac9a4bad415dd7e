"""Document sync: incremental edits are searchable; closing an unsaved buffer restores the disk."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from lsprotocol import types

sys.path.insert(0, str(Path(__file__).parent))
from session import command, open_buffer, start  # noqa: E402

pytestmark = pytest.mark.slow

ON_DISK = "def compute_invoice_tax(amount, rate):\n    return amount * rate\n"
FILLER = "".join(f"\ndef helper_{i}(x):\n    return x + {i}\n" for i in range(40))


async def edit(lsp, uri: str, version: int, line: int, text: str) -> object:
    """Insert `text` at the start of `line` and wait until leo says it is searchable."""
    waiter = lsp.protocol.wait_for_notification_async("leo/indexed")
    lsp.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=line, character=0),
                        end=types.Position(line=line, character=0),
                    ),
                    text=text,
                )
            ],
        )
    )
    return await asyncio.wait_for(waiter, 60)


async def test_incremental_edits_are_searchable_and_close_restores_disk(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    path = ws / "billing.py"
    path.write_text(ON_DISK)
    uri = path.as_uri()
    lsp = await start(ws, tmp_path / "data", options={"index": {"debounceMs": 50}})
    try:
        await command(lsp, "leo.indexWorkspace")
        buffer = "def render_greeting_card(name):\n    return f'Dear {name}'\n" + FILLER
        await open_buffer(lsp, path, buffer, "python")
        res = await command(lsp, "leo.search", {"query": "render_greeting_card", "mode": "lexical"})
        assert res["results"] and res["results"][0]["symbol"] == "render_greeting_card"
        # two quick keystroke-like edits: only the last version needs to be indexed
        lsp.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=0, character=0),
                            end=types.Position(line=0, character=0),
                        ),
                        text="# draft\n",
                    )
                ],
            )
        )
        done = await edit(
            lsp, uri, 3, 1, "def normalise_postcode(code):\n    return code.upper()\n\n"
        )
        assert done.version == 3
        res = await command(lsp, "leo.search", {"query": "uppercase a postal code"})
        assert res["results"][0]["symbol"] == "normalise_postcode"
        assert res["results"][0]["range"]["start"]["line"] <= 1
        # close without saving: the index goes back to the file on disk
        waiter = lsp.protocol.wait_for_notification_async("leo/indexed")
        lsp.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        closed = await asyncio.wait_for(waiter, 60)
        assert closed.closed is True
        res = await command(lsp, "leo.search", {"query": "normalise_postcode", "mode": "lexical"})
        assert res["results"] == []
        res = await command(lsp, "leo.search", {"query": "compute_invoice_tax", "mode": "lexical"})
        assert res["results"][0]["symbol"] == "compute_invoice_tax"
    finally:
        await lsp.shutdown_session()
