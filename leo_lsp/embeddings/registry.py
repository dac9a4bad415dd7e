"""Embedders by model_id: which provider can embed a query (or a chunk) for a given model.

While an index switches models, searches still read the old model's vectors, so a query must be
embedded with *that* model. The registry knows the providers in use: the configured one, the
members of a `FallbackEmbedder` (server and local model), and the embedded local model, which is
always constructible (it is created on first need, or the loaded instance is reused).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from leo_lsp.embeddings.local import MODEL_ID as LOCAL_MODEL_ID
from leo_lsp.embeddings.local import LocalEmbedder
from leo_lsp.embeddings.provider import EmbeddingProvider

logger = logging.getLogger(__name__)


class EmbedderRegistry:
    """Find the provider of a model_id among those leo has (or can build)."""

    def __init__(
        self,
        current: EmbeddingProvider,
        *,
        make_local: Callable[[], LocalEmbedder] = LocalEmbedder,
    ) -> None:
        self.current = current
        self._make_local = make_local
        self._own_local: LocalEmbedder | None = None

    def providers(self) -> list[EmbeddingProvider]:
        """The providers in use, the configured one first."""
        out: list[EmbeddingProvider] = [self.current]
        for member in ("remote", "local"):
            found = getattr(self.current, member, None)
            if isinstance(found, EmbeddingProvider):
                out.append(found)
        if self._own_local is not None:
            out.append(self._own_local)
        return out

    def get(self, model_id: str) -> EmbeddingProvider | None:
        """The provider embedding with `model_id`, or None if leo has none for it."""
        current = self.current
        if current.model_id == model_id:
            return current
        # A FallbackEmbedder on its local model knows its server is down: asking the server for
        # every query would only wait for it (`try_remote` brings it back).
        down = getattr(current, "remote", None)
        if not getattr(current, "using_fallback", False):
            down = None
        for provider in self.providers()[1:]:
            if provider.model_id == model_id and provider is not down:
                return provider
        if model_id == LOCAL_MODEL_ID:
            logger.info("loading the embedded model to query vectors of %s", model_id)
            self._own_local = self._make_local()
            return self._own_local
        return None

    async def close(self) -> None:
        """Close what the registry created itself (the others belong to their owners)."""
        own, self._own_local = self._own_local, None
        if own is not None:
            await own.close()


__all__ = ["EmbedderRegistry"]
