"""LM Studio end to end: a real leo-lsp over stdio against a real local OpenAI-compatible server.

The server is `OpenAIStub` (tests/unit/embeddings/openai_stub.py): real sockets, the OpenAI wire
format, every request logged. It stands in for LM Studio both as the embedding server and as the
gatekeeper's chat model.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "embeddings"))
import openai_stub  # type: ignore[import-not-found]  # noqa: E402
from openai_stub import OpenAIStub, StubRequest, free_port  # noqa: E402
from session import command, start  # noqa: E402

pytestmark = pytest.mark.slow

NOMIC = "text-embedding-nomic-embed-text-v1.5"
GITHUB_TOKEN = "ghp_" + "Q3v9XbT2mK7pL4sN8dR1fH6jW0cY5aE2uZ9o"

BILLING = '''\
def compute_invoice_total(items, tax_rate):
    """Sum the line items of an invoice and add the tax."""
    subtotal = sum(qty * price for qty, price in items)
    return round(subtotal * (1 + tax_rate), 2)


def send_payment_reminder(customer, days_late):
    """E-mail a customer whose invoice is overdue."""
    return f"Dear {customer}, your invoice is {days_late} days late."
'''

GEO = '''\
import math


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance between two points on Earth."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(
        math.radians(lon2 - lon1) / 2
    ) ** 2
    return 12742 * math.asin(math.sqrt(a))
'''

DEPLOY_YAML = f"""\
# zanzibar_cluster deployment
service: zanzibar_cluster
replicas: 3
region: eu-west-1
image: registry.example.com/zanzibar:1.4.2
resources:
  cpu: 500m
  memory: 512Mi
