"""workspace/symbol answers with leo.search's ranking: name, kind, location and container."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lsprotocol import types

sys.path.insert(0, str(Path(__file__).parent))
from session import command, start  # noqa: E402

pytestmark = pytest.mark.slow

INVENTORY = """\
class Inventory:
    def __init__(self):
        self.stock = {}

    def add_stock(self, sku, count):
        self.stock[sku] = self.stock.get(sku, 0) + count

    def remove_stock(self, sku, count):
        if self.stock.get(sku, 0) < count:
            raise ValueError("not enough items in stock")
        self.stock[sku] -= count


def format_price(cents):
    return f"${cents // 100}.{cents % 100:02d}"
"""


async def test_workspace_symbol_matches_search_ranking(tmp_path: Path) -> None:
    ws = tmp_path / "shop"
    ws.mkdir()
    path = ws / "inventory.py"
    path.write_text(INVENTORY)
    lsp = await start(ws, tmp_path / "data")
    try:
        await command(lsp, "leo.indexWorkspace", {})
        query = "take items out of the stock, failing when there are too few"
        symbols = await lsp.workspace_symbol_async(types.WorkspaceSymbolParams(query=query))
        assert symbols
        top = symbols[0]
        assert isinstance(top, types.SymbolInformation)
        assert top.name == "remove_stock"
        assert top.kind == types.SymbolKind.Method
        assert top.container_name == "Inventory"
        assert isinstance(top.location, types.Location)
        assert top.location.uri == path.as_uri()
        assert top.location.range.start.line == 7  # 0-based line of `def remove_stock`
        assert top.location.range.end.line == 10

        searched = await command(lsp, "leo.search", {"query": query, "limit": 50})
        names = [
            (s.name, s.location.range.start.line)
            for s in symbols
            if isinstance(s, types.SymbolInformation)
        ]
        ranked = [(r["symbol"], r["range"]["start"]["line"]) for r in searched["results"]]
        assert names == ranked  # the same ranking, not a second one

        money = await lsp.workspace_symbol_async(
            types.WorkspaceSymbolParams(query="show an amount of cents as dollars")
        )
        assert money and isinstance(money[0], types.SymbolInformation)
        assert money[0].name == "format_price"
        assert money[0].kind == types.SymbolKind.Function
        assert money[0].container_name == "inventory.py"  # top-level: the file is the container

        assert await lsp.workspace_symbol_async(types.WorkspaceSymbolParams(query="  ")) == []
    finally:
        await lsp.shutdown_session()
