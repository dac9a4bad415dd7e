"""The indexing pipeline: gate → chunk → redact → store (lexical at once) → embed (vectors after).

Lexical rows are written as soon as a file is chunked, so search answers from the first second;
vectors follow in length-sorted batches across files, which is what keeps the embedder at its raw
rate. Buffers being edited are debounced per document and embedded ahead of the crawl.

When the embedding model changes, every store keeps serving its old model's vectors while the
background retry re-embeds with the new one; an edited buffer is embedded with both (when the old
model's provider is at hand), so it is searchable at once. While a `FallbackEmbedder` runs on its
local model, a probe of the server backs off from PROBE_FIRST to PROBE_MAX seconds; when the server
answers, its model becomes the target again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from leo_lsp.embeddings.provider import EmbeddingProvider
from leo_lsp.embeddings.registry import EmbedderRegistry
from leo_lsp.errors import EmbeddingUnavailable, LeoError, NotFound
from leo_lsp.indexing.chunker import ParsedDocument
from leo_lsp.indexing.crawler import FoundFile, walk
from leo_lsp.indexing.projects import Project, ProjectRegistry
from leo_lsp.records import Chunk, Decision, content_hash
from leo_lsp.settings import Settings
from leo_lsp.store.project_store import PendingTexts

logger = logging.getLogger(__name__)

Progress = Callable[[str, int], None]  # (message, percentage 0-100)

# Chunks handed to the embedder per call: large enough for it to sort by length into full batches,
# small enough that an edited buffer waits at most one call for the embedding lock.
EMBED_WINDOW = 64
# Pending chunks fetched (and length-sorted) at once.
PENDING_WINDOW = 4096
# Files per pending query on a whole-project pass: a query over every chunk costs ~6 s at 1M
# chunks, and a pass asking that for each window of 4,096 texts took hours (quadratic).
FILE_GROUP = 256

# Chunks queued while the embedding server is down are retried in the background: the first retry
# after RETRY_FIRST seconds, doubling (with jitter) up to RETRY_MAX, until every chunk has a vector.
RETRY_FIRST = 2.0
RETRY_MAX = 60.0

# While on the local fallback, the embedding server is probed after PROBE_FIRST seconds, doubling
# up to PROBE_MAX: a server back after a restart is used again within minutes, and a server that
# stays down costs one request every five minutes.
PROBE_FIRST = 30.0
PROBE_MAX = 300.0

# (available, message): the embedding server became unavailable, or is back and the queue drained.
EmbeddingNotice = Callable[[bool, str], None]


@dataclass
class IndexOutcome:
    """What happened to one file."""

    path: str
    decision: Decision
    chunks: int = 0
    pending: int = 0
    unchanged: bool = False


@dataclass
class CrawlReport:
    """Totals of one crawl, as `leo.indexWorkspace` returns them."""

    files: int = 0
    chunks: int = 0
    skipped: int = 0
    denied: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0
    pending: int = 0
    took_ms: float = 0.0
    cancelled: bool = False
    errors: list[str] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """camelCase result for the client."""
        return {
            "files": self.files,
            "chunks": self.chunks,
            "skipped": self.skipped,
            "denied": self.denied,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "embedded": self.embedded,
            "pending": self.pending,
            "tookMs": round(self.took_ms, 1),
            "cancelled": self.cancelled,
            "errors": list(self.errors),
            "note": self.note,
        }


class Indexer:
    """Runs the pipeline for every project; all CPU and disk work leaves the event loop."""

    def __init__(
        self,
        registry: ProjectRegistry,
        chunker: Any,
        embedder: EmbeddingProvider,
        settings: Settings,
        detect_language: Callable[[str, str | None], str],
    ) -> None:
        self.registry = registry
        self.chunker = chunker
        self.embedder = embedder
        self.settings = settings
        self.detect_language = detect_language
        self._embed_lock = asyncio.Lock()
        self._debounced: dict[str, asyncio.Task[None]] = {}
        self.embedding_error: str | None = None
        self.embed_calls = 0  # texts sent to the embedder (tests count re-embedding with it)
        self.on_indexed: list[Callable[[Project, IndexOutcome], None]] = []
        # Open buffers keep their parse tree, so an edit re-parses and re-chunks incrementally.
        self._buffers: dict[str, ParsedDocument] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.on_embedding_notice: list[EmbeddingNotice] = []
        self.retry_first = RETRY_FIRST
        self.retry_max = RETRY_MAX
        self._retry: asyncio.Task[None] | None = None
        self.probe_first = PROBE_FIRST
        self.probe_max = PROBE_MAX
        self._probe: asyncio.Task[bool] | None = None
        # Providers by model_id, to embed edits with a switching store's serving model too.
        self.embedders: EmbedderRegistry = EmbedderRegistry(embedder)
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run background work, keeping a reference so it is not garbage-collected mid-flight."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- one file --------------------------------------------------------------------------

    async def index_text(
        self,
        project: Project,
        path: Path,
        text: str,
        *,
        size: int | None = None,
        mtime_ns: int = 0,
        language_id: str | None = None,
        embed: bool = True,
        force: bool = False,
        buffer: bool = False,
    ) -> IndexOutcome:
        """Index `text` as the content of `path` (a buffer's text or the file read from disk).

        With `buffer`, the text is an open editor buffer: it is parsed incrementally.
        """
        rel = project.rel(path)
        if rel is None:
            raise NotFound(f"{path} is not inside project {project.id}")
        limit = self.settings.index.max_file_bytes
        if len(text) > limit:
            # Over the limit in characters is over it in bytes: deny without encoding or
            # hashing tens of megabytes on the event loop.
            decision = Decision(
                rel, False, f"larger than index.maxFileBytes ({limit} bytes)", "rules"
            )
            await asyncio.to_thread(
                project.store.upsert_file,
                rel,
                content_hash=f"size:{len(text)}",
                size=len(text) if size is None else size,
                mtime_ns=mtime_ns,
                language="",
                decision=decision,
                chunks=[],
            )
            return IndexOutcome(rel, decision)
        data = text.encode("utf-8", "surrogatepass")
        chash = content_hash(text)
        state = await asyncio.to_thread(project.store.file_state, rel)
        if state is not None and state.content_hash == chash and not force:
            if state.mtime_ns != mtime_ns and mtime_ns:
                await asyncio.to_thread(project.store.touch_file, rel, len(data), mtime_ns)
            outcome = IndexOutcome(
                rel, Decision(rel, state.allowed, "unchanged", "cache"), unchanged=True
            )
            if embed and state.allowed:
                outcome.pending = await self._embed_or_queue(project, rel)
            return outcome
        decision = await project.gate.decide(path, data, chash)
        decision = replace(decision, path=rel)
        language = self.detect_language(str(path), language_id)
        chunks: list[Chunk] = []
        if decision.allowed:
            chunks = await asyncio.to_thread(
                self._chunk, project, rel, text, language, str(path) if buffer else None
            )
        pending = await asyncio.to_thread(
            project.store.upsert_file,
            rel,
            content_hash=chash,
            size=len(data) if size is None else size,
            mtime_ns=mtime_ns,
            language=language,
            decision=decision,
            chunks=chunks,
        )
        outcome = IndexOutcome(rel, decision, len(chunks), pending)
        if embed and pending:
            outcome.pending = await self._embed_or_queue(project, rel)
        for hook in self.on_indexed:
            hook(project, outcome)
        return outcome

    def syntax_errors(self, path: Path) -> list[int]:
        """Lines with syntax errors in an open buffer's current parse (empty when clean)."""
        doc = self._buffers.get(str(path))
        return doc.error_lines() if doc is not None else []

    def _chunk(
        self, project: Project, rel: str, text: str, language: str, buffer_key: str | None
    ) -> list[Chunk]:
        chunks: list[Chunk]
        if buffer_key is not None:
            doc = self._buffers.get(buffer_key)
            if doc is None or doc.language != language or doc.path != rel:
                doc = ParsedDocument(rel, language, text, self.chunker)
                self._buffers[buffer_key] = doc
                chunks = doc.chunks
            else:
                chunks = doc.update(text)
        else:
            chunks = self.chunker.chunk(text, rel, language)
        out: list[Chunk] = []
        for ch in chunks:
            red_text, n = project.gate.redact(ch.text)
            red_ctx, m = project.gate.redact(ch.context) if ch.context else (ch.context, 0)
            out.append(replace(ch, text=red_text, context=red_ctx) if n or m else ch)
        return out

    async def index_file(
        self, project: Project, path: Path, *, force: bool = False, embed: bool = True
    ) -> IndexOutcome:
        """Read `path` from disk (bounded by maxFileBytes) and index it."""
        try:
            st = await asyncio.to_thread(path.stat)
            data = await asyncio.to_thread(_read_bounded, path, self.settings.index.max_file_bytes)
        except FileNotFoundError:
            rel = project.rel(path) or str(path)
            await asyncio.to_thread(project.store.delete_file, rel)
            raise NotFound(f"{path} does not exist") from None
        except OSError as exc:
            raise LeoError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if len(data) > self.settings.index.max_file_bytes:
            rel = project.rel(path) or str(path)
            decision = Decision(
                rel,
                False,
                f"larger than index.maxFileBytes ({self.settings.index.max_file_bytes} bytes)",
                "rules",
            )
            await asyncio.to_thread(
                project.store.upsert_file,
                rel,
                content_hash=f"size:{st.st_size}",
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                language="",
                decision=decision,
                chunks=[],
            )
            return IndexOutcome(rel, decision)
        text = data.decode("utf-8", errors="replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in data:
            logger.info("%s is not valid UTF-8; indexed with replacement characters", path)
        if b"\0" in data[:8192]:
            # Binary: let the gate see the raw bytes (it denies NUL-bearing files).
            rel = project.rel(path) or str(path)
            decision = await project.gate.decide(path, data, content_hash(text))
            decision = replace(decision, path=rel)
            await asyncio.to_thread(
                project.store.upsert_file,
                rel,
                content_hash=content_hash(text),
                size=len(data),
                mtime_ns=st.st_mtime_ns,
                language="",
                decision=decision,
                chunks=[],
            )
            return IndexOutcome(rel, decision)
        return await self.index_text(
            project,
            path,
            text,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            embed=embed,
            force=force,
        )

    # -- debounced buffers -----------------------------------------------------------------

    def schedule(
        self,
        path: Path,
        get_text: Callable[[], str | None],
        *,
        language_id: str | None = None,
        delay_ms: int | None = None,
        on_done: Callable[[IndexOutcome], None] | None = None,
    ) -> asyncio.Task[None]:
        """Re-index a buffer after the debounce; a newer call cancels the pending one."""
        key = str(path)
        old = self._debounced.pop(key, None)
        if old is not None and not old.done():
            old.cancel()
        delay = (self.settings.index.debounce_ms if delay_ms is None else delay_ms) / 1000

        async def run() -> None:
            await asyncio.sleep(delay)  # the debounce itself, not synchronisation
            text = get_text()
            if text is None:
                return
            project = self.registry.for_path(path)
            assert project is not None
            rel = project.rel(path)
            if rel is not None:
                project.open_paths.add(rel)
            try:
                outcome = await self.index_text(
                    project, path, text, language_id=language_id, buffer=True
                )
                if on_done is not None:
                    on_done(outcome)
            except LeoError as exc:
                logger.warning("indexing %s failed: %s", path, exc.message)
            except Exception:
                logger.exception("indexing %s failed", path)

        task = asyncio.get_running_loop().create_task(run(), name=f"index {key}")
        self._debounced[key] = task
        task.add_done_callback(
            lambda t: self._debounced.pop(key, None) if self._debounced.get(key) is t else None
        )
        return task

    async def flush(self) -> None:
        """Wait for every scheduled re-index (tests and shutdown)."""
        while self._debounced:
            await asyncio.gather(*list(self._debounced.values()), return_exceptions=True)

    async def close_buffer(self, path: Path, saved: bool) -> None:
        """A buffer closed: an unsaved one's index returns to the file on disk."""
        old = self._debounced.pop(str(path), None)
        if old is not None:
            old.cancel()
        self._buffers.pop(str(path), None)
        project = self.registry.for_path(path, create=False)
        if project is None:
            return
        rel = project.rel(path)
        if rel is not None:
            project.open_paths.discard(rel)
        if not saved:
            try:
                await self.index_file(project, path)
            except NotFound:
                pass

    # -- embedding -------------------------------------------------------------------------

    async def _embed_or_queue(self, project: Project, rel: str) -> int:
        """Embed one file's pending chunks; if the server is down they stay queued (returned)."""
        if project.store.switching:
            await self._embed_serving(project, rel)
        if self.embedding_error is not None and self._retry is not None and not self._retry.done():
            # Known down: the background retry will embed them; do not wait on the server per edit.
            return await self._pending_chunks(project, rel)
        try:
            await self.embed_pending(project, paths=[rel])
        except EmbeddingUnavailable:
            return await self._pending_chunks(project, rel)
        return 0

    async def _embed_serving(self, project: Project, rel: str) -> None:
        """While a store switches models: give one file's new chunks vectors of the model that
        serves searches too, so an edit is found by meaning before the switch completes.
        """
        store = project.store
        model = store.serving_model
        provider = self.embedders.get(model)
        if provider is None:
            return
        pending = await asyncio.to_thread(store.pending, EMBED_WINDOW, [rel], model=model)
        if not pending:
            return
        # Not under the embedding lock: the re-embedding holds it while it waits for the new
        # model's provider, and this is another provider (a local one has its own batch lock).
        try:
            vectors = await provider.embed_documents([p.text for p in pending])
        except EmbeddingUnavailable as exc:
            logger.info("cannot embed %s with %s meanwhile: %s", rel, model, exc.message)
            return
        if provider.model_id != model:
            return  # a FallbackEmbedder fell back mid-call: not this model's vectors
        self.embed_calls += len(pending)
        await asyncio.to_thread(store.save_vectors, [p.hash for p in pending], vectors, model=model)

    @staticmethod
    async def _pending_chunks(project: Project, rel: str) -> int:
        pending = await asyncio.to_thread(project.store.pending, EMBED_WINDOW, [rel])
        return sum(1 for p in pending if not getattr(p, "name_view", False))

    async def embed_pending(
        self,
        project: Project,
        *,
        paths: list[str] | None = None,
        progress: Callable[[int], None] | None = None,
        cancel: asyncio.Event | None = None,
    ) -> int:
        """Embed chunks without vectors (of `paths`, or all); return how many were stored.

        Pending chunks are fetched in large windows and sorted by length, so the embedder's
        batches are padded to near-equal lengths (padding to the longest of a random batch
        halves the model's rate); the lock is released between slices so that an edited buffer
        waits at most one slice.
        """
        if paths is not None:
            return await self._embed_windows(project, paths, "all", progress, cancel, 0)
        # A whole-project pass: every chunk first, then every name view (k-NN needs the chunk
        # vectors), each walking the files a group at a time, most recently changed first.
        files = await asyncio.to_thread(project.store.paths_by_recency)
        done = 0
        for texts in ("chunks", "names"):
            for start in range(0, len(files), FILE_GROUP):
                if cancel is not None and cancel.is_set():
                    return done
                group = files[start : start + FILE_GROUP]
                done = await self._embed_windows(project, group, texts, progress, cancel, done)
        if project.store.switching or await asyncio.to_thread(project.store.file_count) != len(
            files
        ):
            # Files added during the walk, or a switch to complete: one pass over everything.
            done = await self._embed_windows(project, None, "all", progress, cancel, done)
        return done

    async def _embed_windows(
        self,
        project: Project,
        paths: list[str] | None,
        texts: PendingTexts,
        progress: Callable[[int], None] | None,
        cancel: asyncio.Event | None,
        done: int,
    ) -> int:
        """Embed the pending texts of `paths` (or of the project) window by window."""
        while cancel is None or not cancel.is_set():
            window = await asyncio.to_thread(
                project.store.pending, PENDING_WINDOW, paths, texts=texts
            )
            if not window:
                if paths is None and project.store.switching:
                    # Every text has a vector of the new model: it serves from now on.
                    await asyncio.to_thread(project.store.complete_switch)
                break
            # Chunks before name views: chunk vectors are what k-NN search needs first.
            window.sort(key=lambda p: (p.name_view, len(p.text)))
            for start in range(0, len(window), EMBED_WINDOW):
                if cancel is not None and cancel.is_set():
                    break
                batch = window[start : start + EMBED_WINDOW]
                async with self._embed_lock:
                    try:
                        vectors = await self.embedder.embed_documents([p.text for p in batch])
                    except EmbeddingUnavailable as exc:
                        self._embedding_failed(project, exc.message)
                        raise
                    self.embedding_error = None
                    self.embed_calls += len(batch)
                    store = project.store
                    # The vectors belong to the model the embedder names right after the call.
                    model, dim = self.embedder.model_id, self.embedder.dim
                    if (store.model_id, store.dim) != (model, dim):
                        # A new model (or a dimension learned only now): the old vectors keep
                        # serving while this loop re-embeds every chunk with the model now live.
                        await asyncio.to_thread(store.use_model, model, dim)
                    await asyncio.to_thread(
                        store.save_vectors, [p.hash for p in batch], vectors, model=model
                    )
                done += len(batch)
                if progress is not None:
                    progress(done)
        return done

    def model_changed(self) -> None:
        """The embedder's model or dimension changed: switch every store, re-embed behind.

        Runs synchronously (hook of the provider), so that no vector of the new model is written
        as one of the old. The stores keep serving the old model's vectors until the new are
        complete; on the local fallback, the server is probed in the background.
        """
        model_id, dim = self.embedder.model_id, self.embedder.dim
        self._schedule_probe()
        if dim <= 0:
            return
        switched = False
        for project in self.registry.all():
            try:
                switched |= project.store.use_model(model_id, dim)
            except LeoError as exc:
                logger.error("cannot switch %s to %s: %s", project.id, model_id, exc.message)
        if switched:
            logger.warning(
                "embedding model is now %s (%d dims): re-embedding; the previous model's vectors "
                "answer searches until then",
                model_id,
                dim,
            )
            self._schedule_retry(first=0.0)

    def _schedule_probe(self) -> None:
        """On the local fallback, start the one task that probes the server (no-op otherwise)."""
        if self._closed or not getattr(self.embedder, "using_fallback", False):
            return
        if self._probe is not None and not self._probe.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._probe = loop.create_task(self._probe_remote(), name="probe embedding server")

    async def _probe_remote(self) -> bool:
        """Probe the server with backoff until it is used again; True when it is."""
        try_remote = getattr(self.embedder, "try_remote", None)
        if try_remote is None:
            return False
        delay = self.probe_first
        while not self._closed and getattr(self.embedder, "using_fallback", False):
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # backoff, not synchronisation
            try:
                if await try_remote():
                    # Its model_changed hook has made the server's model every store's target.
                    self._notify(
                        True,
                        f"the embedding server is back; re-embedding with {self.embedder.model_id}"
                        " (the local model's vectors answer searches until then)",
                    )
                    return True
            except Exception:
                logger.exception("probing the embedding server failed")
            delay = min(max(delay, 0.001) * 2, self.probe_max)
            logger.info("embedding server still down; next probe in ~%.0f s", delay)
        return not getattr(self.embedder, "using_fallback", False)

    @property
    def probe_task(self) -> asyncio.Task[bool] | None:
        """The running server probe (tests await it), if any."""
        return self._probe

    def _embedding_failed(self, project: Project, message: str) -> None:
        first = self.embedding_error is None
        self.embedding_error = message
        if first:
            pending = project.store.pending_count(max_age=5.0)
            logger.warning("embedding unavailable: %s (%d chunks queued)", message, pending)
            self._notify(
                False,
                f"the embedding server is unavailable ({message}); {pending} chunks are queued "
                "and will be embedded when it is back. Lexical search works meanwhile.",
            )
        self._schedule_retry()

    def _notify(self, available: bool, message: str) -> None:
        for hook in self.on_embedding_notice:
            try:
                hook(available, message)
            except Exception:
                logger.exception("embedding notice hook failed")

    def _schedule_retry(self, *, first: float | None = None) -> None:
        """Start the one background task that embeds queued chunks (no-op if it runs)."""
        if self._closed or (self._retry is not None and not self._retry.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = self.retry_first if first is None else first
        self._retry = loop.create_task(self._retry_pending(delay), name="embed queued chunks")

    async def _retry_pending(self, delay: float) -> None:
        """Embed every project's queued chunks, backing off while the server stays down."""
        outage = self.embedding_error is not None
        embedded = 0
        while not self._closed:
            # Backoff between attempts (with jitter so several leo instances do not align).
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            try:
                for project in self.registry.all():
                    embedded += await self.embed_pending(project)
            except EmbeddingUnavailable:
                outage = True
                delay = min(max(delay, self.retry_first) * 2, self.retry_max)
                logger.info("embedding still unavailable; next retry in ~%.0f s", delay)
                continue
            except Exception:  # e.g. a project closed meanwhile: try again later
                logger.exception("embedding queued chunks failed")
                delay = min(max(delay, self.retry_first) * 2, self.retry_max)
                continue
            break
        if outage and not self._closed:
            logger.info("embedding server is back: %d queued chunks embedded", embedded)
            self._notify(True, f"the embedding server is back; {embedded} queued chunks embedded")

    async def aclose(self) -> None:
        """Stop background embedding (shutdown); queued chunks stay queued in the store."""
        self._closed = True
        task, self._retry = self._retry, None
        probe, self._probe = self._probe, None
        # Buffer re-indexes and background work end before the databases close under them.
        pending = [t for t in (task, probe, *self._debounced.values(), *self._background) if t]
        for t in pending:
            if not t.done():
                t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- crawl -----------------------------------------------------------------------------

    async def crawl(
        self,
        project: Project,
        *,
        force: bool = False,
        progress: Progress | None = None,
        cancel: asyncio.Event | None = None,
    ) -> CrawlReport:
        """Index every approved file of a project; return when all are chunked, embedded, stored."""
        t0 = time.perf_counter()
        report = CrawlReport()
        cancel = cancel or asyncio.Event()
        say = progress or (lambda _m, _p: None)
        say("Scanning files", 0)
        if project.single_file is not None:
            found = []
            if project.single_file.exists():
                st = project.single_file.stat()
                found = [
                    FoundFile(
                        project.single_file, project.single_file.name, st.st_size, st.st_mtime_ns
                    )
                ]
        else:
            found = await asyncio.to_thread(
                lambda: list(
                    walk(project.root, project.rules.is_ignored_dir, should_stop=cancel.is_set)
                )
            )
        if cancel.is_set():
            # A cancelled walk saw only part of the tree: nothing may be judged "removed" from it
            # (a crawl superseded by a forced one would delete what the new one indexes).
            report.cancelled = True
            report.took_ms = (time.perf_counter() - t0) * 1000
            say("Cancelled", 100)
            return report
        states = await asyncio.to_thread(project.store.file_states)
        seen: set[str] = set()
        todo: list[FoundFile] = []
        for f in found:
            seen.add(f.rel)
            known = states.get(f.rel)
            if (
                not force
                and known is not None
                and known.size == f.size
                and known.mtime_ns == f.mtime_ns
            ):
                report.unchanged += 1
                if known.allowed:
                    report.files += 1
                else:
                    report.denied += 1
                continue
            todo.append(f)
        for rel in states.keys() - seen:
            if rel in project.open_paths:
                continue
            await asyncio.to_thread(project.store.delete_file, rel)
            report.removed += 1
        # Recently changed files first: they are the ones the developer is working on.
        todo.sort(key=lambda f: -f.mtime_ns)
        total = len(todo)
        last_pct = -1
        for i, f in enumerate(todo):
            if cancel.is_set():
                report.cancelled = True
                break
            if f.rel in project.open_paths:
                continue  # the buffer's text wins over the disk
            try:
                outcome = await self.index_file(project, f.path, force=force, embed=False)
            except NotFound:
                report.skipped += 1
                continue
            except LeoError as exc:
                report.skipped += 1
                report.errors.append(f"{f.rel}: {exc.message}")
                continue
            except Exception as exc:  # one bad file must not end the crawl
                logger.exception("indexing %s failed", f.rel)
                report.skipped += 1
                report.errors.append(f"{f.rel}: {exc}")
                continue
            if outcome.decision.allowed:
                report.files += 1
                report.chunks += outcome.chunks
            else:
                report.denied += 1
            pct = int(50 * (i + 1) / max(total, 1))
            if pct != last_pct:
                last_pct = pct
                say(f"Chunking {i + 1}/{total}", pct)
        if not report.cancelled:
            pending = await asyncio.to_thread(project.store.pending_texts)
            if pending:

                def on_embedded(n: int) -> None:
                    # Edits during the crawl add texts: never report past 100 %.
                    n = min(n, pending)
                    say(f"Embedding {n}/{pending}", 50 + int(50 * n / max(pending, 1)))

                try:
                    report.embedded = await self.embed_pending(
                        project, progress=on_embedded, cancel=cancel
                    )
                except EmbeddingUnavailable as exc:
                    # Chunks and lexical rows are stored; vectors follow when the server is back.
                    report.errors.append(f"embedding: {exc.message}")
            report.cancelled = cancel.is_set()
        report.pending = await asyncio.to_thread(project.store.pending_count)
        if report.pending and self.embedding_error is not None:
            report.note = (
                f"{report.pending} chunks are queued for embedding (the embedding server is "
                "unavailable); lexical search covers them meanwhile"
            )
        report.took_ms = (time.perf_counter() - t0) * 1000
        project.crawled = not report.cancelled
        say("Done", 100)
        logger.info(
            "crawl of %s: %d files, %d chunks, %d denied, %d unchanged in %.0f ms",
            project.id,
            report.files,
            report.chunks,
            report.denied,
            report.unchanged,
            report.took_ms,
            extra={"project": project.id, "ms": round(report.took_ms, 1)},
        )
        return report


def _read_bounded(path: Path, limit: int) -> bytes:
    """Read at most limit + 1 bytes: enough to know a file is too large without loading it."""
    with path.open("rb") as fh:
        return fh.read(limit + 1)