github_token: {GITHUB_TOKEN}
"""


def make_workspace(root: Path, *, with_config: bool = False) -> Path:
    ws = root / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "billing.py").write_text(BILLING)
    (ws / "src" / "geo.py").write_text(GEO)
    if with_config:
        (ws / "config").mkdir()
        (ws / "config" / "deploy.yaml").write_text(DEPLOY_YAML)
    return ws


def embedding_options(
    url: str, model: str = NOMIC, *, fallback: bool = False, **extra: Any
) -> dict[str, Any]:
    embedding = {"provider": "openai", "url": url, "model": model, "timeoutSeconds": 5}
    return {"embedding": {**embedding, "fallbackToLocal": fallback}, **extra}


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(embedding_dim=8, models=(NOMIC, "stub-chat")) as s:
        yield s


def embedded_inputs(stub: OpenAIStub, model: str | None = None) -> list[str]:
    """Every text the stub was asked to embed (optionally with one model)."""
    out: list[str] = []
    for r in stub.requests_to("/v1/embeddings", "POST"):
        if model is None or r.json.get("model") == model:
            out.extend(r.json["input"])
    return out


async def wait_message(lsp: LanguageClient, needle: str, timeout: float = 60.0) -> str:
    """Wait for a window/showMessage containing `needle` (already received ones count)."""

    async def run() -> str:
        while True:
            # Register the waiter before looking, so a message arriving in between is not lost.
            waiter = lsp.protocol.wait_for_notification_async(types.WINDOW_SHOW_MESSAGE)
            for m in lsp.messages:
                if needle in m.message:
                    return m.message
            params = await waiter
            if needle in params.message:
                return str(params.message)

    return await asyncio.wait_for(run(), timeout)


def messages_with(lsp: LanguageClient, needle: str) -> list[str]:
    return [m.message for m in lsp.messages if needle in m.message]


# -- embedding server down, then back ---------------------------------------------------------


async def test_embedding_server_down_queues_then_background_retry_embeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path)
    port = free_port()  # nothing listens here yet: LM Studio's server is not started
    url = f"http://127.0.0.1:{port}/v1"
    lsp = await start(ws, tmp_path / "data", options=embedding_options(url))
    stub: OpenAIStub | None = None
    try:
        report = await command(lsp, "leo.indexWorkspace", {})
        # chunked and stored, but not embedded — and it says so
        assert report["files"] == 2 and report["chunks"] >= 3
        assert report["pending"] >= 3 and report["embedded"] == 0
        assert any(e.startswith("embedding:") for e in report["errors"]), report
        assert "queued for embedding" in report["note"]
        # told once, even though the crawl and the command both hit the dead server
        told = messages_with(lsp, "embedding server is unavailable")
        assert len(told) == 1 and f"{report['pending']} chunks are queued" in told[0]

        health = await command(lsp, "leo.health")
        emb = health["services"]["embedding"]
        assert health["status"] == "degraded"
        assert emb["status"] == "unavailable" and emb["pending"] == report["pending"]
        assert "127.0.0.1" in emb["error"] or "refused" in emb["error"].lower(), emb

        # lexical search answers meanwhile (hybrid degrades with a note, never an error)
        res = await command(lsp, "leo.search", {"query": "compute_invoice_total"})
        assert res["results"][0]["symbol"] == "compute_invoice_total"
        assert res["mode"] == "lexical" and res["pending"] == report["pending"]
        # a file indexed on request is stored and reported as pending, not as embedded
        late = ws / "src" / "late.py"
        late.write_text("def reconcile_ledger(entries):\n    return sum(entries)\n")
        one = await command(lsp, "leo.indexFile", {"uri": late.as_uri()})
        assert one["decision"]["allowed"] and 1 <= one["pending"] <= one["chunks"]
        queued = report["pending"] + one["pending"]

        # LM Studio starts on that port; the background retry embeds the queue by itself
        class OnPort(ThreadingHTTPServer):
            def __init__(self, address: Any, handler: Any) -> None:
                super().__init__((address[0], port), handler)

        monkeypatch.setattr(openai_stub, "ThreadingHTTPServer", OnPort)
        stub = OpenAIStub(embedding_dim=8, models=(NOMIC,)).start()
        assert stub.url == url
        back = await wait_message(lsp, "embedding server is back")
        embedded = re.search(r"(\d+) queued chunks embedded", back)
        assert embedded is not None and int(embedded[1]) >= queued, back
        health = await command(lsp, "leo.health")
        emb = health["services"]["embedding"]
        assert emb["status"] == "ok" and emb["pending"] == 0 and emb["dim"] == 8
        assert health["status"] == "ok"
        res = await command(lsp, "leo.search", {"query": "compute_invoice_total", "mode": "vector"})
        assert res["mode"] == "vector" and res["pending"] == 0 and res["results"]
        sent = embedded_inputs(stub)
        docs = [t for t in sent if t.startswith("search_document: ")]
        assert len(docs) >= queued and any("reconcile_ledger" in t for t in docs)
        assert set(sent) - set(docs) == {"search_query: compute_invoice_total"}
        assert len(messages_with(lsp, "embedding server is unavailable")) == 1
    finally:
        await lsp.shutdown_session()
        if stub is not None:
            stub.stop()


async def test_fallback_to_local_model_when_server_down(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/v1"
    lsp = await start(ws, tmp_path / "data", options=embedding_options(url, fallback=True))
    try:
        report = await command(lsp, "leo.indexWorkspace", {})
        assert report["pending"] == 0 and report["embedded"] >= 3 and not report["errors"]
        emb = (await command(lsp, "leo.health"))["services"]["embedding"]
        assert emb["status"] == "fallback"
        assert emb["model"] == "minilm-l6-v2-code-int8" and emb["dim"] == 384
        assert emb["configuredModel"] == f"openai:{NOMIC}" and emb["fallbackReason"]
        res = await command(
            lsp, "leo.search", {"query": "distance between two places on the globe"}
        )
        assert res["results"][0]["symbol"] == "haversine_km"
        assert "vector" in res["results"][0]["sources"]
    finally:
        await lsp.shutdown_session()


# -- model change ------------------------------------------------------------------------------


async def test_model_change_reembeds_everything_with_the_new_model(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    data = tmp_path / "data"
    a, b = "nomic-embed-text-a", "nomic-embed-text-b"
    with OpenAIStub(embedding_dims={a: 8, b: 12}, models=(a, b)) as stub:
        lsp = await start(ws, data, options=embedding_options(stub.url, a))
        try:
            first = await command(lsp, "leo.indexWorkspace", {})
            assert first["pending"] == 0 and first["embedded"] >= 3
            emb = (await command(lsp, "leo.health"))["services"]["embedding"]
            assert (emb["model"], emb["dim"]) == (f"openai:{a}", 8)
        finally:
            await lsp.shutdown_session()
        chunks_a = {t for t in embedded_inputs(stub, a) if "dimension probe" not in t}

        lsp = await start(ws, data, options=embedding_options(stub.url, b))
        try:
            second = await command(lsp, "leo.indexWorkspace", {})
            # files unchanged on disk, yet every chunk re-embedded with B
            assert second["unchanged"] == 2 and second["pending"] == 0
            assert second["embedded"] == first["embedded"]
            chunks_b = {t for t in embedded_inputs(stub, b) if "dimension probe" not in t}
            assert chunks_a <= chunks_b
            emb = (await command(lsp, "leo.health"))["services"]["embedding"]
            assert (emb["model"], emb["dim"], emb["pending"]) == (f"openai:{b}", 12, 0)
            res = await command(
                lsp, "leo.search", {"query": "send_payment_reminder", "mode": "vector"}
            )
            assert res["mode"] == "vector" and len(res["results"]) >= 3
            hybrid = await command(lsp, "leo.search", {"query": "send_payment_reminder"})
            assert hybrid["results"][0]["symbol"] == "send_payment_reminder"
            assert "vector" in hybrid["results"][0]["sources"]
        finally:
            await lsp.shutdown_session()


# -- Nomic prefixes on the wire --------------------------------------------------------------


async def test_nomic_prefixes_go_over_the_wire(tmp_path: Path, stub: OpenAIStub) -> None:
    ws = make_workspace(tmp_path)
    lsp = await start(ws, tmp_path / "data", options=embedding_options(stub.url))
    try:
        report = await command(lsp, "leo.indexWorkspace", {})
        assert report["pending"] == 0
        docs = [t for t in embedded_inputs(stub) if "dimension probe" not in t]
        assert len(docs) >= report["embedded"] >= 3
        assert all(t.startswith("search_document: ") for t in docs), docs[:3]
        assert any("def compute_invoice_total" in t for t in docs)
        await command(lsp, "leo.search", {"query": "overdue invoice reminder"})
        assert "search_query: overdue invoice reminder" in embedded_inputs(stub)
        models = {r.json["model"] for r in stub.requests_to("/v1/embeddings")}
        assert models == {NOMIC}
    finally:
        await lsp.shutdown_session()


# -- gatekeeper.mode = llm -------------------------------------------------------------------


def _judge(request: StubRequest) -> str:
    """The stub's chat model: deny the deployment config, allow everything else."""
    prompt = json.dumps(request.json["messages"])
    if "deploy.yaml" in prompt:
        answer = {"decision": "deny", "category": "credentials", "reason": "deploy secrets"}
    else:
        answer = {"decision": "allow", "category": "source", "reason": "ordinary"}
    return json.dumps({**answer, "confidence": 0.9})


