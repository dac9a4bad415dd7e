"""A learned linear map applied to query vectors of the embedded model before search.

The embedded model reads a docstring-like query and the code it describes with one encoder; a
384×384 map `q → normalise(q + A q)`, fitted on docstring→function pairs from standard-library
modules that share no file with the quality benchmark (tests/bench/fit_adapter.py), moves queries
further towards the code they describe. Document vectors are untouched, so nothing is re-embedded
and the map can change between releases freely; it is refitted whenever the model's weights change.

Measured for the code-tuned model (exact cosine ranking, tests/bench/fit_adapter.py): vector-only
MRR@10 on the training task 0.431 → 0.487 (3-fold cross-validation, out-of-fold maps), on the
benchmark's tune half 0.546 → 0.552 (fitted on all 1,500 training queries, l2 0.1, temperature
0.05). For the untuned MiniLM it was worth more (0.327 → 0.410 and 0.389 → 0.462): fine-tuning
already taught the encoder most of what the map learns.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import logging

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

ASSET = "minilm-query-adapter.npy"

Vectors = npt.NDArray[np.float32]


@functools.lru_cache(maxsize=1)
def load_matrix() -> Vectors | None:
    """The shipped map's `A` (float32, dim×dim), or None if the asset is missing or unreadable."""
    try:
        raw = importlib.resources.files("leo_lsp.embeddings").joinpath("assets", ASSET).read_bytes()
        matrix = np.load(io.BytesIO(raw), allow_pickle=False)
    except (OSError, ValueError) as exc:
        logger.warning("query adapter not loaded (%s): plain query vectors", exc)
        return None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        logger.warning("query adapter has shape %s: ignored", matrix.shape)
        return None
    return np.ascontiguousarray(matrix, dtype=np.float32)


def adapt(queries: Vectors, matrix: Vectors) -> Vectors:
    """Rows `q` mapped to `normalise(q + A q)` (shape kept)."""
    mapped = queries + queries @ matrix.T
    norms = np.linalg.norm(mapped, axis=-1, keepdims=True)
    result: Vectors = (mapped / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


__all__ = ["ASSET", "adapt", "load_matrix"]
