"""initialize / initialized / shutdown, configuration changes and workspace folders."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

from lsprotocol import types

from leo_lsp.errors import LeoError
from leo_lsp.features.crawls import cancel_all, start_crawl
from leo_lsp.features.uris import uri_to_path
from leo_lsp.log import ClientLogHandler
from leo_lsp.server import LeoServer
from leo_lsp.services import build_services
from leo_lsp.settings import build_settings

logger = logging.getLogger(__name__)

_LEVELS = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
}


def _folders(params: types.InitializeParams) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for f in params.workspace_folders or []:
        try:
            out.append((uri_to_path(f.uri), f.name))
        except Exception:
            logger.warning("ignoring workspace folder %r", f.uri)
    if not out and params.root_uri:
        try:
            root = uri_to_path(params.root_uri)
            out.append((root, root.name))
        except Exception:
            logger.warning("ignoring rootUri %r", params.root_uri)
    elif not out and params.root_path:
        out.append((Path(params.root_path).resolve(), Path(params.root_path).name))
    return out


async def initialize(ls: LeoServer, params: types.InitializeParams) -> None:
    """Build settings and services, and open a project per workspace folder."""
    options: Any = params.initialization_options
    settings = build_settings(options if isinstance(options, dict) else {})
    if options is not None and not isinstance(options, dict):
        settings.problems.append("initializationOptions must be an object; using defaults")
    ls.settings = settings
    try:
        ls.services = build_services(settings)
    except (OSError, LeoError) as exc:
        # An unusable data dir must not kill the session: index into a throwaway one and say so.
        broken = settings.data_path
        settings.data_dir = tempfile.mkdtemp(prefix="leo-fallback-")
        ls.services = build_services(settings)
        ls.services.notes.append(
            f"cannot use the data dir {broken} ({exc}); this session's index lives in "
            f"{settings.data_dir} and is not kept. Fix the path or set dataDir."
        )
    await learn_dimension(ls.services.embedder)
    for root, name in _folders(params):
        if root.is_dir():
            ls.services.registry.add_folder(root, name)


async def learn_dimension(embedder: Any) -> None:
    """A remote model's dimension is unknown until asked; the stores need it to open."""
    probe = getattr(embedder, "probe", None)
    if embedder.dim or probe is None:
        return
    try:
        await probe()
    except LeoError as exc:
        logger.error("cannot reach the embedding server to learn its dimension: %s", exc.message)


async def initialized(ls: LeoServer, params: types.InitializedParams) -> None:
    """Mirror logs to the client, report bad options, and start crawling every folder."""

    def send(level: int, message: str) -> None:
        ls.window_log_message(
            types.LogMessageParams(type=_LEVELS.get(level, types.MessageType.Log), message=message)
        )

    logging.getLogger("leo_lsp").addHandler(ClientLogHandler(send))
    services = ls.services
    for problem in services.settings.problems:
        ls.tell(f"leo: invalid option {problem}")
    for note in services.notes:
        ls.tell(f"leo: {note}")

    def embedding_notice(available: bool, message: str) -> None:
        kind = types.MessageType.Info if available else types.MessageType.Warning
        ls.tell(f"leo: {message}", kind)

    services.indexer.on_embedding_notice.append(embedding_notice)
    for project in services.registry.folders():
        start_crawl(ls, project)
    if services.cloud is not None:
        # Sign-in problems are told, never fatal: leo keeps working locally (no token in logs).
        for note in await services.cloud.start():
            ls.tell(f"leo: {note}")


async def shutdown(ls: LeoServer, params: None) -> None:
    """Stop crawls promptly and close the databases."""
    cancel_all(ls)
    tasks = [c.task for c in ls.crawls.values() if not c.task.done()]
    if tasks:
        await asyncio.wait(tasks, timeout=5)
    if ls._services is not None:
        if ls.services.cloud is not None:
            await ls.services.cloud.stop(deadline=5.0)  # what is not sent stays queued
        await ls.services.close()


def did_change_configuration(ls: LeoServer, params: types.DidChangeConfigurationParams) -> None:
    """Apply new settings live (the `leo` section, or the whole object)."""
    raw = params.settings
    if isinstance(raw, dict) and isinstance(raw.get("leo"), dict):
        raw = raw["leo"]
    if not isinstance(raw, dict):
        return
    new = build_settings(raw)
    for problem in new.problems:
        ls.tell(f"leo: invalid option {problem}")
    later = ls.services.apply_settings(new)
    if later:
        ls.tell(
            f"leo: {' and '.join(later)} changes take effect after a restart",
            types.MessageType.Info,
        )
    logger.info("configuration updated")


def did_change_workspace_folders(
    ls: LeoServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    """Crawl added folders, drop removed ones."""
    for f in params.event.removed:
        try:
            root = uri_to_path(f.uri)
        except Exception:
            continue
        project = ls.services.registry.for_path(root, create=False)
        if project is not None and project.root == root:
            c = ls.crawls.pop(project.id, None)
            if c is not None:
                c.cancel.set()
            ls.services.registry.remove(project.id)
    for f in params.event.added:
        try:
            root = uri_to_path(f.uri)
        except Exception:
            continue
        if root.is_dir():
            start_crawl(ls, ls.services.registry.add_folder(root, f.name))


def progress_cancel(ls: LeoServer, params: types.WorkDoneProgressCancelParams) -> None:
    """The user cancelled a crawl from the progress UI."""
    event = ls.progress_cancels.get(str(params.token))
    if event is not None:
        event.set()


def register(server: LeoServer) -> None:
    """Register lifecycle handlers."""
    server.feature(types.INITIALIZE)(initialize)
    server.feature(types.INITIALIZED)(initialized)
    server.feature(types.SHUTDOWN)(shutdown)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
    server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(did_change_workspace_folders)
    server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)(progress_cancel)