async def test_llm_gatekeeper_denies_doubtful_file_and_caches(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, with_config=True)
    deploy = ws / "config" / "deploy.yaml"
    with OpenAIStub(embedding_dim=8, models=(NOMIC, "stub-chat"), chat_content=_judge) as stub:
        gatekeeper = {"mode": "llm", "url": stub.url, "model": "stub-chat", "timeoutSeconds": 5}
        lsp = await start(
            ws, tmp_path / "data", options=embedding_options(stub.url, gatekeeper=gatekeeper)
        )
        try:
            report = await command(lsp, "leo.indexWorkspace", {})
            assert report["denied"] == 1 and report["files"] == 2
            chats = stub.requests_to("/v1/chat/completions")
            # only the doubtful file was asked about; ordinary source is allowed by the rules
            assert len(chats) == 1
            body = chats[0].body.decode()
            assert "deploy.yaml" in body and "zanzibar_cluster" in body
            assert GITHUB_TOKEN not in body and GITHUB_TOKEN[:12] not in body
            assert chats[0].json["temperature"] == 0

            res = await command(lsp, "leo.search", {"query": "zanzibar_cluster", "limit": 20})
            assert not any("deploy.yaml" in r["uri"] for r in res["results"])
            rows = await command(lsp, "leo.gatekeeperDecisions", {"uri": deploy.as_uri()})
            assert rows[0]["source"] == "llm" and rows[0]["decision"] == "deny"
            assert "deploy secrets" in rows[0]["reason"]

            again = await command(lsp, "leo.indexWorkspace", {"force": True})
            assert again["denied"] == 1
            assert len(stub.requests_to("/v1/chat/completions")) == 1  # no second LLM call
            rows = await command(lsp, "leo.gatekeeperDecisions", {"uri": deploy.as_uri()})
            assert [r["source"] for r in rows[:2]] == ["cache", "llm"]
            assert rows[0]["decision"] == "deny"

            gk = (await command(lsp, "leo.health"))["services"]["gatekeeper"]
            assert gk["mode"] == "llm" and gk["llm"] == "reachable" and gk["status"] == "ok"
            assert gk["counts"]["llm"] == 1 and gk["counts"]["cache"] >= 1
        finally:
            await lsp.shutdown_session()


