"""The interface every embedding provider implements; callers depend on this alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def model_id(self) -> str:
        """Identifies the model; stored with every vector so a model change re-embeds."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed code chunks; shape (len(texts), dim), rows L2-normalised."""
        ...

    async def embed_query(self, text: str) -> Vectors:
        """Embed one search query; shape (dim,), L2-normalised."""
        ...

    async def close(self) -> None:
        """Release resources (sessions, HTTP clients)."""
        ...
