"""The spine end to end: a real leo-lsp over stdio, the real model, sqlite-vec and tree-sitter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

sys.path.insert(0, str(Path(__file__).parent))
from session import CLIENTS, command, open_buffer, start  # noqa: E402

pytestmark = pytest.mark.slow

UNSAVED = '''\
import math


def haversine_distance(lat1, lon1, lat2, lon2):
    """Great-circle distance between two points on Earth in kilometres."""
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def slugify(title):
    """Lower-case a title and join its words with dashes for a URL."""
    return "-".join(title.lower().split())
'''


def make_workspace(root: Path) -> Path:
    ws = root / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "build").mkdir()
    (ws / "src" / "cart.py").write_text(
        "class Cart:\n"
        "    def __init__(self):\n        self.items = []\n\n"
        "    def add_item(self, name, price):\n"
        '        """Put a product with its price into the shopping cart."""\n'
        "        self.items.append((name, price))\n\n"
        "    def total(self):\n"
        "        return sum(p for _, p in self.items)\n"
    )
    (ws / "src" / "retry.ts").write_text(
        "export async function retryWithBackoff<T>(fn: () => Promise<T>, tries = 5): "
        "Promise<T> {\n  let delay = 100;\n  for (let i = 0; ; i++) {\n"
        "    try { return await fn(); } catch (e) {\n      if (i >= tries) throw e;\n"
        "      await new Promise(r => setTimeout(r, delay));\n      delay *= 2;\n    }\n  }\n}\n"
    )
    (ws / "build" / "generated_parser.py").write_text(
        "def parse_invoice_totals(doc):\n    return doc['totals']\n"
    )
    (ws / "notes.log").write_text("parse_invoice_totals failed yesterday\n")
    (ws / ".gitignore").write_text("build/\n*.log\n")
    (ws / ".env").write_text("API_KEY=sk_live_abcdefghijklmnopqrstuvwx\n")
    return ws


@pytest.mark.parametrize("client", CLIENTS)
async def test_unsaved_buffer_is_searchable_by_meaning(tmp_path: Path, client: str) -> None:
    ws = make_workspace(tmp_path)
    lsp = await start(ws, tmp_path / "data", client)
    try:
        path = ws / "src" / "geo.py"  # never written to disk
        done = await open_buffer(lsp, path, UNSAVED, "python")
        assert done.allowed and done.chunks >= 2
        res = await command(
            lsp, "leo.search", {"query": "distance between two coordinates on the globe"}
        )
        top = res["results"][0]
        assert top["uri"] == path.as_uri()
        assert top["symbol"] == "haversine_distance"
        assert top["kind"] == "function"
        # the chunk covers the function (a tiny import block above it may be merged in)
        assert top["range"]["start"]["line"] <= 3 <= 10 <= top["range"]["end"]["line"]
        symbols = await lsp.workspace_symbol_async(
            types.WorkspaceSymbolParams(query="make a url slug from a title")
        )
        assert symbols and symbols[0].name == "slugify"
        assert symbols[0].location.uri == path.as_uri()
    finally:
        await lsp.shutdown_session()


@pytest.mark.parametrize("client", CLIENTS)
async def test_crawl_respects_gitignore_reports_progress_and_restart_reembeds_nothing(
    tmp_path: Path, client: str
) -> None:
    ws = make_workspace(tmp_path)
    data = tmp_path / "data"
    lsp = await start(ws, data, client)
    try:
        report = await command(lsp, "leo.indexWorkspace", {})
        assert report["files"] >= 2  # cart.py, retry.ts (+ .gitignore as text)
        assert report["denied"] >= 2  # .env, notes.log (build/ is never even entered)
        assert report["chunks"] >= 3
        assert report["pending"] == 0
        res = await command(lsp, "leo.search", {"query": "parse_invoice_totals", "limit": 20})
        uris = {r["uri"] for r in res["results"]}
        assert not any("generated_parser" in u or "notes.log" in u for u in uris)
        res = await command(
            lsp, "leo.search", {"query": "retry a failing promise with exponential backoff"}
        )
        assert res["results"][0]["symbol"] == "retryWithBackoff"
        assert res["results"][0]["language"] == "typescript"
        decisions = await command(lsp, "leo.gatekeeperDecisions", {"uri": (ws / ".env").as_uri()})
        assert decisions[0]["decision"] == "deny" and decisions[0]["source"] in ("rules", "cache")
        # progress: begin, at least one report, end — for the crawl started by the command
        kinds = [[v.kind for v in values] for values in lsp.progress_reports.values()]
        assert any(k[0] == "begin" and "report" in k and k[-1] == "end" for k in kinds), kinds
        first_embedded = report["embedded"]
        assert first_embedded >= report["chunks"] - 1
    finally:
        await lsp.shutdown_session()

    lsp = await start(ws, data, client)
    try:
        report = await command(lsp, "leo.indexWorkspace", {})
        assert report["embedded"] == 0  # nothing re-embedded after a restart
        assert report["unchanged"] >= 3
        health = await command(lsp, "leo.health")
        assert health["services"]["embedding"]["model"] == "minilm-l6-v2-code-int8"
        res = await command(lsp, "leo.search", {"query": "put a product into the shopping cart"})
        assert res["results"][0]["symbol"] == "add_item"
        assert res["results"][0]["scope"] == "Cart"
    finally:
        await lsp.shutdown_session()


async def test_bad_arguments_are_invalid_params_and_server_keeps_answering(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    lsp = await start(ws, tmp_path / "data")
    try:
        cases = [
            ("leo.search", {"query": 5}, "query"),
            ("leo.search", {"query": "x", "limit": "ten"}, "limit"),
            ("leo.search", {"query": "x", "mode": "psychic"}, "mode"),
            ("leo.search", {}, "query"),
            ("leo.search", {"query": "x", "bogus": 1}, "bogus"),
            ("leo.indexFile", {"uri": "https://example.com/x.py"}, "uri"),
            ("leo.indexWorkspace", {"force": "yes"}, "force"),
        ]
        for name, args, field in cases:
            with pytest.raises(JsonRpcException) as info:
                await command(lsp, name, args)
            assert info.value.code == -32602, (name, args, info.value)
            assert field in info.value.message, info.value.message
        with pytest.raises(JsonRpcException) as info:
            await command(lsp, "leo.noSuchCommand", {})
        assert "leo.noSuchCommand" in info.value.message
        with pytest.raises(JsonRpcException):
            await lsp.workspace_execute_command_async(
                types.ExecuteCommandParams(command="leo.search", arguments=["not an object"])
            )
        health = await command(lsp, "leo.health")
        assert health["status"] == "ok"
    finally:
        await lsp.shutdown_session()


async def test_health_shape(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    lsp = await start(ws, tmp_path / "data")
    try:
        health = await command(lsp, "leo.health")
        assert set(health) >= {"status", "services", "version"}
        assert set(health["services"]) == {"vectorDb", "embedding", "gatekeeper", "firebase"}
        assert health["services"]["vectorDb"]["backend"] == "sqlite-vec"
        assert health["services"]["embedding"]["dim"] == 384
        assert health["services"]["firebase"]["status"] == "disabled"
    finally:
        await lsp.shutdown_session()


async def test_invalid_option_falls_back_and_tells_the_user(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    lsp = await start(ws, tmp_path / "data", options={"index": {"debounceMs": "soon"}})
    try:
        await command(lsp, "leo.health")
        assert any("debounceMs" in m.message for m in lsp.messages), lsp.messages
    finally:
        await lsp.shutdown_session()


async def test_did_change_configuration_applies_live(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    lsp = await start(ws, tmp_path / "data")
    try:
        await command(lsp, "leo.indexWorkspace", {})
        res = await command(lsp, "leo.search", {"query": "retryWithBackoff", "mode": "lexical"})
        assert res["results"]
        lsp.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"leo": {"index": {"exclude": ["*.ts"]}}})
        )
        await command(lsp, "leo.indexWorkspace", {"force": True})
        res = await command(lsp, "leo.search", {"query": "retryWithBackoff", "mode": "lexical"})
        assert res["results"] == []
        rows = await command(
            lsp, "leo.gatekeeperDecisions", {"uri": (ws / "src" / "retry.ts").as_uri()}
        )
        assert rows[0]["decision"] == "deny"
    finally:
        await lsp.shutdown_session()
