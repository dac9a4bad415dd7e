"""Model switch end to end: a real leo-lsp over stdio moves an index from the embedded model to an
LM Studio model (the local OpenAI-wire `OpenAIStub`) while it keeps answering searches by meaning.

Session A indexes with the embedded model. Session B, on the same data dir, is configured with the
server's model, whose document batches the stub holds: the old vectors must keep serving (the
query embedded with the embedded model) and `leo.health` must report the re-embedding. Released,
the re-embedding completes and the server's model serves alone.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_lsp import LanguageClient

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "embeddings"))
from openai_stub import (  # type: ignore[import-not-found]  # noqa: E402
    OpenAIStub,
    Reply,
    StubRequest,
)
from session import command, start  # noqa: E402

pytestmark = pytest.mark.slow

SERVER_MODEL = "stub-embed-64"  # not a Nomic name: texts go over the wire without prefixes
SERVER_ID = f"openai:{SERVER_MODEL}"
PROBE = "leo dimension probe"

FILES = {
    "billing.py": '''\
def compute_invoice_total(items, tax_rate):
    """Sum the line items of an invoice and add the tax."""
    subtotal = sum(qty * price for qty, price in items)
    return round(subtotal * (1 + tax_rate), 2)
''',
    "geo.py": '''\
import math


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance between two points on Earth."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(
        math.radians(lon2 - lon1) / 2
    ) ** 2
    return 12742 * math.asin(math.sqrt(a))
''',
    "net.py": '''\
def parse_http_header(line):
    """Split one HTTP header line into its name and value."""
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()
''',
}
QUERY = "distance between two places on the globe"
SYMBOLS = {"compute_invoice_total", "haversine_km", "parse_http_header"}


class Gate:
    """The stub's /v1/embeddings with document batches held until `release` (the probe passes)."""

    def __init__(self, stub: OpenAIStub) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self._stub = stub
        stub.route("POST", "/v1/embeddings", self)

    def __call__(self, request: StubRequest) -> Reply:
        if request.json.get("input") != [PROBE] and not self.release.is_set():
            self.held.set()
            self.release.wait(timeout=30)
        return self._stub.default_embeddings(request)


def embedded_inputs(stub: OpenAIStub) -> list[str]:
    """Every text the stub was asked to embed, the dimension probe excluded."""
    out: list[str] = []
    for r in stub.requests_to("/v1/embeddings", "POST"):
        out.extend(t for t in r.json["input"] if t != PROBE)
    return out


async def model_state(lsp: LanguageClient) -> dict[str, Any]:
    """`leo.health`'s per-project model state of the one project open."""
    projects = (await command(lsp, "leo.health"))["services"]["embedding"]["projects"]
    assert len(projects) == 1, projects
    state: dict[str, Any] = projects[0]
    return state


async def wait_state(
    lsp: LanguageClient, cond: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    """Poll `leo.health` until the project's model state satisfies `cond` (bounded)."""
    deadline = time.monotonic() + timeout
    while not cond(state := await model_state(lsp)):
        assert time.monotonic() < deadline, f"timed out; last model state {state}"
        # Joins the running crawl (the re-embedding) rather than spinning on health.
        await command(lsp, "leo.indexWorkspace", {}, timeout=max(deadline - time.monotonic(), 1))
    return state


async def test_search_by_meaning_survives_a_switch_to_the_servers_model(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    for name, text in FILES.items():
        (ws / name).write_text(text)
    data = tmp_path / "data"

    # A: the embedded model indexes the workspace.
    lsp = await start(ws, data)
    try:
        first = await command(lsp, "leo.indexWorkspace", {})
        assert first["files"] == 3 and first["pending"] == 0 and first["embedded"] >= 3
        local = (await command(lsp, "leo.health"))["services"]["embedding"]["model"]
        assert (await model_state(lsp)) == {"projectId": first["projects"][0], "model": local}
        res = await command(lsp, "leo.search", {"query": QUERY})
        assert res["results"][0]["symbol"] == "haversine_km"
        assert "vector" in res["results"][0]["sources"]
    finally:
        await lsp.shutdown_session()

    # B: configured with the server's model; its document batches are held for now.
    with OpenAIStub(embedding_dims={SERVER_MODEL: 64}, models=(SERVER_MODEL,)) as stub:
        gate = Gate(stub)
        options = {
            "embedding": {
                "provider": "openai",
                "url": stub.url,
                "model": SERVER_MODEL,
                "timeoutSeconds": 30,
            }
        }
        lsp = await start(ws, data, options=options)
        try:
            assert await asyncio.to_thread(gate.held.wait, 30), "the re-embedding never started"
            emb = (await command(lsp, "leo.health"))["services"]["embedding"]
            assert (emb["model"], emb["dim"]) == (SERVER_ID, 64)

            # The old vectors answer, the query embedded with the old (embedded) model.
            res = await command(lsp, "leo.search", {"query": QUERY})
            assert res["results"][0]["symbol"] == "haversine_km", res
            assert "vector" in res["results"][0]["sources"]
            assert not any("lexical results" in n for n in res.get("notes", [])), res
            assert QUERY not in embedded_inputs(stub)

            state = await model_state(lsp)
            assert state["model"] == local and state["model"] != SERVER_ID
            switch = state["reembedding"]
            assert switch["to"] == SERVER_ID
            assert 0 <= switch["done"] < switch["total"], switch
            total = switch["total"]

            gate.release.set()
            state = await wait_state(lsp, lambda s: "reembedding" not in s)
            assert state["model"] == SERVER_ID, state

            # Every chunk went to the server; the server's model answers queries now.
            documents = set(embedded_inputs(stub))
            assert len(documents) >= total
            for symbol in SYMBOLS:
                assert any(f"def {symbol}" in t for t in documents), symbol
            res = await command(lsp, "leo.search", {"query": QUERY, "mode": "vector"})
            assert res["mode"] == "vector" and res["results"], res
            assert all("vector" in r["sources"] for r in res["results"])
            assert QUERY in embedded_inputs(stub)
            assert {r.json["model"] for r in stub.requests_to("/v1/embeddings")} == {SERVER_MODEL}
        finally:
            gate.release.set()
            await lsp.shutdown_session()
