"""Build the embedding provider the settings ask for.

`provider = "local"` (default): the embedded MiniLM model. `provider = "openai"`: an
OpenAI-compatible server (LM Studio); with `fallbackToLocal` the server is wrapped in a
`FallbackEmbedder`.

Fallback behaviour (vectors of two models must never meet in one index):
- `FallbackEmbedder` starts on the server. When the server cannot embed (`EmbeddingUnavailable`:
  down, timing out, answering garbage), it switches to the local model *and stays there*; from that
  call on, `model_id` and `dim` are the local model's. The same batch is then embedded locally, so
  the vectors a call returns always belong to the `model_id` read right after it.
- Callers store `model_id` with every vector and compare a query only with vectors of its own
  model (a query embedded by MiniLM is meaningless against Nomic vectors). A `model_id` change
  therefore means "re-embed": the stores re-embed with the local model in the background while
  the vectors they have keep serving (queried through `EmbedderRegistry`, see embeddings.registry).
- It never switches back on its own, since switching back forces a second re-embed; the Indexer
  calls `try_remote()` with backoff while on the fallback and, when it returns True, the
  `model_id` is the server's again.
- Without `fallbackToLocal`, the server's `EmbeddingUnavailable` reaches the caller, which queues
  the work and reports it; nothing is silently embedded with another model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import httpx

from leo_lsp.embeddings.local import LocalEmbedder
from leo_lsp.embeddings.openai_compat import OpenAICompatEmbedder
from leo_lsp.embeddings.provider import EmbeddingProvider, Vectors
from leo_lsp.errors import EmbeddingUnavailable
from leo_lsp.openai_api import OpenAICompatClient
from leo_lsp.settings import EmbeddingSettings

logger = logging.getLogger(__name__)


class FallbackEmbedder:
    """The server's embedder, switching (stickily) to the local model when the server fails."""

    def __init__(self, remote: OpenAICompatEmbedder, local: LocalEmbedder) -> None:
        self.remote = remote
        self.local = local
        self._active: EmbeddingProvider = remote
        self.fallback_reason: str | None = None
        """Why the local model is in use (None while the server is)."""
        self.fallback_since: float | None = None
        """`time.time()` of the switch to the local model."""
        self.on_model_change: list[Callable[[], None]] = []
        """Called when `model_id` or `dim` changes (a switch, or the server's dim learned)."""
        remote.on_model_change.append(self._remote_changed)

    @property
    def using_fallback(self) -> bool:
        """Whether the local model is embedding instead of the server."""
        return self._active is self.local

    @property
    def model_id(self) -> str:
        """The model_id of the provider in use (changes on a switch: re-embed)."""
        return self._active.model_id

    @property
    def dim(self) -> int:
        """The dimension of the provider in use."""
        return self._active.dim

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed with the server, or with the local model once the server has failed."""
        if not self.using_fallback:
            try:
                return await self.remote.embed_documents(texts)
            except EmbeddingUnavailable as exc:
                self._switch(exc)
        return await self.local.embed_documents(texts)

    async def embed_query(self, text: str) -> Vectors:
        """Embed a query with the provider in use (switching first if the server fails)."""
        if not self.using_fallback:
            try:
                return await self.remote.embed_query(text)
            except EmbeddingUnavailable as exc:
                self._switch(exc)
        return await self.local.embed_query(text)

    async def probe(self) -> int:
        """Learn the server's dimension, or switch to the local model if it cannot embed."""
        if not self.using_fallback:
            try:
                await self.remote.probe()
            except EmbeddingUnavailable as exc:
                self._switch(exc)
        return self.dim

    async def try_remote(self) -> bool:
        """Probe the server; if it answers, use it again (its model_id returns). True if in use."""
        if not self.using_fallback:
            return True
        try:
            await self.remote.probe()
        except EmbeddingUnavailable as exc:
            self.fallback_reason = exc.message
            return False
        logger.warning(
            "embedding server is back: using %s again (vectors of %s will be re-embedded)",
            self.remote.model_id,
            self.local.model_id,
        )
        self._active = self.remote
        self.fallback_reason = None
        self.fallback_since = None
        self._changed()
        return True

    async def close(self) -> None:
        """Close both providers."""
        await self.remote.close()
        await self.local.close()

    def _switch(self, exc: EmbeddingUnavailable) -> None:
        logger.warning(
            "embedding server failed (%s); falling back to the embedded model %s — the index "
            "will be rebuilt with it, and model_id changes from %s",
            exc.message,
            self.local.model_id,
            self.remote.model_id,
        )
        self._active = self.local
        self.fallback_reason = exc.message
        self.fallback_since = time.time()
        self._changed()

    def _remote_changed(self) -> None:
        if not self.using_fallback:
            self._changed()

    def _changed(self) -> None:
        for hook in self.on_model_change:
            hook()


def create_provider(
    settings: EmbeddingSettings,
    *,
    http: httpx.AsyncClient | None = None,
    api_key: str | None = None,
    local: LocalEmbedder | None = None,
) -> EmbeddingProvider:
    """The provider the settings ask for (local by default). `local` reuses a loaded model."""
    if settings.provider != "openai":
        return local or LocalEmbedder()
    client = OpenAICompatClient(
        settings.url,
        http=http,
        api_key=api_key,
        read_timeout=settings.timeout_seconds,
        max_concurrency=settings.max_concurrency,
    )
    remote = OpenAICompatEmbedder(client, settings.model, settings.batch_size, owns_client=True)
    if settings.fallback_to_local:
        return FallbackEmbedder(remote, local or LocalEmbedder())
    return remote


__all__ = ["FallbackEmbedder", "create_provider"]
