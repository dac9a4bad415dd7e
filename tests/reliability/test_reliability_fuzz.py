"""Hostile JSON-RPC over stdio: every request is answered, the server lives, the index is intact.

A hypothesis fuzzer builds batches of raw frames (bad framing, invalid UTF-8, deep nesting, wrong
types, unknown methods and commands, huge strings, URIs outside the workspace, `../` traversal),
writes each batch to a live leo-lsp and waits for an answer to every request that carries a usable
id. Unidentifiable requests (unparseable bodies, ids of the wrong type) must each get an error with
id null. After 10,000+ messages the workspace's index must be exactly what it was.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from rel_support import SMALL_STDLIB, EmbeddingStub, RawLsp, copy_stdlib  # noqa: E402

MIN_MESSAGES = 10_000
BATCHES = 110
TIME_BUDGET_S = 150  # fail loudly rather than stall CI if the server slows to a crawl

LSP_METHODS = [
    "initialize",
    "textDocument/hover",
    "textDocument/completion",
    "textDocument/definition",
    "textDocument/documentSymbol",
    "textDocument/codeAction",
    "textDocument/diagnostic",
    "workspace/symbol",
    "workspace/executeCommand",
    "workspaceSymbol/resolve",
    "codeAction/resolve",
    "$/cancelRequest",
    "$/setTrace",
    "$/progress",
    "window/workDoneProgress/cancel",
    "workspace/didChangeConfiguration",
    "leo/observeDiagnostics",
    "textDocument/didChange",
    "textDocument/didClose",
    "textDocument/didSave",
    "workspace/didChangeWatchedFiles",
]
COMMANDS = [
    "leo.search",
    "leo.indexFile",
    "leo.health",
    "leo.projectStats",
    "leo.overview",
    "leo.gatekeeperDecisions",
    "leo.reportStruggle",
    "leo.struggles",
    "leo.profile.get",
    "leo.projects.list",
    "leo.projects.get",
    "leo.nope",
    "",
    "leo.",
]
ARG_FIELDS = [
    "query",
    "limit",
    "mode",
    "languages",
    "paths",
    "projectId",
    "uri",
    "force",
    "errorMessage",
    "range",
    "language",
    "name",
    "description",
    "__proto__",
]


@dataclass
class Batch:
    """Frames to write and what each must produce."""

    frames: list[bytes] = field(default_factory=list)
    ids: list[Any] = field(default_factory=list)  # requests that must be answered by id
    null_errors: int = 0  # requests that can only be answered with id null
    messages: int = 0


def hostile_uris(ws: Path) -> st.SearchStrategy[str]:
    """URIs outside the workspace, traversal out of it, and non-file schemes."""
    inside = ws.as_uri()
    return st.one_of(
        st.sampled_from(
            [
                "file:///etc/passwd",
                "file:///etc/shadow",
                f"{inside}/../../../../etc/passwd",
                f"{inside}/lib/../../outside.py",
                f"{inside}/%2e%2e/%2e%2e/etc/hosts",
                "file://remote-host/share/x.py",
                "file:///dev/zero",
                "file:///proc/self/environ",
                "untitled:Untitled-1",
                "git:/x.py?ref=HEAD",
                "http://127.0.0.1:1/x.py",
                "file:",
                "file://",
                "",
                "\x00",
                "file:///\udcff",
                f"{inside}/lib/json/decoder.py\x00.txt",
            ]
        ),
        st.text(max_size=40).map(lambda s: f"{inside}/../{s}"),
        st.text(max_size=40).map(lambda s: f"file:///{s}"),
    )


def json_values(ws: Path) -> st.SearchStrategy[Any]:
    """Any JSON value, biased toward what breaks servers."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
        hostile_uris(ws),
        st.sampled_from(["a" * 200_000, "\u202e" * 1000, "😀" * 5000, "%s%n" * 50]),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )


