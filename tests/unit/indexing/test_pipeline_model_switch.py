"""Model switches through the real services (real MiniLM, sqlite-vec, tree-sitter and a real local
HTTP server speaking the OpenAI `/v1/embeddings` wire format): the old model's vectors answer
searches until the new model's are complete; the fallback comes back to the server."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "embeddings"))
from openai_stub import OpenAIStub, Reply, StubRequest  # noqa: E402

from leo_lsp.embeddings.factory import FallbackEmbedder  # noqa: E402
from leo_lsp.embeddings.local import MODEL_ID as LOCAL
from leo_lsp.embeddings.local import LocalEmbedder  # noqa: E402
from leo_lsp.embeddings.openai_compat import OpenAICompatEmbedder  # noqa: E402
from leo_lsp.openai_api import OpenAICompatClient  # noqa: E402
from leo_lsp.search import SearchQuery  # noqa: E402
from leo_lsp.services import Services, build_services  # noqa: E402
from leo_lsp.settings import build_settings  # noqa: E402

REMOTE = "openai:stub-embed"
FILES = {
    "net.py": "def parse_http_header(line):\n    name, _, value = line.partition(':')\n"
    "    return name.strip().lower(), value.strip()\n",
    "mathx.py": "def mean_of_numbers(values):\n    return sum(values) / len(values)\n",
    "files.py": "def read_config_file(path):\n    with open(path) as fh:\n"
    "        return fh.read()\n",
}


class Gate:
    """The stub's /v1/embeddings: down (503), or up with document batches held until released."""

    def __init__(self, stub: OpenAIStub) -> None:
        self.up = threading.Event()
        self.release = threading.Event()
        self.held = threading.Event()
        self._stub = stub
        stub.route("POST", "/v1/embeddings", self)

    def __call__(self, request: StubRequest) -> Reply:
        if not self.up.is_set():
            return Reply(status=503, json={"error": {"message": "model not loaded"}})
        probe = request.json["input"] == ["leo dimension probe"]
        if not probe and not self.release.is_set():
            self.held.set()
            self.release.wait(timeout=30)
        return self._stub.default_embeddings(request)


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(embedding_dim=8) as server:
        yield server


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder()


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text)
    return root


def remote_embedder(url: str) -> OpenAICompatEmbedder:
    client = OpenAICompatClient(url, max_retries=0, backoff_base=0.01, backoff_max=0.02)
    return OpenAICompatEmbedder(client, "stub-embed", 16, owns_client=True)


def services_with(tmp_path: Path, embedder: object) -> Services:
    settings = build_settings({"dataDir": str(tmp_path / "data")}, {})
    return build_services(settings, embedder=embedder)  # type: ignore[arg-type]


async def search(services: Services, query: str) -> tuple[list[str], list[list[str]], list[str]]:
    result = await services.search.search(SearchQuery(query=query, limit=3))
    return [h.symbol for h in result.hits], [h.sources for h in result.hits], result.notes


