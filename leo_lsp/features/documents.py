"""Document sync: open buffers are re-indexed from their text after a debounce."""

from __future__ import annotations

import logging
from pathlib import Path

from lsprotocol import types

from leo_lsp.errors import LeoError
from leo_lsp.features.diagnostics import observe_edits, publish
from leo_lsp.features.uris import uri_to_path
from leo_lsp.indexing.pipeline import IndexOutcome
from leo_lsp.server import LeoServer

logger = logging.getLogger(__name__)


def _schedule(
    ls: LeoServer, uri: str, language_id: str | None, delay_ms: int | None = None
) -> None:
    try:
        path = uri_to_path(uri)
    except LeoError:
        return  # untitled:, git:, … buffers have no place in the index

    def text() -> str | None:
        doc = ls.workspace.text_documents.get(uri)
        return doc.source if doc is not None else None

    doc = ls.workspace.text_documents.get(uri)
    version = doc.version if doc is not None else None

    def done(outcome: IndexOutcome) -> None:
        if ls.services.struggles is not None and outcome.decision.allowed:
            ls.services.indexer.spawn(_syntax_signal(ls, uri, path))
        # Tells clients (status bars, tests) that this buffer version is now searchable.
        ls.protocol.notify(
            "leo/indexed",
            {
                "uri": uri,
                "version": version,
                "chunks": outcome.chunks,
                "allowed": outcome.decision.allowed,
                "reason": outcome.decision.reason,
            },
        )

    ls.services.indexer.schedule(
        path, text, language_id=language_id, delay_ms=delay_ms, on_done=done
    )


async def _syntax_signal(ls: LeoServer, uri: str, path: Path) -> None:
    """Feed the buffer's parse errors to struggle detection (the Helix case: no forwarding)."""
    doc = ls.workspace.text_documents.get(uri)
    if doc is None:
        return
    lines = ls.services.indexer.syntax_errors(path)
    publish(ls, await ls.services.struggles.observe_syntax(uri, lines, doc.source))


def did_open(ls: LeoServer, params: types.DidOpenTextDocumentParams) -> None:
    """Index the buffer as opened (no debounce: nothing is being typed yet)."""
    _schedule(ls, params.text_document.uri, params.text_document.language_id, delay_ms=0)


async def did_change(ls: LeoServer, params: types.DidChangeTextDocumentParams) -> None:
    """Re-index after the debounce; the buffer's unsaved text is what gets indexed."""
    doc = ls.workspace.text_documents.get(params.text_document.uri)
    _schedule(ls, params.text_document.uri, doc.language_id if doc else None)
    await observe_edits(ls, params)


def did_save(ls: LeoServer, params: types.DidSaveTextDocumentParams) -> None:
    """Saved text equals the buffer, which is indexed already; refresh the file's mtime."""
    doc = ls.workspace.text_documents.get(params.text_document.uri)
    _schedule(ls, params.text_document.uri, doc.language_id if doc else None, delay_ms=0)


async def did_close(ls: LeoServer, params: types.DidCloseTextDocumentParams) -> None:
    """A closed buffer's index returns to the file on disk (unsaved edits are dropped)."""
    try:
        path = uri_to_path(params.text_document.uri)
    except LeoError:
        return
    await ls.services.indexer.close_buffer(path, saved=False)
    ls.protocol.notify("leo/indexed", {"uri": params.text_document.uri, "closed": True})


async def did_change_watched_files(
    ls: LeoServer, params: types.DidChangeWatchedFilesParams
) -> None:
    """Files changed on disk outside the editor: re-index or forget them."""
    indexer = ls.services.indexer
    for change in params.changes:
        try:
            path = uri_to_path(change.uri)
        except LeoError:
            continue
        project = indexer.registry.for_path(path, create=False)
        if project is None:
            continue
        rel = project.rel(path)
        if rel is None or rel in project.open_paths:
            continue
        try:
            if change.type == types.FileChangeType.Deleted or not path.exists():
                project.store.delete_file(rel)
            elif path.is_file():
                await indexer.index_file(project, path)
        except LeoError as exc:
            logger.info("watched change of %s: %s", path, exc.message)


def register(server: LeoServer) -> None:
    """Register document-sync handlers."""
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(did_save)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
    server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(did_change_watched_files)