def deep(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


@st.composite
def batches(draw: st.DrawFn, ws: Path, id_source: Iterator[int]) -> Batch:
    """One batch of 80-110 hostile messages."""
    batch = Batch()
    values = json_values(ws)
    uris = hostile_uris(ws)
    n = draw(st.integers(min_value=80, max_value=110))
    for _ in range(n):
        kind = draw(
            st.sampled_from(
                ["request", "command", "command", "notification", "broken", "framing", "typed"]
            )
        )
        raw_id = next(id_source)
        msg_id: Any = raw_id if raw_id % 2 else f"fz-{raw_id}"
        batch.messages += 1
        if kind == "request":
            method = draw(st.one_of(st.sampled_from(LSP_METHODS), st.text(max_size=30)))
            msg: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
            if draw(st.booleans()):
                msg["params"] = draw(values)
            batch.frames.append(RawLsp.frame(json.dumps(msg)))
            batch.ids.append(msg_id)
        elif kind == "command":
            name = draw(st.one_of(st.sampled_from(COMMANDS), st.text(max_size=20)))
            args_obj = draw(
                st.dictionaries(st.sampled_from(ARG_FIELDS), st.one_of(values, uris), max_size=4)
            )
            arguments = draw(
                st.one_of(
                    st.just([args_obj]),
                    st.lists(values, max_size=3),
                    values,
                )
            )
            params = {"command": name, "arguments": arguments}
            msg = {"jsonrpc": "2.0", "id": msg_id, "method": "workspace/executeCommand"}
            msg["params"] = params
            batch.frames.append(RawLsp.frame(json.dumps(msg)))
            batch.ids.append(msg_id)
        elif kind == "notification":
            method = draw(st.sampled_from(LSP_METHODS[11:] + ["exit-not", "leo/x"]))
            params = draw(
                st.one_of(
                    values,
                    st.builds(
                        lambda u, v: {
                            "textDocument": {"uri": u, "version": v},
                            "contentChanges": v,
                        },
                        uris,
                        values,
                    ),
                    st.builds(lambda u: {"changes": [{"uri": u, "type": 3}]}, uris),
                )
            )
            body = {"jsonrpc": "2.0", "method": method, "params": params}
            batch.frames.append(RawLsp.frame(json.dumps(body)))
        elif kind == "typed":
            # Well-formed JSON whose envelope is wrong.
            variant = draw(st.integers(min_value=0, max_value=5))
            if variant == 0:  # id of a type JSON-RPC forbids → answered with id null
                bad_id = draw(
                    st.one_of(
                        st.lists(st.integers(), max_size=2),
                        st.booleans(),
                        st.floats(allow_nan=False),
                    )
                )
                body = {
                    "jsonrpc": "2.0",
                    "id": bad_id,
                    "method": "workspace/symbol",
                    "params": {"query": "x"},
                }
                batch.null_errors += 1
            elif variant == 1:  # wrong protocol version
                body = {
                    "jsonrpc": draw(st.sampled_from(["1.0", 2, None, "2.00"])),
                    "id": msg_id,
                    "method": "leo",
                }
                batch.ids.append(msg_id)
            elif variant == 2:  # no jsonrpc at all
                body = {"id": msg_id, "method": "workspace/symbol", "params": {"query": "q"}}
                batch.ids.append(msg_id)
            elif variant == 3:  # method of the wrong type
                body = {
                    "jsonrpc": "2.0",
                    "id": msg_id,
                    "method": draw(values.filter(lambda v: not isinstance(v, str))),
                }
                batch.ids.append(msg_id)
            elif variant == 4:  # params that are a scalar
                body = {
                    "jsonrpc": "2.0",
                    "id": msg_id,
                    "method": "workspace/symbol",
                    "params": draw(st.one_of(st.integers(), st.text(max_size=5))),
                }
                batch.ids.append(msg_id)
            else:  # a response nobody asked for
                body = {"jsonrpc": "2.0", "id": msg_id, "result": draw(values)}
            batch.frames.append(RawLsp.frame(json.dumps(body)))
        elif kind == "broken":
            # Bodies that are not a JSON object: each is a request nobody can identify.
            body_bytes = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=64).map(lambda b: b"\xff" + b),
                    st.just(b'{"jsonrpc":"2.0","id":1,"method":"x","params":"\xc3\x28"}'),
                    st.just(deep(draw(st.integers(min_value=2000, max_value=50_000))).encode()),
                    st.just(b"[" * 100_000),
                    st.sampled_from([b"[]", b"1", b'"x"', b"null", b"{", b"}", b"[{}]", b"NaN"]),
                )
            )
            batch.frames.append(RawLsp.frame(body_bytes))
            batch.null_errors += 1
        else:
            # Framing that cannot be read as a message, each followed by what resynchronises.
            body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "workspace/symbol"})
            variant = draw(st.integers(min_value=0, max_value=5))
            if variant == 0:
                frame = b"Content-Length: abc\r\n\r\n" + body.encode() + b"\r\n"
            elif variant == 1:
                frame = body.encode() + b"\r\n"  # no header at all
            elif variant == 2:
                frame = b"Content-Length: -5\r\n\r\n" + body.encode() + b"\r\n"
            elif variant == 3:  # declared longer than the body: padded with junk to the length
                frame = b"Content-Length: %d\r\n\r\n" % (len(body) + 40) + body.encode() + b"#" * 40
                batch.null_errors += 1
            elif variant == 4:  # declared shorter: the rest is read as a header line
                frame = b"Content-Length: 10\r\n\r\n" + body.encode() + b"\r\n\r\n"
                batch.null_errors += 1
            else:  # extra headers are fine: this one must be answered
                frame = (
                    b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
                    + b"Content-Length: %d\r\n\r\n" % len(body)
                    + body.encode()
                )
                batch.ids.append(msg_id)
            batch.frames.append(frame)
    return batch


