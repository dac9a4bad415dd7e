"""LocalEmbedder with the real int8 MiniLM model (no mocks)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from leo_lsp.embeddings.local import DIM, MODEL_ID, LocalEmbedder
from leo_lsp.embeddings.provider import EmbeddingProvider
from leo_lsp.embeddings.query_adapter import adapt, load_matrix

SNIPPETS = [
    "def read_json(path):\n    with open(path) as f:\n        return json.load(f)",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
    "    return a",
    "class HttpClient:\n    def get(self, url):\n        return requests.get(url, timeout=5)",
    "def sort_users_by_age(users):\n    return sorted(users, key=lambda u: u.age)",
    "function debounce(fn, ms) {\n  let t;\n  return (...a) => { clearTimeout(t);"
    " t = setTimeout(() => fn(...a), ms); };\n}",
]


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    model = LocalEmbedder()
    model.load()
    yield model


def test_is_an_embedding_provider(embedder: LocalEmbedder) -> None:
    assert isinstance(embedder, EmbeddingProvider)
    assert embedder.model_id == MODEL_ID == "minilm-l6-v2-code-int8"
    assert embedder.dim == DIM == 384
    assert embedder.load_seconds is not None


def test_vectors_are_normalised_float32_and_deterministic(embedder: LocalEmbedder) -> None:
    first = embedder.embed_sync(SNIPPETS)
    second = LocalEmbedder(threads=1).embed_sync(SNIPPETS)
    assert first.shape == (len(SNIPPETS), 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    # Same model, different thread count and batch composition: same vectors.
    np.testing.assert_allclose(first, second, atol=1e-5)


def test_order_is_preserved_with_length_sorted_batches(embedder: LocalEmbedder) -> None:
    # 24 texts of very different lengths, given long/short interleaved: sorting by length
    # reorders them across 2 batches; each row must still be its own text's vector, equal to
    # embedding the text alone (this also checks padding is masked out of the mean).
    texts = [("word " * (3 + (i * 37) % 120)) + f"item{i}" for i in range(24)]
    together = embedder.embed_sync(texts)
    alone = np.stack([embedder.embed_sync([t])[0] for t in texts[::5]])
    cosines = np.sum(together[::5] * alone, axis=1)
    assert cosines.min() > 0.999
    unsorted = embedder.embed_sync(texts, sort_by_length=False)
    np.testing.assert_allclose(together, unsorted, atol=1e-4)


def test_empty_input(embedder: LocalEmbedder) -> None:
    assert embedder.embed_sync([]).shape == (0, 384)
    assert np.isfinite(embedder.embed_sync([""])).all()


def test_long_text_is_truncated_to_256_tokens(embedder: LocalEmbedder) -> None:
    head = " ".join(f"token{i}" for i in range(400))  # far more than 256 word pieces
    a, b = embedder.embed_sync([head, head + " def totally_different_tail(): pass " * 50])
    assert float(a @ b) > 0.9999


def test_similar_sentences_score_higher_than_unrelated(embedder: LocalEmbedder) -> None:
    a, b, c = embedder.embed_sync(
        [
            "How do I read a file line by line in Python?",
            "Reading a text file one line at a time with Python",
            "The recipe needs two eggs and a cup of flour.",
        ]
    )
    assert float(a @ b) > 0.7
    assert float(a @ c) < 0.2
    assert float(a @ b) - float(a @ c) > 0.5


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("load a json file from disk", 0),
        ("compute the nth fibonacci number", 1),
        ("make an HTTP GET request", 2),
        ("order people by their age", 3),
        ("delay calling a function until typing stops", 4),
    ],
)
async def test_code_query_ranks_matching_snippet_first(
    embedder: LocalEmbedder, query: str, expected: int
) -> None:
    docs = await embedder.embed_documents(SNIPPETS)
    q = await embedder.embed_query(query)
    assert q.shape == (384,)
    scores = docs @ q
    assert int(np.argmax(scores)) == expected, scores


async def test_embedding_does_not_block_the_event_loop(embedder: LocalEmbedder) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    beat = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    await embedder.embed_documents(SNIPPETS * 6)
    took = time.perf_counter() - started
    stop.set()
    await beat
    # A blocked loop would tick once; a free one ticks throughout the (>= 0.1 s) embedding.
    assert took > 0.05
    assert ticks >= 5


def test_lazy_load_happens_once_across_threads() -> None:
    model = LocalEmbedder()
    assert not model.loaded
    barrier = threading.Barrier(4)
    sessions: list[int] = []

    def worker() -> None:
        barrier.wait()
        model.embed_sync(["x = 1"])
        sessions.append(id(model._session))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert model.loaded
    assert len(sessions) == 4 and len(set(sessions)) == 1


async def test_queries_are_mapped_by_the_shipped_adapter_documents_never(
    embedder: LocalEmbedder,
) -> None:
    matrix = load_matrix()
    assert matrix is not None and matrix.shape == (DIM, DIM) and matrix.dtype == np.float32
    plain = LocalEmbedder(query_adapter=False)
    query = "Return the total of an invoice including tax"
    raw = plain.embed_sync([query])
    mapped = await embedder.embed_query(query)
    np.testing.assert_allclose(mapped, adapt(raw, matrix)[0], atol=1e-5)
    assert abs(float(np.linalg.norm(mapped)) - 1.0) < 1e-5
    assert float(mapped @ raw[0]) < 0.999  # the map moved it
    np.testing.assert_allclose(await plain.embed_query(query), raw[0], atol=1e-6)
    docs = ["def total(items):\n    return sum(items)\n"]
    np.testing.assert_allclose(
        await embedder.embed_documents(docs), await plain.embed_documents(docs), atol=1e-6
    )


def test_adapter_of_zeros_is_the_identity() -> None:
    q = np.random.default_rng(0).standard_normal((3, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(adapt(q, np.zeros((DIM, DIM), np.float32)), q, atol=1e-6)
