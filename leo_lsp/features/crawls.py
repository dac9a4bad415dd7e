"""Running crawls with `$/progress`: one task per project, joined by later requests."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types

from leo_lsp.indexing.pipeline import CrawlReport
from leo_lsp.indexing.projects import Project

if TYPE_CHECKING:
    from leo_lsp.server import LeoServer

logger = logging.getLogger(__name__)


class Crawl:
    """A running crawl of one project and the way to cancel it."""

    def __init__(self, task: asyncio.Task[CrawlReport], cancel: asyncio.Event) -> None:
        self.task = task
        self.cancel = cancel


def _progress_supported(ls: LeoServer) -> bool:
    caps = ls.client_capabilities
    return bool(caps and caps.window and caps.window.work_done_progress)


async def _crawl_with_progress(
    ls: LeoServer, project: Project, force: bool, cancel: asyncio.Event
) -> CrawlReport:
    token: str | None = None
    if _progress_supported(ls):
        token = f"leo-index-{uuid.uuid4().hex[:12]}"
        try:
            await asyncio.wait_for(ls.work_done_progress.create_async(token), timeout=5)
            ls.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(
                    title=f"leo: indexing {project.name}", cancellable=True, percentage=0
                ),
            )
        except Exception as exc:  # a client that never answers must not stall the crawl
            logger.info("no progress for this crawl: %s", exc)
            token = None
    ls.progress_cancels[token or ""] = cancel
    last = [-1]

    def report(message: str, pct: int) -> None:
        if token is not None and pct != last[0]:
            last[0] = pct
            ls.work_done_progress.report(
                token, types.WorkDoneProgressReport(message=message, percentage=pct)
            )

    try:
        result = await ls.services.indexer.crawl(
            project, force=force, progress=report, cancel=cancel
        )
    finally:
        ls.progress_cancels.pop(token or "", None)
        if token is not None:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
    return result


def start_crawl(ls: LeoServer, project: Project, *, force: bool = False) -> Crawl:
    """Start (or, when not forced, join) the crawl of a project."""
    running: Crawl | None = ls.crawls.get(project.id)
    if running is not None and not running.task.done():
        if not force:
            return running
        running.cancel.set()
    cancel = asyncio.Event()
    task = asyncio.get_running_loop().create_task(
        _crawl_with_progress(ls, project, force, cancel), name=f"crawl {project.id}"
    )

    def done(t: asyncio.Task[CrawlReport]) -> None:
        if not t.cancelled() and t.exception() is not None:
            logger.error("crawl of %s failed: %s", project.id, t.exception())

    task.add_done_callback(done)
    crawl = Crawl(task, cancel)
    ls.crawls[project.id] = crawl
    return crawl


def cancel_all(ls: LeoServer) -> None:
    """Ask every running crawl to stop (shutdown)."""
    for crawl in ls.crawls.values():
        crawl.cancel.set()
