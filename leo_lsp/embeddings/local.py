"""The embedded default: all-MiniLM-L6-v2 tuned for code (int8 ONNX) on onnxruntime, no torch.

The model file is `assets/minilm-l6-v2-code-int8.onnx`: all-MiniLM-L6-v2 after one contrastive
pass over 10.5k docstring→function pairs from code no benchmark reads
(tests/bench/fine_tune_embedder.py), weights stored as int8; the tokenizer is
`assets/minilm-tokenizer.json` (see assets/NOTICE). Pipeline: WordPiece (lower-cased, truncated
to 256 tokens — what the model was trained to read) → ONNX → mean pooling over real tokens → L2.

Texts are tokenised first, then sorted by token count and run in batches of 16, each padded only
to its own longest text: code chunks vary from 10 to 256 tokens, and padding everything to the
longest wastes half the compute (measured: sorted batches run about twice as fast).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from leo_lsp.embeddings.provider import Vectors
from leo_lsp.embeddings.query_adapter import adapt, load_matrix
from leo_lsp.errors import EmbeddingUnavailable

logger = logging.getLogger(__name__)

# A new id whenever the weights change: stores then re-embed in the background (model switch).
MODEL_ID = "minilm-l6-v2-code-int8"
MODEL_ASSET = "minilm-l6-v2-code-int8.onnx"
DIM = 384
MAX_TOKENS = 256
BATCH_SIZE = 16


def default_model_path() -> Path:
    """The int8 ONNX file shipped in the package."""
    return Path(
        str(importlib.resources.files("leo_lsp.embeddings").joinpath("assets", MODEL_ASSET))
    )


def _tokenizer_json() -> str:
    asset = importlib.resources.files("leo_lsp.embeddings").joinpath(
        "assets", "minilm-tokenizer.json"
    )
    return asset.read_text(encoding="utf-8")


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class LocalEmbedder:
    """EmbeddingProvider running MiniLM-L6-v2 int8 in-process; the session loads lazily, once."""

    def __init__(
        self,
        *,
        threads: int | None = None,
        batch_size: int = BATCH_SIZE,
        max_tokens: int = MAX_TOKENS,
        model_path: Path | None = None,
        query_adapter: bool = True,
    ) -> None:
        self._threads = threads if threads and threads > 0 else cpu_count()
        self._batch_size = max(1, batch_size)
        self._max_tokens = max(8, min(max_tokens, 512))
        self._model_path = model_path
        # Queries are mapped by the learned adapter (see query_adapter.py); documents never are.
        matrix = load_matrix() if query_adapter else None
        self._adapter = matrix if matrix is not None and matrix.shape == (DIM, DIM) else None
        self._load_lock = threading.Lock()
        # One batch at a time: ONNX already uses every core per batch, and running batches
        # side by side would only oversubscribe them. Per-batch (not per-call) locking lets a
        # search query slip in between the batches of a long indexing call.
        self._run_lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: frozenset[str] = frozenset()
        self._output_name = ""
        self.load_seconds: float | None = None
        """Wall time of the model load (None until loaded)."""

    @property
    def model_id(self) -> str:
        """Identifies the model; stored with every vector."""
        return MODEL_ID

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return DIM

    @property
    def loaded(self) -> bool:
        """Whether the ONNX session is loaded."""
        return self._session is not None

    def load(self) -> None:
        """Load the tokenizer and ONNX session now (idempotent, thread-safe)."""
        if self._session is not None:
            return
        with self._load_lock:
            if self._session is not None:
                return
            started = time.perf_counter()
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_str(_tokenizer_json())
                # The file ships with fixed padding to 128 and truncation at 128; we pad per
                # batch ourselves and read the model's full 256-token window.
                tokenizer.no_padding()
                tokenizer.enable_truncation(max_length=self._max_tokens)
                options = ort.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Batches change shape every call (per-batch padding); onnxruntime's CPU arena
                # keeps every size it has seen: measured RSS ~1 GB with it, ~350 MB without,
                # on 500 chunks, for no reliable speed difference on 2 cores.
                options.enable_cpu_mem_arena = False
                path = self._model_path or default_model_path()
                session = ort.InferenceSession(
                    str(path), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # a broken install must not take the server down
                raise EmbeddingUnavailable(
                    f"the embedded model could not load: {type(exc).__name__}: {exc}"
                ) from exc
            # Exports differ: some take token_type_ids, some do not.
            self._input_names = frozenset(i.name for i in session.get_inputs())
            self._output_name = session.get_outputs()[0].name
            self._tokenizer = tokenizer
            self._session = session
            self.load_seconds = time.perf_counter() - started
            logger.info(
                "embedded model loaded in %.2f s (%d threads, inputs %s)",
                self.load_seconds,
                self._threads,
                sorted(self._input_names),
            )

    def embed_sync(self, texts: Sequence[str], *, sort_by_length: bool = True) -> Vectors:
        """Embed on the calling thread; shape (len(texts), 384), rows L2-normalised, input order.

        `sort_by_length=False` pads batches in input order (only for the benchmark's comparison).
        """
        session, tokenizer = self._ensure_loaded()
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        order = (
            sorted(range(len(texts)), key=lambda i: lengths[i])
            if sort_by_length
            else list(range(len(texts)))
        )
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            width = max(lengths[i] for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = lengths[i]
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            out[batch] = self._run(session, ids, mask)
        return out

    def _ensure_loaded(self) -> tuple[Any, Any]:
        self.load()
        session, tokenizer = self._session, self._tokenizer
        if session is None or tokenizer is None:  # closed while loading
            raise EmbeddingUnavailable("the embedded model was closed")
        return session, tokenizer

    def _run(
        self, session: Any, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]
    ) -> Vectors:
        feeds: dict[str, npt.NDArray[np.int64]] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._run_lock:
            (hidden,) = session.run([self._output_name], feeds)
        weights = mask[:, :, None].astype(np.float32)
        summed = (np.asarray(hidden, dtype=np.float32) * weights).sum(axis=1)
        pooled = summed / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed code chunks off the event loop; shape (len(texts), 384)."""
        return await asyncio.to_thread(self.embed_sync, list(texts))

    async def embed_query(self, text: str) -> Vectors:
        """Embed one query off the event loop; shape (384,)."""
        vectors = await asyncio.to_thread(self.embed_sync, [text])
        if self._adapter is not None:
            vectors = adapt(vectors, self._adapter)
        row: Vectors = vectors[0]
        return row

    async def close(self) -> None:
        """Drop the session (the next call loads it again)."""
        with self._load_lock:
            self._session = None
            self._tokenizer = None


__all__ = ["DIM", "MODEL_ID", "LocalEmbedder", "cpu_count", "default_model_path"]
