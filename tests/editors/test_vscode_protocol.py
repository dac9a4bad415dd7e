"""The VS Code extension: it compiles, packages into a .vsix that loads, and its protocol layer
drives the real server (editors/vscode/test/e2e.js) through index → search → shutdown.

CI needs Node 20+ and npm; `npm ci` runs here when editors/vscode/node_modules is absent (the
first run needs the npm registry, later runs are offline).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from leo_lsp.settings import build_settings

REPO = Path(__file__).resolve().parents[2]
EXT = REPO / "editors" / "vscode"
VENV_BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"`{name}` is not on PATH: the VS Code extension tests need Node.js 20+ and npm "
            "(CI: actions/setup-node, or apt-get install nodejs npm)"
        )
    return found


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        cmd, cwd=EXT, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


# Settings that only the extension reads; everything else under leo.* goes to the server.
CLIENT_ONLY = {
    "serverPath",
    "serverArgs",
    "search.limit",
    "search.mode",
    "struggle.forwardDiagnostics",
}


def test_contributed_settings_are_server_options() -> None:
    """Every server-bound `leo.*` setting, at its contributed default, is an option leo accepts
    with the same default (mirrors src/config.ts: nested camelCase, empty strings left out)."""
    manifest = json.loads((EXT / "package.json").read_text())
    props = manifest["contributes"]["configuration"]["properties"]
    options: dict[str, Any] = {}
    for key, spec in props.items():
        name = key.removeprefix("leo.")
        if name in CLIENT_ONLY or spec["default"] == "":
            continue
        *parents, leaf = name.split(".")
        node = options
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = spec["default"]
    settings = build_settings(options, environ={})
    assert settings.problems == []
    assert build_settings({}, environ={}) == settings, "a contributed default differs from leo's"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """npm ci (if needed), compile, and package; returns the .vsix path."""
    npm = _tool("npm")
    _tool("node")
    npx = _tool("npx")
    if not (EXT / "node_modules").is_dir():
        _run([npm, "ci", "--no-audit", "--no-fund"], timeout=900)
    _run([npm, "run", "compile"], timeout=300)
    vsix = tmp_path_factory.mktemp("vsix") / "leo-lsp.vsix"
    _run([npx, "--no-install", "vsce", "package", "--out", str(vsix)], timeout=300)
    return vsix


@pytest.mark.slow
def test_extension_compiles_and_packages(built: Path) -> None:
    assert built.is_file(), "vsce did not write the .vsix"
    assert built.stat().st_size > 10_000
    with zipfile.ZipFile(built) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("extension/package.json"))
    assert "extension/out/extension.js" in names
    assert "extension/node_modules/vscode-languageclient/lib/node/main.js" in names
    assert not any(n.startswith("extension/src/") for n in names), "sources leaked into the .vsix"
    commands = {c["command"] for c in manifest["contributes"]["commands"]}
    assert {"leo.searchCode", "leo.indexWorkspace", "leo.showHealth", "leo.struggleHistory"} <= (
        commands
    )
    settings = manifest["contributes"]["configuration"]["properties"]
    for key in (
        "leo.serverPath",
        "leo.dataDir",
        "leo.embedding.provider",
        "leo.gatekeeper.mode",
        "leo.struggle.enabled",
    ):
        assert key in settings, f"{key} is not contributed"


@pytest.mark.slow
def test_packaged_extension_loads(built: Path, tmp_path: Path) -> None:
    """The .vsix carries every module extension.js requires (VS Code's API stood in)."""
    with zipfile.ZipFile(built) as z:
        z.extractall(tmp_path)
    proc = subprocess.run(
        [_tool("node"), str(EXT / "test" / "load-packaged.js"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["ok"] is True


@pytest.mark.slow
def test_e2e_protocol_against_real_server(built: Path) -> None:
    server = VENV_BIN / "leo-lsp"
    if not server.is_file():
        pytest.fail(f"{server} is missing: `pip install -e .` into this venv first")
    env = {**os.environ, "LEO_LSP_COMMAND": str(server), "LEO_E2E_TIMEOUT_MS": "180000"}
    proc = subprocess.run(
        [_tool("node"), str(EXT / "test" / "e2e.js")],
        cwd=EXT,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, f"e2e.js failed:\n{proc.stderr[-6000:]}"
    summary = json.loads(proc.stdout)
    assert summary["ok"] is True
    steps = summary["steps"]
    assert steps["search"]["top"][0][0] == "compute_invoice_total"
    assert steps["indexWorkspace"]["files"] >= 2
    assert steps["exit"]["code"] == 0