def index_snapshot(data_dir: Path) -> dict[str, Any]:
    """Every project's files (path, hash, allowed) and chunk hashes, read straight from sqlite."""
    out: dict[str, Any] = {}
    for db in sorted(data_dir.glob("projects/*/index.sqlite3")):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            files = conn.execute(
                "SELECT path, content_hash, allowed FROM files ORDER BY path"
            ).fetchall()
            chunks = conn.execute(
                "SELECT f.path, c.ordinal, c.hash FROM chunks c JOIN files f ON f.id = c.file_id "
                "ORDER BY f.path, c.ordinal"
            ).fetchall()
        finally:
            conn.close()
        out[db.parent.name] = {"files": files, "chunks": chunks}
    return out


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawLsp, Path, Path]]:
    base = tmp_path_factory.mktemp("fuzz")
    ws = base / "ws"
    copy_stdlib(ws, SMALL_STDLIB[:8])
    (base / "outside.py").write_text("OUTSIDE_MARKER_7f3a = 1\n")
    data = base / "data"
    stub = EmbeddingStub()
    lsp = RawLsp(data, log_file=base / "server.log")
    lsp.initialize(ws, {"dataDir": str(data), **stub.options()})
    report = lsp.result("leo.indexWorkspace", {})
    assert report["files"] >= 8 and report["pending"] == 0, report
    yield lsp, ws, data
    lsp.shutdown()
    stub.close()


def test_fuzz_every_request_answered_server_alive_index_unchanged(
    live: tuple[RawLsp, Path, Path],
) -> None:
    lsp, ws, data = live
    before_stats = lsp.result("leo.projectStats")
    before = index_snapshot(data)
    counter = iter(range(1, 10**9))
    totals = {"messages": 0, "answered": 0, "null_errors": 0, "batches": 0}
    t0 = time.monotonic()

    @seed(20261126)
    @settings(
        max_examples=BATCHES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=batches(ws, counter))
    def run(batch: Batch) -> None:
        assert time.monotonic() - t0 < TIME_BUDGET_S, f"fuzzing exceeded {TIME_BUDGET_S} s"
        nulls_before = len(lsp.null_errors)
        lsp.write(b"".join(batch.frames))
        # A well-formed probe after the batch proves the stream is still in sync.
        probe = lsp.send("workspace/symbol", {"query": "decoder"})
        for msg_id in [*batch.ids, probe]:
            resp = lsp.wait_response(msg_id, timeout=60)
            assert ("result" in resp) != ("error" in resp), resp
            if "error" in resp:
                assert isinstance(resp["error"].get("code"), int), resp
                assert isinstance(resp["error"].get("message"), str), resp
        assert lsp.proc.poll() is None, lsp.tail()
        got_nulls = len(lsp.null_errors) - nulls_before
        assert got_nulls >= batch.null_errors, (got_nulls, batch.null_errors)
        totals["messages"] += batch.messages
        totals["answered"] += len(batch.ids)
        totals["null_errors"] += got_nulls
        totals["batches"] += 1

    run()
    print(f"fuzz: {totals} in {time.monotonic() - t0:.1f} s")
    assert totals["messages"] >= MIN_MESSAGES, totals
    assert not lsp.garbage, lsp.garbage[:3]  # every frame leo wrote was valid JSON

    # Alive and serving: the index is the one built before the fuzzing.
    assert lsp.result("leo.health")["status"] in ("ok", "degraded")
    after_stats = lsp.result("leo.projectStats")
    for key in ("files", "chunks", "languages", "denied", "pending"):
        assert after_stats[key] == before_stats[key], (key, before_stats, after_stats)
    after = index_snapshot(data)
    assert after == before
    # Nothing outside the workspace was read into any index.
    for db in data.rglob("*.sqlite3"):
        assert b"OUTSIDE_MARKER_7f3a" not in db.read_bytes()
