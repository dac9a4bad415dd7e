"""Faults a language server meets in the wild, against a live leo-lsp over stdio.

Corrupt database, unusable data dir, a dying or slow embedding server, files vanishing mid-crawl,
a storm of edits on one buffer, shutdown during a crawl, a 50 MB buffer and file.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rel_support import SMALL_STDLIB, EmbeddingStub, RawLsp, copy_stdlib  # noqa: E402

from leo_lsp.services import build_services
from leo_lsp.settings import build_settings
from leo_lsp.store.database import connect


@pytest.fixture
def stub() -> Any:
    s = EmbeddingStub()
    yield s
    s.close()


def start(tmp: Path, ws: Path | None, stub: EmbeddingStub, **options: Any) -> RawLsp:
    data = tmp / "data"
    lsp = RawLsp(data, log_file=tmp / "server.log")
    lsp.initialize(ws, {"dataDir": str(data), **stub.options(), **options})
    return lsp


def workspace(tmp: Path, n: int = 6) -> Path:
    ws = tmp / "ws"
    copy_stdlib(ws, SMALL_STDLIB[:n])
    return ws


def test_corrupt_database_is_moved_aside_rebuilt_and_reported(
    tmp_path: Path, stub: EmbeddingStub
) -> None:
    ws = workspace(tmp_path)
    lsp = start(tmp_path, ws, stub)
    first = lsp.result("leo.indexWorkspace")
    lsp.shutdown()
    (db,) = (tmp_path / "data").glob("projects/*/index.sqlite3")
    db.write_bytes(b"this is not a database" * 500)

    lsp = start(tmp_path, ws, stub)
    try:
        note = lsp.wait_notification(
            "window/showMessage", lambda p: "damaged" in p.get("message", ""), timeout=60
        )
        assert "moved to" in note["params"]["message"]
        assert list(db.parent.glob("index.sqlite3.corrupt-*")), "the damaged file was kept"
        rebuilt = lsp.result("leo.indexWorkspace")
        assert rebuilt["files"] == first["files"] and rebuilt["pending"] == 0
        stats = lsp.result("leo.projectStats")
        assert stats["chunks"] > 0 and stats["pending"] == 0
    finally:
        lsp.shutdown()


def test_unusable_data_dir_is_reported_and_the_server_keeps_answering(
    tmp_path: Path, stub: EmbeddingStub
) -> None:
    # Tests run as root, where chmod cannot make a directory read-only: a regular file where
    # the data dir should be fails the same way (mkdir and sqlite both refuse).
    ws = workspace(tmp_path, 2)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    data = blocker / "data"
    lsp = RawLsp(tmp_path / "d", log_file=tmp_path / "server.log")
    try:
        resp = lsp.request(
            "initialize",
            {
                "processId": None,
                "capabilities": {},
                "rootUri": ws.as_uri(),
                "workspaceFolders": [{"uri": ws.as_uri(), "name": "ws"}],
                "initializationOptions": {"dataDir": str(data), **stub.options()},
            },
        )
        # The session survives: initialize succeeds, the index goes to a throwaway data dir,
        # and the user is told which path is unusable.
        assert "result" in resp, resp
        lsp.send("initialized", {}, msg_id=False)
        note = lsp.wait_notification(
            "window/showMessage", lambda p: str(data) in p.get("message", "")
        )
        assert "not kept" in note["params"]["message"]
        assert lsp.result("leo.indexWorkspace")["files"] == 2
        assert lsp.result("leo.health")["status"] in ("ok", "degraded")
        assert lsp.proc.poll() is None
    finally:
        lsp.shutdown()


def test_dying_embedder_is_not_reported_as_indexed(tmp_path: Path, stub: EmbeddingStub) -> None:
    ws = workspace(tmp_path, 3)
    lsp = start(tmp_path, ws, stub)
    try:
        assert lsp.result("leo.indexWorkspace")["pending"] == 0
        assert lsp.result("leo.health")["status"] == "ok"
        stub.fail = True
        (ws / "lib" / "fresh.py").write_text("def brand_new_function(a):\n    return a + 1\n")
        resp = lsp.command("leo.indexWorkspace", {})
        if "result" in resp:
            assert resp["result"]["pending"] > 0, resp
        else:
            assert "embed" in resp["error"]["message"].lower(), resp
        stats = lsp.result("leo.projectStats")
        assert stats["pending"] > 0, "chunks without vectors must not count as indexed"
        health = lsp.result("leo.health")
        assert health["status"] != "ok"
        assert health["services"]["embedding"]["status"] == "unavailable"
        # Lexical search still answers while the embedder is down.
        found = lsp.result("leo.search", {"query": "brand_new_function", "mode": "lexical"})
        assert any("fresh.py" in r["uri"] for r in found["results"])
        # The embedder comes back: the backlog drains and health recovers.
        stub.fail = False
        report = lsp.result("leo.indexWorkspace", {})
        assert report["pending"] == 0
        assert lsp.result("leo.projectStats")["pending"] == 0
        assert lsp.result("leo.health")["status"] == "ok"
    finally:
        lsp.shutdown()


def test_did_change_storm_indexes_only_the_last_version(
    tmp_path: Path, stub: EmbeddingStub
) -> None:
    ws = workspace(tmp_path, 2)
    target = ws / "lib" / "storm.py"
    target.write_text("def storm_v0():\n    return 0\n")
    lsp = start(tmp_path, ws, stub, index={"debounceMs": 50})
    try:
        lsp.result("leo.indexWorkspace")
        uri = target.as_uri()
        lsp.send(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "python",
                    "version": 1,
                    "text": target.read_text(),
                }
            },
            msg_id=False,
        )
        lsp.wait_notification("leo/indexed", lambda p: p.get("version") == 1)
        storm = 300
        frames = []
        for v in range(2, storm + 2):
            text = f"def storm_v{v}(x):\n    return x + {v}\n"
            frames.append(
                RawLsp.frame(
                    {
                        "jsonrpc": "2.0",
                        "method": "textDocument/didChange",
                        "params": {
                            "textDocument": {"uri": uri, "version": v},
                            "contentChanges": [{"text": text}],
                        },
                    }
                )
            )
        lsp.write(b"".join(frames))
        last = storm + 1
        lsp.wait_notification("leo/indexed", lambda p: p.get("version") == last, timeout=60)
        indexed = [n for n in lsp.notifications if n["method"] == "leo/indexed"]
        assert len(indexed) < storm // 10, f"{len(indexed)} re-indexes for {storm} edits"
        (db,) = (tmp_path / "data").glob("projects/*/index.sqlite3")
        conn, _ = connect(db)
        try:
            texts = [
                r[0]
                for r in conn.execute(
                    "SELECT c.text FROM chunks c JOIN files f ON f.id = c.file_id "
                    "WHERE f.path = 'lib/storm.py'"
                )
            ]
        finally:
            conn.close()
        assert texts and all(f"storm_v{last}(" in t for t in texts), texts
        hits = lsp.result("leo.search", {"query": "storm_v", "mode": "lexical"})["results"]
        symbols = {r["symbol"] for r in hits if "storm.py" in r["uri"]}
        assert symbols == {f"storm_v{last}"}, symbols
    finally:
        lsp.shutdown()


def test_shutdown_during_a_crawl_returns_promptly(tmp_path: Path, stub: EmbeddingStub) -> None:
    ws = workspace(tmp_path, 12)
    lsp = start(tmp_path, ws, stub)  # `initialized` starts the crawl
    try:
        stub.delay = 0.5  # embedding the whole repository now takes well over a minute
        lsp.wait_notification("window/logMessage", lambda p: True, timeout=30)
        t0 = time.monotonic()
        resp = lsp.request("shutdown", None, timeout=30)
        took = time.monotonic() - t0
        assert "error" not in resp, resp
        lsp.send("exit", None, msg_id=False)
        assert lsp.proc.wait(30) == 0
        assert took < 15, f"shutdown took {took:.1f} s during a crawl"
    finally:
        stub.delay = 0
        lsp.close()


def test_fifty_megabyte_buffer_and_file_do_not_stall(tmp_path: Path, stub: EmbeddingStub) -> None:
    ws = workspace(tmp_path, 3)
    big_line = "value = 'abcdefghijklmnopqrstuvwxyz0123456789'\n"
    big = big_line * (50 * 1024 * 1024 // len(big_line))
    (ws / "lib" / "huge_on_disk.py").write_text(big)
    lsp = start(tmp_path, ws, stub)
    try:
        report = lsp.result("leo.indexWorkspace", timeout=120)
        assert report["denied"] >= 1  # over index.maxFileBytes: refused without reading it all
        uri = (ws / "lib" / "huge_buffer.py").as_uri()
        lsp.send(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": big}},
            msg_id=False,
        )
        # The editor keeps getting answers while leo deals with the 50 MB buffer.
        for _ in range(5):
            assert lsp.result("leo.health", timeout=60)["version"]
        done = lsp.wait_notification("leo/indexed", lambda p: p.get("uri") == uri, timeout=120)
        assert done["params"]["allowed"] is False
        assert lsp.result("leo.search", {"query": "abcdefghij", "mode": "lexical"}, timeout=60)
    finally:
        lsp.shutdown()


async def test_files_deleted_renamed_and_replaced_mid_crawl(tmp_path: Path) -> None:
    ws = workspace(tmp_path, 10)
    settings = build_settings({"dataDir": str(tmp_path / "data")})
    stub_vectors = _FastEmbedder()
    services = build_services(settings, embedder=stub_vectors)  # type: ignore[arg-type]
    try:
        project = services.registry.add_folder(ws)
        files = sorted((ws / "lib").rglob("*.py"))
        doomed, renamed, replaced = files[-1], files[-2], files[-3]
        real_chunker = services.indexer.chunker
        calls = [0]

        class SabotagingChunker:
            def chunk(self, text: str, path: str, language: str) -> Any:
                calls[0] += 1
                if calls[0] == 1:  # the crawl has listed the files; now the disk changes
                    doomed.unlink()
                    renamed.rename(renamed.with_name("renamed_" + renamed.name))
                    replaced.unlink()
                    replaced.mkdir()  # a directory where a file was listed
                return real_chunker.chunk(text, path, language)

        services.indexer.chunker = SabotagingChunker()
        report = await services.indexer.crawl(project)
        assert not report.cancelled
        assert report.skipped >= 2, report  # the vanished file and the directory
        services.indexer.chunker = real_chunker
        again = await services.indexer.crawl(project)
        stats = project.store.stats()
        paths = {r[0] for r in project.store.execute("SELECT path FROM files")}
        rel = lambda p: p.relative_to(ws).as_posix()  # noqa: E731
        assert rel(doomed) not in paths and rel(replaced) not in paths
        assert rel(renamed) not in paths
        assert rel(renamed.with_name("renamed_" + renamed.name)) in paths
        assert stats["pending"] == 0 and again.pending == 0
        assert project.store.integrity_ok()
    finally:
        await services.close()


class _FastEmbedder:
    """A deterministic in-process embedder (the pipeline, not the model, is under test here)."""

    dim = 16
    model_id = "test:fast"

    async def embed_documents(self, texts: Any) -> Any:
        import numpy as np
        from rel_support import stub_vector

        await asyncio.sleep(0)
        return np.array([stub_vector(t, self.dim) for t in texts], dtype=np.float32)

    async def embed_query(self, text: str) -> Any:
        return (await self.embed_documents([text]))[0]

    async def close(self) -> None:
        return None
