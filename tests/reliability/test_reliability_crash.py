"""kill -9 during crawls: the index stays consistent; the resumed crawl equals a clean one.

A real `leo-lsp index` (real model, sqlite-vec, tree-sitter) crawls a copy of stdlib modules and is
SIGKILLed at seeded points: in chunking (after k files of this round were written), in embedding
(after m vectors were stored) or at a random instant from process start. Between rounds files are
edited, renamed, deleted and created, so each restart has both chunking and embedding to do. After
every kill the database must pass `PRAGMA integrity_check`, every file row must hold exactly the
chunks a fresh chunking of one version of that file gives, FTS rows must match chunks one to one
and every stored vector id must have its vector.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from rel_support import SMALL_STDLIB, copy_stdlib  # noqa: E402

from leo_lsp.gatekeeper.gate import Gatekeeper
from leo_lsp.indexing.chunker import Chunker
from leo_lsp.indexing.languages import detect_language
from leo_lsp.records import content_hash
from leo_lsp.store.database import connect

SEED = 20261126
KILLS = 20
MAX_ROUNDS = 45
FILES = SMALL_STDLIB[:12]

_chunker = Chunker()
_fresh: dict[tuple[str, str], list[str]] = {}


def fresh_hashes(rel: str, text: str) -> list[str]:
    """Chunk hashes the pipeline would store for this text (chunk, then redact)."""
    key = (rel, content_hash(text))
    if key not in _fresh:
        out = []
        for ch in _chunker.chunk(text, rel, detect_language(rel, None)):
            body, _ = Gatekeeper.redact(ch.text)
            ctx, _ = Gatekeeper.redact(ch.context) if ch.context else (ch.context, 0)
            out.append(content_hash(ctx + "\n" + body))
        _fresh[key] = out
    return _fresh[key]


def run_index(ws: Path, data: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "leo_lsp", "--data-dir", str(data), "index", str(ws)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def db_path(data: Path) -> Path | None:
    found = list(data.glob("projects/*/index.sqlite3"))
    return found[0] if found else None


def poll(data: Path, sql: str, args: tuple[Any, ...] = ()) -> int:
    """A read-only count from the index being written (0 while it does not exist yet)."""
    db = db_path(data)
    if db is None:
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return int(conn.execute(sql, args).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def serving_table(conn: Any) -> str:
    """The vector table searches read (schema v3: one table per embedding model)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'serving_table'").fetchone()
    return str(row[0]) if row else "vectors"


