"""leo.search filters over LSP: languages, path globs and projectId, in every mode."""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

sys.path.insert(0, str(Path(__file__).parent))
from session import command  # noqa: E402

pytestmark = pytest.mark.slow

PY_CONFIG = '''\
import json


def load_config(path):
    """Read the settings file and return its values as a dict."""
    with open(path) as fh:
        return json.load(fh)


def save_config(path, values):
    with open(path, "w") as fh:
        json.dump(values, fh, indent=2)
'''

TS_CONFIG = """\
import { readFileSync } from "fs";

export function loadConfig(path: string): Record<string, unknown> {
  const text = readFileSync(path, "utf8");
  return JSON.parse(text);
}

export function mergeConfig(a: object, b: object): object {
  return { ...a, ...b };
}
"""

PY_TOOLS = '''\
def load_config_file(filename):
    """Open a configuration file and parse it into settings."""
    import tomllib
    with open(filename, "rb") as fh:
        return tomllib.load(fh)


def shout(text):
    return text.upper() + "!"
'''

QUERY = "load the configuration settings from a file"


def make_folders(root: Path) -> tuple[Path, Path]:
    app = root / "app"
    (app / "src").mkdir(parents=True)
    (app / "web").mkdir()
    (app / "src" / "config.py").write_text(PY_CONFIG)
    (app / "web" / "config.ts").write_text(TS_CONFIG)
    tools = root / "tools"
    tools.mkdir()
    (tools / "cfg.py").write_text(PY_TOOLS)
    return app, tools


async def start_two(app: Path, tools: Path, data: Path) -> LanguageClient:
    """A server with two workspace folders (two projects)."""
    lsp = await ClientServerConfig(server_command=[sys.executable, "-m", "leo_lsp"]).start()
    assert isinstance(lsp, LanguageClient)
    await lsp.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            root_uri=app.as_uri(),
            workspace_folders=[
                types.WorkspaceFolder(uri=app.as_uri(), name="app"),
                types.WorkspaceFolder(uri=tools.as_uri(), name="tools"),
            ],
            initialization_options={"dataDir": str(data)},
        )
    )
    return lsp


def rel(result: dict[str, Any], roots: list[Path]) -> str:
    path = Path(result["uri"].removeprefix("file://"))
    for root in roots:
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    raise AssertionError(f"{path} is in no workspace folder")


async def test_filters_narrow_results_in_every_mode(tmp_path: Path) -> None:
    app, tools = make_folders(tmp_path)
    lsp = await start_two(app, tools, tmp_path / "data")
    try:
        report = await command(lsp, "leo.indexWorkspace", {})
        assert report["pending"] == 0 and len(report["projects"]) == 2
        everything = await command(lsp, "leo.search", {"query": QUERY, "limit": 20})
        results = everything["results"]
        assert {r["language"] for r in results} >= {"python", "typescript"}
        projects = {r["projectId"] for r in results}
        assert len(projects) == 2
        tools_id = next(r["projectId"] for r in results if r["uri"].endswith("/cfg.py"))
        roots = [app, tools]

        for mode in ("hybrid", "vector", "lexical"):
            base = {"query": QUERY, "limit": 20, "mode": mode}
            res = await command(lsp, "leo.search", {**base, "languages": ["typescript"]})
            assert res["results"], mode
            assert {r["language"] for r in res["results"]} == {"typescript"}, mode
            assert res["results"][0]["symbol"] == "loadConfig", mode

            res = await command(lsp, "leo.search", {**base, "paths": ["src/*.py"]})
            assert res["results"], mode
            assert all(fnmatch.fnmatch(rel(r, roots), "src/*.py") for r in res["results"]), mode
            assert res["results"][0]["symbol"] == "load_config", mode

            res = await command(lsp, "leo.search", {**base, "projectId": tools_id})
            assert res["results"], mode
            assert {r["projectId"] for r in res["results"]} == {tools_id}, mode
            assert res["results"][0]["symbol"] == "load_config_file", mode

            # filters combine (AND): python files of the app project only
            app_id = next(p for p in projects if p != tools_id)
            res = await command(
                lsp,
                "leo.search",
                {**base, "projectId": app_id, "languages": ["python"], "paths": ["*.py"]},
            )
            assert res["results"], mode
            assert all(
                r["projectId"] == app_id and r["language"] == "python" for r in res["results"]
            ), mode

            # a filter nothing matches gives no results, not an error
            res = await command(lsp, "leo.search", {**base, "languages": ["haskell"]})
            assert res["results"] == [], mode
    finally:
        await lsp.shutdown_session()
