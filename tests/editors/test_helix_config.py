"""editors/helix/languages.toml: valid TOML, a runnable leo command, options leo accepts, and leo
appended after each language's usual servers."""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from leo_lsp.settings import build_settings

REPO = Path(__file__).resolve().parents[2]
LANGUAGES_TOML = REPO / "editors" / "helix" / "languages.toml"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    with LANGUAGES_TOML.open("rb") as f:
        return tomllib.load(f)


def test_leo_server_command_exists(config: dict[str, Any]) -> None:
    leo = config["language-server"]["leo"]
    assert leo["command"] == "leo-lsp"
    found = shutil.which(leo["command"], path=str(VENV_BIN))
    assert found is not None, f"{leo['command']} is not in {VENV_BIN}: `pip install -e .` first"


def test_leo_config_is_accepted_by_the_server_settings(config: dict[str, Any]) -> None:
    options = config["language-server"]["leo"].get("config", {})
    settings = build_settings(options, environ={})
    assert settings.problems == []
    assert settings.gatekeeper.mode == options["gatekeeper"]["mode"]
    assert settings.struggle.threshold == options["struggle"]["threshold"]


def test_languages_keep_their_servers_first_and_add_leo(config: dict[str, Any]) -> None:
    languages = config["language"]
    names = [lang["name"] for lang in languages]
    assert len(names) == len(set(names)), "a language is listed twice"
    assert {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp"} <= set(
        names
    )
    for lang in languages:
        servers = lang["language-servers"]
        assert servers[-1] == "leo", f"{lang['name']}: leo should come last"
        assert servers.count("leo") == 1
        assert len(servers) >= 2, f"{lang['name']}: keep the language's usual server first"
        assert set(lang) == {"name", "language-servers"}, (
            f"{lang['name']}: override only language-servers, not Helix's other defaults"
        )
