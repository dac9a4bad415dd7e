"""A real local HTTP server speaking the OpenAI wire format, for tests (loopback only).

It answers `GET /v1/models`, `POST /v1/embeddings` and `POST /v1/chat/completions` with sensible
defaults, and every route can be replaced (`route`) or given scripted replies that are used first,
in order (`script`): HTTP errors, `Retry-After`, garbage or truncated bodies, slow answers, dropped
connections. Every request is logged (`requests`) and the stub counts requests in flight
(`max_in_flight`), so a test can check a client's concurrency bound.

    with OpenAIStub(embedding_dim=8) as stub:
        stub.script("POST", "/v1/embeddings", Reply(status=500), Reply(status=429,
                    headers={"Retry-After": "0"}))
        client = OpenAICompatClient(stub.url)   # stub.url == "http://127.0.0.1:PORT/v1"
        ...
        assert len(stub.requests_to("/v1/embeddings")) == 3

Replies are produced on the server's own threads; handlers must be thread-safe (the defaults are).
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_DECISION = {"decision": "allow", "category": "source", "reason": "ordinary source code"}

# llama.cpp's server answers this (HTTP 500) to `response_format: {"type": "json_schema"}`.
LLAMA_CPP_JSON_SCHEMA_ERROR = {
    "error": {
        "code": 500,
        "message": 'response_format type must be one of "text" or "json_object", '
        "but got: json_schema",
        "type": "server_error",
    }
}


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    json: Any = None
    """Serialised as the body (ignored when `body` is set)."""
    body: bytes | None = None
    """Raw body bytes: garbage, truncated JSON, …"""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (a slow or hung server); cut short when the stub stops."""
    drop: bool = False
    """Close the connection without answering."""
    wait_for_in_flight: int = 0
    """Hold the answer until this many requests are in flight at once (or `hold_timeout`)."""
    hold_timeout: float = 5.0