async def test_search_during_a_switch_answers_from_the_old_model(
    tmp_path: Path, stub: OpenAIStub, local: LocalEmbedder
) -> None:
    root = workspace(tmp_path)
    first = services_with(tmp_path, local)
    try:
        report = await first.indexer.crawl(first.registry.add_folder(root))
        assert report.pending == 0
    finally:
        await first.close()

    gate = Gate(stub)
    gate.up.set()
    gate.release.set()
    # Restarted with an LM Studio model: MiniLM's vectors serve until the server's are complete.
    second = services_with(tmp_path, remote_embedder(stub.url))
    second.embedders._make_local = lambda: local  # type: ignore[union-attr]
    try:
        await second.embedder.probe()  # type: ignore[attr-defined]
        project = second.registry.add_folder(root)
        store = project.store
        assert store.switching and store.serving_model == LOCAL and store.model_id == REMOTE

        # An edit during the switch: embedded with both models, found by meaning at once.
        (root / "zip.py").write_text(
            "def compress_bytes_gzip(data):\n    import gzip\n    return gzip.compress(data)\n"
        )
        await second.indexer.index_file(project, root / "zip.py")
        assert store.switching
        symbols, sources, _ = await search(second, "gzip compression of raw bytes")
        assert symbols[0] == "compress_bytes_gzip" and "vector" in sources[0]
        assert store.pending(paths=["zip.py"], model=REMOTE) == []

        # The crawl re-embeds the rest; its batches are held at the server for now.
        gate.release.clear()
        crawl = asyncio.create_task(second.indexer.crawl(project))
        await asyncio.to_thread(gate.held.wait, 30)
        symbols, sources, notes = await search(second, "split a header line into name and value")
        assert symbols[0] == "parse_http_header" and "vector" in sources[0]
        assert not any("lexical results" in n for n in notes)
        assert second.model_states() == [
            {
                "projectId": project.id,
                "model": LOCAL,
                "reembedding": {"to": REMOTE, "done": 2, "total": 8},
            }
        ]
        before = len(stub.requests_to("/v1/embeddings"))
        gate.release.set()
        await crawl
        assert not store.switching and store.serving_model == REMOTE
        assert second.model_states() == [{"projectId": project.id, "model": REMOTE}]
        _, sources, notes = await search(second, "mean of numbers")
        assert any("vector" in s for s in sources) and notes == []
        # The query went to the server now (its model serves): one request more than the crawl's.
        assert len(stub.requests_to("/v1/embeddings")) > before
    finally:
        gate.release.set()
        await second.close()


async def test_no_provider_for_the_old_model_means_lexical_with_a_note(
    tmp_path: Path, stub: OpenAIStub, local: LocalEmbedder
) -> None:
    root = workspace(tmp_path)
    gate = Gate(stub)
    gate.up.set()
    gate.release.set()
    first = services_with(tmp_path, remote_embedder(stub.url))
    try:
        await first.embedder.probe()  # type: ignore[attr-defined]
        await first.indexer.crawl(first.registry.add_folder(root))
    finally:
        await first.close()
    gate.up.clear()  # the server's model is not configured any more: leo runs on MiniLM
    second = services_with(tmp_path, local)
    try:
        project = second.registry.add_folder(root)
        assert project.store.switching and project.store.serving_model == REMOTE
        symbols, sources, notes = await search(second, "parse_http_header")
        assert symbols[0] == "parse_http_header" and sources[0] == ["lexical"]
        assert notes == [f"re-embedding with {LOCAL}: 0 of 6 done; lexical results meanwhile"]
    finally:
        await second.close()


async def test_fallback_serves_locally_then_the_server_returns_and_takes_over(
    tmp_path: Path, stub: OpenAIStub, local: LocalEmbedder
) -> None:
    root = workspace(tmp_path)
    gate = Gate(stub)
    embedder = FallbackEmbedder(remote_embedder(stub.url), local)
    services = services_with(tmp_path, embedder)
    indexer = services.indexer
    indexer.probe_first, indexer.probe_max = 0.01, 0.05
    try:
        await embedder.probe()  # the server is down: MiniLM from the start
        assert embedder.using_fallback and indexer.probe_task is not None
        project = services.registry.add_folder(root)
        await indexer.crawl(project)
        store = project.store
        assert store.serving_model == LOCAL and not store.switching
        gate.up.set()  # the server is back; its document batches are held for now
        assert await asyncio.wait_for(indexer.probe_task, 30) is True
        assert not embedder.using_fallback and store.switching and store.model_id == REMOTE
        await asyncio.to_thread(gate.held.wait, 30)
        symbols, sources, _ = await search(services, "average of a list of numbers")
        assert symbols[0] == "mean_of_numbers" and "vector" in sources[0]
        gate.release.set()
        retry = indexer._retry
        assert retry is not None
        await retry
        assert not store.switching and store.serving_model == REMOTE
        _, sources, _ = await search(services, "read a config file")
        assert any("vector" in s for s in sources)
    finally:
        gate.release.set()
        await services.close()
