"""Embeddings from any OpenAI-compatible server (LM Studio with a Nomic model is the usual setup).

Some model families are trained with task prefixes and embed noticeably worse without them
(Nomic: `search_document: ` / `search_query: `; E5: `passage: ` / `query: `). `PREFIXES` maps a
model-name pattern to its (document, query) prefixes; the first match wins, so put the specific
patterns before the general ones. Add a family by adding a row.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence

import numpy as np

from leo_lsp.embeddings.provider import Vectors
from leo_lsp.errors import EmbeddingUnavailable, UpstreamError
from leo_lsp.openai_api import OpenAICompatClient

logger = logging.getLogger(__name__)

# (pattern on the lower-cased model name, document prefix, query prefix); first match wins.
PREFIXES: list[tuple[re.Pattern[str], str, str]] = [
    # nomic-embed-code embeds documents bare and wants an instruction on queries.
    (re.compile(r"nomic-embed-code"), "", "Represent this query for searching relevant code: "),
    (re.compile(r"nomic"), "search_document: ", "search_query: "),
    # e5-mistral-7b-instruct: bare documents, an "Instruct/Query" header on queries.
    (
        re.compile(r"e5-mistral"),
        "",
        "Instruct: Given a code search query, retrieve relevant code\nQuery: ",
    ),
    # e5-small/base/large(-v2), multilingual-e5-*: matched as a whole name component.
    (re.compile(r"(?:^|[/_.:\-])(?:multilingual-)?e5(?:[_.:\-]|$)"), "passage: ", "query: "),
]


def prefixes_for(model: str) -> tuple[str, str]:
    """The (document, query) prefixes a model family expects; ("", "") when none."""
    name = model.lower()
    for pattern, doc, query in PREFIXES:
        if pattern.search(name):
            return doc, query
    return "", ""


class OpenAICompatEmbedder:
    """EmbeddingProvider backed by `/v1/embeddings` of an OpenAI-compatible server."""

    def __init__(
        self,
        client: OpenAICompatClient,
        model: str,
        batch_size: int,
        *,
        dim: int | None = None,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._model = model
        self._batch_size = max(1, batch_size)
        self._expected_dim = dim
        self._dim: int | None = dim
        self._owns_client = owns_client
        self._doc_prefix, self._query_prefix = prefixes_for(model)
        self.on_model_change: list[Callable[[], None]] = []
        """Called when the dimension is learned: stores opened before must switch to it."""

    @property
    def model_id(self) -> str:
        """`openai:<model>`; stored with every vector."""
        return f"openai:{self._model}"

    @property
    def model(self) -> str:
        """The model name sent to the server."""
        return self._model

    @property
    def prefixes(self) -> tuple[str, str]:
        """The (document, query) prefixes applied for this model."""
        return self._doc_prefix, self._query_prefix

    @property
    def dim(self) -> int:
        """Vector dimension; 0 until learned on first use (or given), see `probe()`."""
        return self._dim or 0

    @property
    def dim_known(self) -> bool:
        """Whether the dimension has been learned (or was given)."""
        return self._dim is not None

    async def probe(self) -> int:
        """Embed one short text to check the server and learn the dimension."""
        await self._embed(["leo dimension probe"], self._query_prefix)
        return self.dim

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed code chunks in batches of `batch_size`, concurrently up to the client's bound."""
        return await self._embed(list(texts), self._doc_prefix)

    async def embed_query(self, text: str) -> Vectors:
        """Embed one search query; shape (dim,)."""
        vectors = await self._embed([text], self._query_prefix)
        row: Vectors = vectors[0]
        return row

    async def close(self) -> None:
        """Close the HTTP client if this embedder owns it."""
        if self._owns_client:
            await self._client.aclose()

    async def _embed(self, texts: list[str], prefix: str) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        # Servers reject empty strings ("input cannot be empty"); a space embeds as nothing.
        inputs = [f"{prefix}{t}" if t.strip() else f"{prefix} " for t in texts]
        batches = [
            inputs[i : i + self._batch_size] for i in range(0, len(inputs), self._batch_size)
        ]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._client.embeddings(self._model, b)) for b in batches
                ]
        except* UpstreamError as failures:
            first = failures.exceptions[0]
            message = getattr(first, "message", str(first))
            raise EmbeddingUnavailable(
                f"embedding with {self._model} failed: {message}", model=self._model
            ) from first
        rows = [row for task in tasks for row in task.result()]
        return self._check(rows)

    def _check(self, rows: list[list[float]]) -> Vectors:
        lengths = {len(r) for r in rows}
        if len(lengths) != 1:
            raise EmbeddingUnavailable(
                f"{self._model} returned vectors of different sizes {sorted(lengths)}",
                model=self._model,
            )
        (got,) = lengths
        if got == 0:
            raise EmbeddingUnavailable(f"{self._model} returned empty vectors", model=self._model)
        if self._dim is None:
            self._dim = got
            logger.info("embedding model %s has %d dimensions", self._model, got)
            for hook in self.on_model_change:
                hook()
        elif got != self._dim:
            raise EmbeddingUnavailable(
                f"{self._model} returned {got}-dimensional vectors but {self._dim} were expected; "
                "the server's model changed under the same name — point leo at the original "
                "model or choose a new model name so the index is rebuilt",
                model=self._model,
                expected=self._dim,
                got=got,
            )
        matrix = np.asarray(rows, dtype=np.float32)
        if not np.isfinite(matrix).all():
            raise EmbeddingUnavailable(
                f"{self._model} returned vectors containing NaN or infinity", model=self._model
            )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if (norms == 0).any():
            raise EmbeddingUnavailable(f"{self._model} returned a zero vector", model=self._model)
        result: Vectors = (matrix / norms).astype(np.float32)
        return result


__all__ = ["PREFIXES", "OpenAICompatEmbedder", "prefixes_for"]
