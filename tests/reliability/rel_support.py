"""Shared pieces of the reliability tests: a raw-bytes LSP client, a stub embedding server, repos.

The client speaks JSON-RPC framing itself (no pygls on the client side) so tests can send bytes no
well-behaved client would: broken headers, invalid UTF-8, wrong types, unknown methods.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PYLIB = Path(os.__file__).parent


class ServerDied(AssertionError):
    """The server process exited while a test was waiting on it."""


class RawLsp:
    """A leo-lsp subprocess over stdio, driven with hand-made frames."""

    def __init__(
        self,
        data_dir: Path,
        *,
        log_file: Path | None = None,
        env: dict[str, str] | None = None,
        extra_args: Iterable[str] = (),
    ) -> None:
        cmd = [sys.executable, "-m", "leo_lsp"]
        if log_file is not None:
            cmd += ["--log-file", str(log_file)]
        cmd += list(extra_args)
        full_env = {**os.environ, **(env or {})}
        full_env.setdefault("LEO_DATA_DIR", str(data_dir))
        self.stderr_path = data_dir.parent / f"stderr-{os.getpid()}-{id(self)}.txt"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=full_env,
        )
        self._next_id = 1_000_000
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.responses: dict[Any, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.null_errors: list[dict[str, Any]] = []  # answers to requests without a usable id
        self.garbage: list[bytes] = []  # frames from the server that were not valid JSON
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # -- wire ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write raw bytes to the server's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    @staticmethod
    def frame(body: bytes | str | dict[str, Any]) -> bytes:
        """A well-framed message around any body."""
        if isinstance(body, dict):
            body = json.dumps(body)
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        return b"Content-Length: %d\r\n\r\n" % len(raw) + raw

    def _read_loop(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self._cond:
                        self._cond.notify_all()
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii", "replace").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                continue
            body = out.read(length)
            try:
                msg = json.loads(body)
            except ValueError:
                with self._cond:
                    self.garbage.append(body)
                continue
            if "method" in msg and "id" in msg:
                # A request from the server (progress tokens, configuration): answer it.
                self.write(self.frame({"jsonrpc": "2.0", "id": msg["id"], "result": None}))
                continue
            with self._cond:
                if "method" in msg:
                    self.notifications.append(msg)
                elif msg.get("id") is None:
                    self.null_errors.append(msg)
                else:
                    self.responses[json.dumps(msg.get("id"))] = msg
                self._cond.notify_all()

    # -- requests --------------------------------------------------------------------------

    def new_id(self) -> int:
        """A fresh request id."""
        with self._lock:
            self._next_id += 1
            return self._next_id

    def send(self, method: str, params: Any = None, *, msg_id: Any = None) -> Any:
        """Send a request (returns its id) or, with msg_id=False, a notification."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        if msg_id is not False:
            msg["id"] = self.new_id() if msg_id is None else msg_id
        self.write(self.frame(msg))
        return msg.get("id")

    def wait_response(self, msg_id: Any, timeout: float = 60) -> dict[str, Any]:
        """The response to `msg_id`; fails if the server dies or the timeout passes."""
        key = json.dumps(msg_id)
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self.responses:
                if self.proc.poll() is not None:
                    raise ServerDied(f"server exited with {self.proc.returncode}: {self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no response to {msg_id} in {timeout} s")
                self._cond.wait(min(left, 0.5))
            return self.responses.pop(key)

    def wait_notification(
        self, method: str, pred: Callable[[dict[str, Any]], bool] = lambda _p: True, timeout=60.0
    ) -> dict[str, Any]:
        """The first notification `method` whose params satisfy `pred` (consumed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, n in enumerate(self.notifications):
                    if n["method"] == method and pred(n.get("params") or {}):
                        return self.notifications.pop(i)
                if self.proc.poll() is not None:
                    raise ServerDied(f"server exited with {self.proc.returncode}: {self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {method} notification in {timeout} s")
                self._cond.wait(min(left, 0.5))

    def request(self, method: str, params: Any = None, timeout: float = 60) -> dict[str, Any]:
        """Send a request and wait for its response message."""
        return self.wait_response(self.send(method, params), timeout)

    def command(self, name: str, args: Any = None, timeout: float = 120) -> dict[str, Any]:
        """workspace/executeCommand with one argument object; the whole response message."""
        return self.request(
            "workspace/executeCommand",
            {"command": name, "arguments": [args if args is not None else {}]},
            timeout,
        )

    def result(self, name: str, args: Any = None, timeout: float = 120) -> Any:
        """A command's result; fails on an error response."""
        resp = self.command(name, args, timeout)
        assert "error" not in resp, resp
        return resp["result"]

    def initialize(
        self, workspace: Path | None, options: dict[str, Any] | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        """initialize + initialized with one workspace folder."""
        params: dict[str, Any] = {
            "processId": os.getpid(),
            "capabilities": {},
            "initializationOptions": options or {},
        }
        if workspace is not None:
            params["rootUri"] = workspace.as_uri()
            params["workspaceFolders"] = [{"uri": workspace.as_uri(), "name": workspace.name}]
        resp = self.request("initialize", params, timeout)
        assert "result" in resp, resp
        self.send("initialized", {}, msg_id=False)
        return resp

    def shutdown(self, timeout: float = 30) -> None:
        """shutdown + exit, then wait for the process."""
        if self.proc.poll() is None:
            try:
                self.request("shutdown", None, timeout)
                self.send("exit", None, msg_id=False)
                self.proc.wait(timeout)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                pass
        self.close()

    def close(self) -> None:
        """Kill the process if it still runs and release pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._stderr.close()

    def tail(self, n: int = 3000) -> str:
        """The end of the server's stderr."""
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def messages(self, kind: str = "window/showMessage") -> list[str]:
        """Texts of the notifications of one kind received so far."""
        with self._lock:
            return [n["params"]["message"] for n in self.notifications if n["method"] == kind]


# -- a stub OpenAI-compatible embedding server ----------------------------------------------


def stub_vector(text: str, dim: int) -> list[float]:
    """A deterministic pseudo-embedding of `text`."""
    seed = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    out: list[float] = []
    counter = 0
    while len(out) < dim:
        block = hashlib.sha256(seed + struct.pack("<I", counter)).digest()
        out.extend((b - 127.5) / 127.5 for b in block)
        counter += 1
    return out[:dim]


class EmbeddingStub:
    """A loopback HTTP server answering /v1/embeddings; `fail` makes every request an HTTP 500."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.fail = False
        self.delay = 0.0  # seconds each embedding request takes (a slow server)
        self.requests = 0
        self.texts = 0  # inputs embedded, over all requests
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": "stub-embed", "object": "model"}]})

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                stub.requests += 1
                if stub.delay:
                    time.sleep(stub.delay)  # a slow server, not synchronisation
                if stub.fail:
                    self._send(500, {"error": {"message": "stub embedder is down"}})
                    return
                inputs = body.get("input")
                inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
                stub.texts += len(inputs)
                data = [
                    {"object": "embedding", "index": i, "embedding": stub_vector(t, stub.dim)}
                    for i, t in enumerate(inputs)
                ]
                self._send(200, {"object": "list", "data": data, "model": body.get("model")})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def options(self, **extra: Any) -> dict[str, Any]:
        """initializationOptions pointing leo's embedding at this stub."""
        return {
            "embedding": {
                "provider": "openai",
                "url": self.url,
                "model": "stub-embed",
                "timeoutSeconds": 5,
                **extra,
            }
        }

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- repositories ----------------------------------------------------------------------------

SMALL_STDLIB = [
    "json/__init__.py",
    "json/decoder.py",
    "json/encoder.py",
    "json/scanner.py",
    "json/tool.py",
    "bisect.py",
    "colorsys.py",
    "keyword.py",
    "stat.py",
    "fnmatch.py",
    "glob.py",
    "shlex.py",
    "textwrap.py",
    "graphlib.py",
    "heapq.py",
    "numbers.py",
    "reprlib.py",
    "sched.py",
    "this.py",
    "tty.py",
    "uu.py",
    "quopri.py",
    "getopt.py",
    "queue.py",
]


def copy_stdlib(dest: Path, files: Iterable[str] = SMALL_STDLIB) -> list[Path]:
    """Copy stdlib files (a real repository's worth of real code) under `dest`."""
    out = []
    for rel in files:
        src = PYLIB / rel
        if not src.is_file():
            continue
        target = dest / "lib" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        out.append(target)
    return out


def db_files(data_dir: Path) -> list[Path]:
    """Every sqlite database under a data dir."""
    return sorted(p for p in data_dir.rglob("*.sqlite3") if p.is_file())