@dataclass
class StubRequest:
    """A request as the stub received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


Handler = Callable[[StubRequest], Reply]


def free_port() -> int:
    """A loopback port nothing listens on (for connection-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def fake_vector(text: str, dim: int) -> list[float]:
    """A deterministic, unnormalised vector for `text` (not semantic; stable across runs)."""
    out: list[float] = []
    counter = 0
    while len(out) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for (value,) in struct.iter_unpack(">i", digest):
            out.append(value / 2**31 * 3.0)
        counter += 1
    vec = out[:dim]
    if all(v == 0 for v in vec):  # pragma: no cover - astronomically unlikely
        vec[0] = 1.0
    return vec


def chat_completion(content: str, model: str = "stub-chat") -> dict[str, Any]:
    """A `/v1/chat/completions` response body carrying `content`."""
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class OpenAIStub:
    """A threaded HTTP server on 127.0.0.1 with OpenAI-compatible default routes."""

    def __init__(
        self,
        *,
        models: tuple[str, ...] = ("stub-embed", "stub-chat"),
        embedding_dim: int = 8,
        embedding_dims: dict[str, int] | None = None,
        chat_content: str | Callable[[StubRequest], str] | None = None,
        reject_json_schema: bool = False,
    ) -> None:
        self.models = list(models)
        self.embedding_dim = embedding_dim
        """Dimension of vectors for models not in `embedding_dims` (mutable mid-test)."""
        self.embedding_dims = dict(embedding_dims or {})
        self.chat_content: str | Callable[[StubRequest], str] = (
            chat_content if chat_content is not None else json.dumps(DEFAULT_DECISION)
        )
        self.reject_json_schema = reject_json_schema
        """Mimic llama.cpp's server: HTTP 500 for `response_format.type == "json_schema"`."""
        self.requests: list[StubRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._in_flight_changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", "/v1/models"): self.default_models,
            ("POST", "/v1/embeddings"): self.default_embeddings,
            ("POST", "/v1/chat/completions"): self.default_chat,
        }
        self._scripts: dict[tuple[str, str], deque[Reply]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration ------------------------------------------------------------------------

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Answer `method path` with `handler` (replaces the default)."""
        with self._lock:
            self._routes[(method.upper(), path)] = handler

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Queue replies for `method path`, used in order before the route's handler."""
        with self._lock:
            self._scripts.setdefault((method.upper(), path), deque()).extend(replies)

    def requests_to(self, path: str, method: str | None = None) -> list[StubRequest]:
        """Logged requests for one path (optionally one method)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path == path and (method is None or r.method == method.upper())
            ]

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def base(self) -> str:
        """`http://127.0.0.1:PORT` (no `/v1`)."""
        assert self._server is not None, "start() the stub first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL, `http://127.0.0.1:PORT/v1`."""
        return f"{self.base}/v1"

    def start(self) -> OpenAIStub:
        """Bind a free loopback port and serve on a background thread."""
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def do_GET(self) -> None:
                stub._handle(self)

            def do_POST(self) -> None:
                stub._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes any held or delayed replies."""
        self._stopping.set()
        with self._lock:
            self._in_flight_changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- default routes -----------------------------------------------------------------------

    def default_models(self, request: StubRequest) -> Reply:
        """Lists `models`."""
        return Reply(
            json={
                "object": "list",
                "data": [{"id": m, "object": "model", "owned_by": "stub"} for m in self.models],
            }
        )

    def default_embeddings(self, request: StubRequest) -> Reply:
        """Deterministic `fake_vector`s of `embedding_dims[model]` or `embedding_dim` dimensions."""
        payload = request.json if isinstance(request.json, dict) else {}
        inputs = payload.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return Reply(status=400, json={"error": {"message": "input must be a list of strings"}})
        model = str(payload.get("model", ""))
        dim = self.embedding_dims.get(model, self.embedding_dim)
        return Reply(
            json={
                "object": "list",
                "model": model,
                "data": [
                    {"object": "embedding", "index": i, "embedding": fake_vector(t, dim)}
                    for i, t in enumerate(inputs)
                ],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
            }
        )

    def default_chat(self, request: StubRequest) -> Reply:
        """Answers `chat_content` (llama.cpp's json_schema error if `reject_json_schema`)."""
        payload = request.json if isinstance(request.json, dict) else {}
        fmt = payload.get("response_format")
        if self.reject_json_schema and isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return Reply(status=500, json=LLAMA_CPP_JSON_SCHEMA_ERROR)
        content = self.chat_content
        text = content(request) if callable(content) else content
        return Reply(json=chat_completion(text, str(payload.get("model", "stub-chat"))))

    # -- the server side ----------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        path = h.path.split("?", 1)[0]
        request = StubRequest(
            method=h.command,
            path=path,
            headers={k.lower(): v for k, v in h.headers.items()},
            body=raw,
            json=parsed,
        )
        key = (h.command, path)
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._in_flight_changed.notify_all()
            queue = self._scripts.get(key)
            scripted = queue.popleft() if queue else None
            handler = self._routes.get(key)
        done = False

        def answered() -> None:
            # Counted out *before* the first byte leaves, so a client that reads the answer and
            # sends its next request is never seen as one request too many in flight.
            nonlocal done
            if not done:
                done = True
                with self._lock:
                    self.in_flight -= 1
                    self._in_flight_changed.notify_all()

        try:
            if scripted is not None:
                reply = scripted
            elif handler is not None:
                reply = handler(request)
            else:
                reply = Reply(
                    status=404, json={"error": {"message": f"no route {h.command} {path}"}}
                )
            self._hold(reply)
            self._send(h, reply, answered)
        finally:
            answered()

    def _hold(self, reply: Reply) -> None:
        if reply.wait_for_in_flight:
            with self._lock:
                self._in_flight_changed.wait_for(
                    lambda: self.in_flight >= reply.wait_for_in_flight or self._stopping.is_set(),
                    timeout=reply.hold_timeout,
                )
        if reply.delay:
            self._stopping.wait(reply.delay)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, reply: Reply, answered: Callable[[], None]) -> None:
        answered()
        if reply.drop:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if reply.body is not None:
            body = reply.body
        elif reply.json is not None:
            body = json.dumps(reply.json, allow_nan=False).encode()
        else:
            body = b""
        try:
            h.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for name, value in headers.items():
                h.send_header(name, value)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed the socket
            h.close_connection = True


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two plain vectors (for assertions)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
