"""OpenAICompatEmbedder, create_provider and FallbackEmbedder against a real local server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from openai_stub import OpenAIStub, Reply, fake_vector, free_port

from leo_lsp.embeddings.factory import FallbackEmbedder, create_provider
from leo_lsp.embeddings.local import LocalEmbedder
from leo_lsp.embeddings.openai_compat import OpenAICompatEmbedder, prefixes_for
from leo_lsp.embeddings.provider import EmbeddingProvider
from leo_lsp.errors import EmbeddingUnavailable
from leo_lsp.openai_api import OpenAICompatClient
from leo_lsp.settings import EmbeddingSettings

NOMIC = "text-embedding-nomic-embed-text-v1.5"


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(embedding_dim=8) as server:
        yield server


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder()


def client_for(url: str, *, max_concurrency: int = 4, max_retries: int = 3) -> OpenAICompatClient:
    return OpenAICompatClient(
        url,
        backoff_base=0.01,
        backoff_max=0.05,
        max_concurrency=max_concurrency,
        max_retries=max_retries,
    )


def inputs_sent(stub: OpenAIStub) -> list[list[str]]:
    return [r.json["input"] for r in stub.requests_to("/v1/embeddings")]


@pytest.mark.parametrize(
    ("model", "doc", "query"),
    [
        (NOMIC, "search_document: ", "search_query: "),
        ("nomic-ai/nomic-embed-text-v2-moe", "search_document: ", "search_query: "),
        ("nomic-embed-code", "", "Represent this query for searching relevant code: "),
        ("intfloat/e5-base-v2", "passage: ", "query: "),
        ("multilingual-e5-large", "passage: ", "query: "),
        ("text-embedding-3-small", "", ""),
        ("bge-base-en-v1.5", "", ""),
    ],
)
def test_prefix_table(model: str, doc: str, query: str) -> None:
    assert prefixes_for(model) == (doc, query)


async def test_nomic_prefixes_are_sent(stub: OpenAIStub) -> None:
    embedder = OpenAICompatEmbedder(client_for(stub.url), NOMIC, 32, owns_client=True)
    await embedder.embed_documents(["def f(): pass", "x = 1"])
    await embedder.embed_query("a function")
    await embedder.close()
    assert inputs_sent(stub) == [
        ["search_document: def f(): pass", "search_document: x = 1"],
        ["search_query: a function"],
    ]
    assert embedder.model_id == f"openai:{NOMIC}"


async def test_e5_prefixes_and_no_prefix_for_other_models(stub: OpenAIStub) -> None:
    e5 = OpenAICompatEmbedder(client_for(stub.url), "e5-small-v2", 8)
    plain = OpenAICompatEmbedder(client_for(stub.url), "text-embedding-3-small", 8)
    await e5.embed_documents(["code"])
    await e5.embed_query("find")
    await plain.embed_documents(["code"])
    assert inputs_sent(stub) == [["passage: code"], ["query: find"], ["code"]]


async def test_batches_keep_order_and_vectors_are_normalised(stub: OpenAIStub) -> None:
    texts = [f"chunk {i}" for i in range(70)]
    embedder = OpenAICompatEmbedder(client_for(stub.url, max_concurrency=2), "plain", 32)
    vectors = await embedder.embed_documents(texts)
    assert sorted(len(batch) for batch in inputs_sent(stub)) == [6, 32, 32]  # sent concurrently
    assert vectors.shape == (70, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = np.asarray([fake_vector(t, 8) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert embedder.dim == 8


async def test_dimension_is_learned_then_checked(stub: OpenAIStub) -> None:
    embedder = OpenAICompatEmbedder(client_for(stub.url), "plain", 16)
    assert not embedder.dim_known
    assert embedder.dim == 0
    assert await embedder.probe() == 8
    stub.embedding_dim = 16  # the server swapped the model under the same name
    with pytest.raises(EmbeddingUnavailable, match="16-dimensional vectors but 8 were expected"):
        await embedder.embed_documents(["a"])


async def test_expected_dimension_mismatch_on_first_use(stub: OpenAIStub) -> None:
    embedder = OpenAICompatEmbedder(client_for(stub.url), "plain", 16, dim=768)
    with pytest.raises(EmbeddingUnavailable, match="8-dimensional vectors but 768"):
        await embedder.embed_query("q")


async def test_mixed_dimensions_in_one_answer(stub: OpenAIStub) -> None:
    ragged = {"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 1, "embedding": [1.0]}]}
    stub.script("POST", "/v1/embeddings", Reply(json=ragged))
    embedder = OpenAICompatEmbedder(client_for(stub.url), "plain", 16)
    with pytest.raises(EmbeddingUnavailable, match="different sizes"):
        await embedder.embed_documents(["a", "b"])


async def test_transport_failure_becomes_embedding_unavailable(stub: OpenAIStub) -> None:
    stub.script("POST", "/v1/embeddings", *[Reply(status=500)] * 4)
    embedder = OpenAICompatEmbedder(client_for(stub.url, max_retries=1), "plain", 2)
    with pytest.raises(EmbeddingUnavailable, match="embedding with plain failed: .*HTTP 500"):
        await embedder.embed_documents(["a", "b", "c", "d"])
    down = OpenAICompatEmbedder(client_for(f"http://127.0.0.1:{free_port()}"), "plain", 2)
    with pytest.raises(EmbeddingUnavailable, match="connection refused"):
        await down.embed_query("q")


async def test_create_provider_local_by_default(local: LocalEmbedder) -> None:
    assert create_provider(EmbeddingSettings(), local=local) is local
    assert isinstance(create_provider(EmbeddingSettings()), LocalEmbedder)


async def test_create_provider_openai_talks_to_the_server(stub: OpenAIStub) -> None:
    settings = EmbeddingSettings(provider="openai", url=stub.url, model=NOMIC, batch_size=2)
    provider = create_provider(settings)
    assert isinstance(provider, OpenAICompatEmbedder)
    assert isinstance(provider, EmbeddingProvider)
    vectors = await provider.embed_documents(["a", "b", "c"])
    await provider.close()
    assert vectors.shape == (3, 8)
    assert sorted(inputs_sent(stub)) == [  # batches are sent concurrently
        ["search_document: a", "search_document: b"],
        ["search_document: c"],
    ]


async def test_without_fallback_a_down_server_raises(local: LocalEmbedder) -> None:
    settings = EmbeddingSettings(provider="openai", url=f"http://127.0.0.1:{free_port()}/v1")
    provider = create_provider(settings, local=local)
    assert not isinstance(provider, FallbackEmbedder)
    with pytest.raises(EmbeddingUnavailable):
        await provider.embed_documents(["a"])
    await provider.close()


async def test_fallback_switches_to_local_with_its_own_model_id(
    stub: OpenAIStub, local: LocalEmbedder
) -> None:
    settings = EmbeddingSettings(
        provider="openai", url=stub.url, model=NOMIC, fallback_to_local=True
    )
    http = httpx.AsyncClient()
    provider = create_provider(settings, http=http, local=local)
    assert isinstance(provider, FallbackEmbedder)
    remote_vectors = await provider.embed_documents(["def f(): pass"])
    assert provider.model_id == f"openai:{NOMIC}" and provider.dim == 8
    assert remote_vectors.shape == (1, 8)

    # LM Studio unloaded the model (not retried, so the test needs no backoff waits).
    unloaded = {"error": {"message": f"model {NOMIC} not loaded"}}
    stub.script("POST", "/v1/embeddings", Reply(status=404, json=unloaded))
    vectors = await provider.embed_documents(["def f(): pass"])
    # The same call returns local vectors, and model_id says so: never mixed with Nomic's.
    assert provider.using_fallback
    assert provider.model_id == "minilm-l6-v2-code-int8" and provider.dim == 384
    assert vectors.shape == (1, 384)
    assert provider.fallback_reason is not None and "not loaded" in provider.fallback_reason
    query = await provider.embed_query("a function")
    assert query.shape == (384,)

    # Sticky: no further traffic to the server until try_remote() says it is back.
    served = len(stub.requests_to("/v1/embeddings"))
    await provider.embed_documents(["x"])
    assert len(stub.requests_to("/v1/embeddings")) == served
    assert await provider.try_remote() is True
    assert not provider.using_fallback and provider.model_id == f"openai:{NOMIC}"
    await provider.close()
    await http.aclose()


async def test_fallback_try_remote_while_still_down(local: LocalEmbedder) -> None:
    settings = EmbeddingSettings(
        provider="openai", url=f"http://127.0.0.1:{free_port()}/v1", fallback_to_local=True
    )
    provider = create_provider(settings, local=local)
    assert isinstance(provider, FallbackEmbedder)
    assert (await provider.embed_query("q")).shape == (384,)
    assert await provider.try_remote() is False
    assert provider.using_fallback and "refused" in (provider.fallback_reason or "")