def check_consistent(data: Path, versions: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Assert the invariants after a kill; return files → chunk hashes."""
    db = db_path(data)
    if db is None:
        return {}
    conn, vec = connect(db)
    try:
        assert vec, "sqlite-vec should load in tests"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        files = conn.execute("SELECT id, path, content_hash, allowed FROM files").fetchall()
        state: dict[str, Any] = {}
        for fid, path, chash, allowed in files:
            assert path in versions and chash in versions[path], f"{path}: unknown version"
            stored = [
                r[0]
                for r in conn.execute(
                    "SELECT hash FROM chunks WHERE file_id = ? ORDER BY ordinal", (fid,)
                )
            ]
            if allowed:
                expected = fresh_hashes(path, versions[path][chash])
                assert stored == expected, f"{path} is half-indexed or mixed"
            else:
                assert stored == []
            state[path] = (chash, tuple(stored))
        chunk_ids = {r[0] for r in conn.execute("SELECT id FROM chunks")}
        fts_ids = {r[0] for r in conn.execute("SELECT rowid FROM lexical")}
        assert chunk_ids == fts_ids, "lexical rows do not match chunks"
        orphans = conn.execute(
            f"SELECT COUNT(*) FROM vec_items vi LEFT JOIN {serving_table(conn)} v "
            "ON v.rowid = vi.id WHERE v.rowid IS NULL"
        ).fetchone()[0]
        assert orphans == 0, "a vector id without its vector"
        return state
    finally:
        conn.close()


def unembedded(data: Path) -> int:
    return poll(
        data,
        "SELECT COUNT(*) FROM chunks c LEFT JOIN vec_items vi ON vi.hash = c.hash "
        "WHERE vi.id IS NULL",
    )


def mutate(rng: random.Random, ws: Path, rnd: int, versions: dict[str, dict[str, str]]) -> None:
    """Edit, rename, delete or create a few files (recording every version written)."""
    lib = ws / "lib"
    files = sorted(p for p in lib.rglob("*.py"))
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["append", "rename_ident", "rename_ident", "delete", "create", "move"])
        target = rng.choice(files) if files else None
        if op == "append" and target is not None:
            text = target.read_text() + f"\n\ndef _leo_round_{rnd}(x):\n    return x * {rnd}\n"
            target.write_text(text)
        elif op == "rename_ident" and target is not None:
            # Touches most chunks of the file: a lot to re-embed.
            target.write_text(target.read_text().replace("self", f"me{rnd}"))
        elif op == "delete" and target is not None and len(files) > 4:
            target.unlink()
            files.remove(target)
        elif op == "move" and target is not None:
            dest = target.with_name(f"moved_{rnd}_{target.name}")
            target.rename(dest)
            files[files.index(target)] = dest
        else:
            new = lib / f"new_{rnd}.py"
            body = "\n\n".join(
                f"def made_{rnd}_{i}(a, b):\n    return a + b * {i}\n" for i in range(5)
            )
            new.write_text(body)
            files.append(new)
    record(ws, versions)


def record(ws: Path, versions: dict[str, dict[str, str]]) -> None:
    for p in ws.rglob("*"):
        if p.is_file():
            text = p.read_bytes().decode("utf-8", errors="replace")
            versions.setdefault(p.relative_to(ws).as_posix(), {})[content_hash(text)] = text


def final_state(data: Path) -> dict[str, Any]:
    db = db_path(data)
    assert db is not None
    conn, _ = connect(db)
    try:
        files = dict(conn.execute("SELECT path, content_hash FROM files").fetchall())
        chunks: dict[str, list[str]] = {}
        for path, h in conn.execute(
            "SELECT f.path, c.hash FROM chunks c JOIN files f ON f.id = c.file_id "
            "ORDER BY f.path, c.ordinal"
        ):
            chunks.setdefault(path, []).append(h)
        missing = conn.execute(
            "SELECT COUNT(*) FROM chunks c LEFT JOIN vec_items vi ON vi.hash = c.hash "
            f"LEFT JOIN {serving_table(conn)} v ON v.rowid = vi.id WHERE v.rowid IS NULL"
        ).fetchone()[0]
        return {"files": files, "chunks": chunks, "missing_vectors": missing}
    finally:
        conn.close()


def test_kill_nine_at_random_points_of_crawls(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    ws = tmp_path / "repo"
    copy_stdlib(ws, FILES)
    data = tmp_path / "data"
    versions: dict[str, dict[str, str]] = {}
    record(ws, versions)
    kills: list[str] = []
    completed = 0
    t_start = time.monotonic()
    for rnd in range(MAX_ROUNDS):
        if len(kills) >= KILLS:
            break
        if rnd:
            mutate(rng, ws, rnd, versions)
        round_start = time.time()
        phase = rng.choice(["chunk", "chunk", "embed", "embed", "embed", "instant"])
        target = rng.randint(1, 9 if rnd == 0 else 1)
        delay = rng.uniform(0.0, 2.5) if phase == "instant" else rng.uniform(0.0, 0.6)
        proc = run_index(ws, data)
        t0 = time.monotonic()
        embedding_since: float | None = None
        killed = False
        while proc.poll() is None:
            if phase == "chunk":
                hit = (
                    poll(data, "SELECT COUNT(*) FROM files WHERE indexed_at >= ?", (round_start,))
                    >= target
                )
            elif phase == "embed":
                # Chunks without vectors exist: the embedder is at work; kill a random moment later.
                if embedding_since is None and unembedded(data) > 0:
                    embedding_since = time.monotonic()
                hit = embedding_since is not None and time.monotonic() - embedding_since >= delay
            else:
                hit = time.monotonic() - t0 >= delay
            if hit:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)  # polling interval of the kill trigger, not synchronisation
        rc = proc.wait(120)
        if killed and rc == -signal.SIGKILL:
            kills.append(f"{phase}:{target if phase == 'chunk' else round(delay, 2)}")
        else:
            assert rc == 0, f"round {rnd}: leo-lsp index exited with {rc}"
            completed += 1
        check_consistent(data, versions)
    assert len(kills) >= KILLS, f"only {len(kills)} kills landed in {MAX_ROUNDS} rounds: {kills}"
    assert {k.split(":")[0] for k in kills} >= {"chunk", "embed"}, kills

    # The crawl completes after all those kills …
    proc = run_index(ws, data)
    assert proc.wait(600) == 0
    check_consistent(data, versions)
    resumed = final_state(data)
    assert unembedded(data) == 0
    # … and equals one run without interruption over the same files.
    clean = tmp_path / "clean"
    proc = run_index(ws, clean)
    assert proc.wait(600) == 0
    reference = final_state(clean)
    on_disk = {p.relative_to(ws).as_posix() for p in ws.rglob("*") if p.is_file()}
    assert set(resumed["files"]) == on_disk == set(reference["files"])
    assert resumed["files"] == reference["files"]
    assert resumed["chunks"] == reference["chunks"]
    assert resumed["missing_vectors"] == 0 == reference["missing_vectors"]
    print(
        f"crash: {len(kills)} kills ({completed} rounds completed) in "
        f"{time.monotonic() - t_start:.0f} s: {kills}"
    )
    shutil.rmtree(clean)


def meta(conn: Any) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def check_switch(data: Path, serving: str, target: str | None) -> int:
    """After a kill mid-switch: the old model still serves every chunk; return target vectors."""
    db = db_path(data)
    assert db is not None
    conn, _ = connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        m = meta(conn)
        assert (m["serving_model"], m.get("target_model")) == (serving, target)
        for role in ("serving", "target") if target else ("serving",):
            model, table = m[f"{role}_model"], m[f"{role}_table"]
            orphans = conn.execute(
                f"SELECT COUNT(*) FROM vec_items vi LEFT JOIN {table} v ON v.rowid = vi.id "
                "WHERE vi.model = ? AND v.rowid IS NULL",
                (model,),
            ).fetchone()[0]
            assert orphans == 0, f"a {role} vector id without its vector"
        missing = conn.execute(
            "SELECT COUNT(*) FROM chunks c LEFT JOIN vec_items vi "
            "ON vi.hash = c.hash AND vi.model = ? WHERE vi.id IS NULL",
            (serving,),
        ).fetchone()[0]
        assert missing == 0, f"{missing} chunks lost their {serving} vectors"
        return int(
            conn.execute("SELECT COUNT(*) FROM vec_items WHERE model = ?", (target,)).fetchone()[0]
            if target
            else 0
        )
    finally:
        conn.close()


def test_kill_nine_during_a_model_switch(tmp_path: Path) -> None:
    """Killed while re-embedding with a new model: old vectors keep serving, nothing is redone."""
    from rel_support import EmbeddingStub

    from leo_lsp.embeddings.local import MODEL_ID

    rng = random.Random(SEED + 1)
    ws = tmp_path / "repo"
    copy_stdlib(ws, FILES)
    data = tmp_path / "data"
    assert run_index(ws, data).wait(600) == 0  # the embedded model's index
    stub = EmbeddingStub(dim=64)
    stub.delay = 0.1  # a slow server, so kills land mid-switch
    env = {
        **os.environ,
        "LEO_EMBEDDING_PROVIDER": "openai",
        "LEO_EMBEDDING_URL": stub.url,
        "LEO_EMBEDDING_MODEL": "stub-embed",
        "LEO_EMBEDDING_BATCH_SIZE": "8",
        "LEO_EMBEDDING_MAX_CONCURRENCY": "1",
    }
    target = "openai:stub-embed"
    kills = 0
    saved = 0
    try:
        while kills < 4:
            proc = subprocess.Popen(
                [sys.executable, "-m", "leo_lsp", "--data-dir", str(data), "index", str(ws)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            goal = saved + rng.randint(8, 60)
            sql = "SELECT COUNT(*) FROM vec_items WHERE model = ?"
            while proc.poll() is None and poll(data, sql, (target,)) < goal:
                time.sleep(0.005)  # polling interval of the kill trigger, not synchronisation
            seen = poll(data, sql, (target,))
            if proc.poll() is not None:
                break  # the switch finished before this kill: the loop below checks the end
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(60) == -signal.SIGKILL
            kills += 1
            after = check_switch(data, MODEL_ID, target)
            assert after >= seen, "committed vectors of the new model were lost"
            saved = after
        assert kills >= 2, f"only {kills} kills landed mid-switch"
        proc = subprocess.Popen(
            [sys.executable, "-m", "leo_lsp", "--data-dir", str(data), "index", str(ws)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert proc.wait(600) == 0
        check_switch(data, target, None)
        db = db_path(data)
        assert db is not None
        conn, _ = connect(db)
        try:
            old = conn.execute("SELECT COUNT(*) FROM vec_items WHERE model = ?", (MODEL_ID,))
            assert old.fetchone()[0] == 0, "the old model's vectors were not dropped"
            texts = conn.execute(
                "SELECT COUNT(DISTINCT hash) + (SELECT COUNT(DISTINCT name_hash) FROM chunks "
                "WHERE name_hash != '') FROM chunks"
            ).fetchone()[0]
        finally:
            conn.close()
        # Nothing stored was embedded again: at most the batches in flight at each kill (and the
        # dimension probe) were repeated.
        assert texts <= stub.texts <= texts + kills * 8 + 4, (texts, stub.texts)
    finally:
        stub.close()
