"""OpenAICompatClient against a real local HTTP server speaking the OpenAI wire format."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterator

import pytest
from openai_stub import OpenAIStub, Reply, StubRequest, free_port

from leo_lsp.errors import UpstreamError
from leo_lsp.openai_api import OpenAICompatClient, normalise_base_url, parse_json_content

SCHEMA = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["allow", "deny", "redact"]},
        "category": {"type": "string"},
        "reason": {"type": "string"},
    },
    "required": ["decision", "category", "reason"],
}
MESSAGES = [{"role": "user", "content": "May leo index src/app.py?"}]


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(embedding_dim=8) as server:
        yield server


def fast_client(url: str, **kwargs: object) -> OpenAICompatClient:
    """A client whose backoff is milliseconds, so retry tests stay fast."""
    options: dict[str, object] = {"backoff_base": 0.01, "backoff_max": 0.05}
    options.update(kwargs)
    return OpenAICompatClient(url, **options)  # type: ignore[arg-type]


async def test_retries_on_500_then_succeeds(stub: OpenAIStub) -> None:
    stub.script("POST", "/v1/embeddings", Reply(status=500), Reply(status=502, body=b"bad gw"))
    client = fast_client(stub.url)
    try:
        vectors = await client.embeddings("stub-embed", ["a", "b"])
    finally:
        await client.aclose()
    assert len(vectors) == 2 and len(vectors[0]) == 8
    assert len(stub.requests_to("/v1/embeddings")) == 3


async def test_gives_up_after_max_retries(stub: OpenAIStub) -> None:
    stub.script("POST", "/v1/embeddings", *[Reply(status=503)] * 5)
    client = fast_client(stub.url, max_retries=2)
    with pytest.raises(UpstreamError, match=r"HTTP 503.*after 3 attempts"):
        await client.embeddings("stub-embed", ["a"])
    await client.aclose()
    assert len(stub.requests_to("/v1/embeddings")) == 3


async def test_429_honours_retry_after(stub: OpenAIStub) -> None:
    stub.script(
        "POST",
        "/v1/embeddings",
        Reply(status=429, headers={"Retry-After": "0.3"}, json={"error": {"message": "slow"}}),
    )
    client = fast_client(stub.url)
    started = time.perf_counter()
    vectors = await client.embeddings("stub-embed", ["a"])
    elapsed = time.perf_counter() - started
    await client.aclose()
    assert len(vectors) == 1
    # The backoff alone would wait at most 0.05 s; Retry-After asked for 0.3 s.
    assert elapsed >= 0.3
    assert len(stub.requests_to("/v1/embeddings")) == 2


async def test_retry_after_beyond_limit_fails_at_once(stub: OpenAIStub) -> None:
    stub.script("POST", "/v1/embeddings", Reply(status=429, headers={"Retry-After": "3600"}))
    client = fast_client(stub.url, max_retry_after=5.0)
    started = time.perf_counter()
    with pytest.raises(UpstreamError, match="retry after 3600 s"):
        await client.embeddings("stub-embed", ["a"])
    await client.aclose()
    assert time.perf_counter() - started < 2.0
    assert len(stub.requests_to("/v1/embeddings")) == 1


@pytest.mark.parametrize(
    "body", [b"<html>502 proxy error</html>", b'{"object": "list", "data": [{"embedd']
)
async def test_garbage_or_truncated_json_is_upstream_error(stub: OpenAIStub, body: bytes) -> None:
    stub.script("POST", "/v1/embeddings", Reply(body=body))
    client = fast_client(stub.url)
    with pytest.raises(UpstreamError, match="invalid JSON"):
        await client.embeddings("stub-embed", ["a"])
    await client.aclose()


async def test_wrong_number_of_vectors_is_upstream_error(stub: OpenAIStub) -> None:
    one = {"data": [{"index": 0, "embedding": [1.0, 0.0]}]}
    stub.script("POST", "/v1/embeddings", Reply(json=one))
    client = fast_client(stub.url)
    with pytest.raises(UpstreamError, match="1 vectors for 2 inputs"):
        await client.embeddings("stub-embed", ["a", "b"])
    await client.aclose()


async def test_embeddings_follow_index_not_position(stub: OpenAIStub) -> None:
    shuffled = {
        "data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]
    }
    stub.script("POST", "/v1/embeddings", Reply(json=shuffled))
    client = fast_client(stub.url)
    assert await client.embeddings("m", ["first", "second"]) == [[1.0, 0.0], [0.0, 1.0]]
    await client.aclose()


async def test_connection_refused_fails_fast() -> None:
    client = fast_client(f"http://127.0.0.1:{free_port()}/v1", max_retries=3)
    started = time.perf_counter()
    with pytest.raises(UpstreamError, match="connection refused"):
        await client.embeddings("m", ["a"])
    await client.aclose()
    assert time.perf_counter() - started < 1.0


async def test_read_timeout_is_upstream_error_without_retry(stub: OpenAIStub) -> None:
    stub.script("POST", "/v1/chat/completions", Reply(delay=5.0))
    client = fast_client(stub.url, read_timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(UpstreamError, match=r"did not answer within 0.3 s"):
        await client.chat_json("stub-chat", MESSAGES, SCHEMA)
    await client.aclose()
    assert time.perf_counter() - started < 2.0
    assert len(stub.requests_to("/v1/chat/completions")) == 1


async def test_dropped_connection_is_retried(stub: OpenAIStub) -> None:
    stub.script("POST", "/v1/embeddings", Reply(drop=True))
    client = fast_client(stub.url)
    vectors = await client.embeddings("stub-embed", ["a"])
    await client.aclose()
    assert len(vectors) == 1
    assert len(stub.requests_to("/v1/embeddings")) == 2


async def test_client_error_is_not_retried_and_names_the_server_message(stub: OpenAIStub) -> None:
    missing = {"error": {"message": "model 'nope' not found", "type": "invalid_request_error"}}
    stub.script("POST", "/v1/embeddings", Reply(status=404, json=missing))
    client = fast_client(stub.url)
    with pytest.raises(UpstreamError, match="HTTP 404: model 'nope' not found") as info:
        await client.embeddings("nope", ["a"])
    await client.aclose()
    assert info.value.data["status"] == 404
    assert len(stub.requests_to("/v1/embeddings")) == 1


async def test_concurrency_bound_is_respected(stub: OpenAIStub) -> None:
    # Each answer waits until a 4th request is in flight (or 0.3 s): if the client ever let a
    # 4th through, the server would see it.
    def held(request: StubRequest) -> Reply:
        reply = stub.default_embeddings(request)
        return dataclasses.replace(reply, wait_for_in_flight=4, hold_timeout=0.3)

    stub.route("POST", "/v1/embeddings", held)
    client = fast_client(stub.url, max_concurrency=3)
    results = await asyncio.gather(*(client.embeddings("m", [f"t{i}"]) for i in range(9)))
    await client.aclose()
    assert len(results) == 9
    assert stub.max_in_flight == 3


async def test_json_schema_accepted_is_sent_once(stub: OpenAIStub) -> None:
    client = fast_client(stub.url)
    answer = await client.chat_json("stub-chat", MESSAGES, SCHEMA, schema_name="gate")
    await client.aclose()
    assert answer == {"decision": "allow", "category": "source", "reason": "ordinary source code"}
    (request,) = stub.requests_to("/v1/chat/completions")
    assert request.json["temperature"] == 0
    assert request.json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "gate", "schema": SCHEMA, "strict": True},
    }
    assert client.response_format_mode == "json_schema"


async def test_json_schema_rejected_falls_back_to_json_object_and_remembers() -> None:
    with OpenAIStub(reject_json_schema=True) as stub:
        client = fast_client(stub.url)
        first = await client.chat_json("stub-chat", MESSAGES, SCHEMA)
        second = await client.chat_json("stub-chat", MESSAGES, SCHEMA)
        await client.aclose()
        formats = [r.json["response_format"] for r in stub.requests_to("/v1/chat/completions")]
    assert first["decision"] == second["decision"] == "allow"
    # The 500 naming response_format is not retried: one probe, one fallback, then remembered.
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]
    assert formats[1] == {"type": "json_object", "schema": SCHEMA}
    assert client.response_format_mode == "json_object"


async def test_garbage_chat_answer_is_upstream_error(stub: OpenAIStub) -> None:
    stub.chat_content = "Sure! I think this file is fine to index."
    client = fast_client(stub.url)
    with pytest.raises(UpstreamError, match="not JSON"):
        await client.chat_json("stub-chat", MESSAGES, SCHEMA)
    await client.aclose()


async def test_chat_without_choices_is_upstream_error(stub: OpenAIStub) -> None:
    stub.script("POST", "/v1/chat/completions", Reply(json={"id": "x", "choices": []}))
    client = fast_client(stub.url)
    with pytest.raises(UpstreamError, match=r"without choices\[0\]"):
        await client.chat_json("stub-chat", MESSAGES, SCHEMA)
    await client.aclose()


def test_parse_json_content_strips_fences_and_chatter() -> None:
    fenced = '```json\n{"decision": "deny", "category": "secret", "reason": "key"}\n```'
    assert parse_json_content(fenced)["decision"] == "deny"
    chatty = 'Here you go: {"decision": "allow", "category": "x", "reason": "y"} Hope it helps'
    assert parse_json_content(chatty)["category"] == "x"
    with pytest.raises(UpstreamError, match="not an object"):
        parse_json_content("[1, 2]")
    with pytest.raises(UpstreamError):
        parse_json_content('{"decision": "allow", ')


async def test_list_models_and_bare_base_url(stub: OpenAIStub) -> None:
    client = fast_client(stub.base)  # no /v1: the client adds it
    assert await client.list_models() == ["stub-embed", "stub-chat"]
    await client.aclose()
    assert normalise_base_url("http://h:1234/") == "http://h:1234/v1"
    assert normalise_base_url("http://h:1234/api/v1/") == "http://h:1234/api/v1"


async def test_api_key_is_sent_but_never_logged(
    stub: OpenAIStub, caplog: pytest.LogCaptureFixture
) -> None:
    key = "sk-test-VERY-SECRET-123"
    stub.script("POST", "/v1/embeddings", Reply(status=500, json={"error": {"message": "boom"}}))
    client = fast_client(stub.url, api_key=key)
    with caplog.at_level(logging.DEBUG):
        await client.embeddings("m", ["a"])
    await client.aclose()
    assert all(r.headers["authorization"] == f"Bearer {key}" for r in stub.requests)
    assert "retry 1/3" in caplog.text
    assert key not in caplog.text
    assert key not in repr(client)


async def test_credentials_in_url_are_not_in_errors() -> None:
    client = fast_client(f"http://user:hunter2@127.0.0.1:{free_port()}/v1")
    with pytest.raises(UpstreamError) as info:
        await client.list_models()
    await client.aclose()
    assert "hunter2" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


async def test_unexplained_400_on_first_json_schema_still_tries_json_object(
    stub: OpenAIStub,
) -> None:
    # Some servers reject unknown request fields with a bare 400; the first call probes both.
    stub.script("POST", "/v1/chat/completions", Reply(status=400, json={"detail": "bad request"}))
    client = fast_client(stub.url)
    answer = await client.chat_json("stub-chat", MESSAGES, SCHEMA)
    await client.aclose()
    assert answer["decision"] == "allow"
    sent = [r.json["response_format"]["type"] for r in stub.requests_to("/v1/chat/completions")]
    assert sent == ["json_schema", "json_object"]
    assert client.response_format_mode == "json_object"
