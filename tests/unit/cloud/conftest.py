"""Session fixtures for tests/unit/cloud: both emulators start once, in parallel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cloud_fakes import AuthEmulator, FirestoreEmulator, ensure_node_tooling


@pytest.fixture(scope="session")
def _emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    node, firebase = ensure_node_tooling()
    workdir: Path = tmp_path_factory.mktemp("auth-emulator")
    started: dict[str, object] = {}
    try:
        started["auth"] = AuthEmulator(firebase, workdir)
        started["firestore"] = FirestoreEmulator(node)
        yield started
    finally:
        for emu in started.values():
            emu.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def auth_emulator(_emulators: dict[str, object]) -> AuthEmulator:
    emu = _emulators["auth"]
    assert isinstance(emu, AuthEmulator)
    emu.wait_ready()
    return emu


@pytest.fixture(scope="session")
def firestore_emulator(_emulators: dict[str, object]) -> FirestoreEmulator:
    emu = _emulators["firestore"]
    assert isinstance(emu, FirestoreEmulator)
    if not emu.port:
        emu.wait_ready()
    return emu