async def test_llm_down_falls_back_to_rules_fast(tmp_path: Path, stub: OpenAIStub) -> None:
    ws = make_workspace(tmp_path, with_config=True)
    (ws / "config" / "app.toml").write_text('[server]\nport = 8080\nname = "zanzibar"\n')
    (ws / "config" / "extra.json").write_text('{"feature": "zanzibar_cluster", "on": true}\n')
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gatekeeper = {"mode": "llm", "url": dead, "model": "stub-chat", "timeoutSeconds": 5}
    lsp = await start(
        ws, tmp_path / "data", options=embedding_options(stub.url, gatekeeper=gatekeeper)
    )
    try:
        t0 = time.perf_counter()
        report = await command(lsp, "leo.indexWorkspace", {}, timeout=60)
        took = time.perf_counter() - t0
        # the rules decide: the config files are indexed (secret redacted), nothing hangs
        assert report["files"] == 5 and report["denied"] == 0 and report["pending"] == 0
        assert took < 10, took  # three doubtful files, one refused connection between them
        rows = await command(lsp, "leo.gatekeeperDecisions", {})
        doubtful = [r for r in rows if r["path"].endswith((".yaml", ".toml", ".json"))]
        assert len(doubtful) == 3
        assert all(r["source"] == "rules" and r["decision"] == "allow" for r in doubtful)
        assert all("LLM" in r["reason"] for r in doubtful), doubtful
        res = await command(lsp, "leo.search", {"query": "zanzibar_cluster", "mode": "lexical"})
        assert any("deploy.yaml" in r["uri"] for r in res["results"])
        assert all(GITHUB_TOKEN not in r["snippet"] for r in res["results"])

        health = await command(lsp, "leo.health")
        gk = health["services"]["gatekeeper"]
        assert gk["llm"] == "unreachable" and gk["status"] == "degraded"
        assert gk["lastError"]
        assert health["status"] in ("ok", "degraded")
    finally:
        await lsp.shutdown_session()
