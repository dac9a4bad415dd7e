"""Test helpers for tests/unit/cloud: a local Google stand-in (certs, OAuth, identitytoolkit),
token minting with a real RSA key, a recording sink, and the two Firebase emulators."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from leo_lsp.cloud.firestore_sink import TransientSinkError
from leo_lsp.cloud.outbox import OutboxEvent

EMULATORS_DIR = Path(__file__).parent / ".emulators"
PROJECT = "demo-leo"


# -- keys and tokens ---------------------------------------------------------------------------


class SigningKey:
    """An RSA key with a self-signed certificate, as Google publishes for ID tokens."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex[:16]
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.local")])
        now = dt.datetime.now(dt.UTC)
        self.cert_pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )
        self.private_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def mint(
        self,
        uid: str,
        *,
        project: str = PROJECT,
        audience: str | None = None,
        issued: float | None = None,
        lifetime: float = 3600,
        email: str | None = "dev@example.com",
        email_verified: bool = True,
        kid: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A Firebase-shaped ID token signed RS256 with this key."""
        iat = int(time.time() if issued is None else issued)
        claims: dict[str, Any] = {
            "iss": f"https://securetoken.google.com/{project}",
            "aud": audience or project,
            "sub": uid,
            "user_id": uid,
            "iat": iat,
            "auth_time": iat,
            "exp": int(iat + lifetime),
            "email": email,
            "email_verified": email_verified,
            "firebase": {"sign_in_provider": "password", "identities": {}},
            **(extra or {}),
        }
        return jwt.encode(
            claims, self.private_pem, algorithm="RS256", headers={"kid": kid or self.kid}
        )


def unsigned_token(claims: dict[str, Any], kid: str) -> str:
    """An `alg: none` token (what the Auth emulator issues; production must refuse it)."""
    return jwt.encode(claims, key="", algorithm="none", headers={"kid": kid})


# -- a local Google: certs, OAuth token endpoint, identitytoolkit accounts:lookup ----------------


class FakeGoogle:
    """Loopback HTTP server speaking the three endpoints verify_id_token(check_revoked) needs."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.users: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.offline = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append(
                    (self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                return body

            def do_GET(self) -> None:
                self._record()
                if outer.offline:
                    self._reply(503, {"error": "offline"})
                elif self.path == "/certs":
                    self._reply(200, {outer.key.kid: outer.key.cert_pem})
                else:
                    self._reply(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self._record()
                if self.path == "/token":
                    self._reply(
                        200,
                        {
                            "access_token": "local-access-token",
                            "expires_in": 3600,
                            "token_type": "Bearer",
                        },
                    )
                elif self.path == f"/v1/projects/{PROJECT}/accounts:lookup":
                    if self.headers.get("Authorization") != "Bearer local-access-token":
                        self._reply(
                            401,
                            {
                                "error": {
                                    "code": 401,
                                    "message": "UNAUTHENTICATED",
                                    "status": "UNAUTHENTICATED",
                                }
                            },
                        )
                        return
                    ids = json.loads(body).get("localId", [])
                    found = [outer.users[i] for i in ids if i in outer.users]
                    self._reply(
                        200,
                        {
                            "kind": "identitytoolkit#GetAccountInfoResponse",
                            **({"users": found} if found else {}),
                        },
                    )
                else:
                    self._reply(404, {"error": {"code": 404, "message": "NOT_FOUND"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_user(self, uid: str, *, disabled: bool = False, valid_since: int = 0) -> None:
        self.users[uid] = {
            "localId": uid,
            "email": f"{uid}@example.com",
            "emailVerified": True,
            "disabled": disabled,
            "validSince": str(valid_since),
        }

    def service_account(self, directory: Path) -> Path:
        """A service-account JSON whose OAuth token endpoint is this server."""
        path = directory / "service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": self.key.kid,
                    "private_key": self.key.private_pem,
                    "client_email": f"leo-test@{PROJECT}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"{self.base}/token",
                }
            )
        )
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- a sink that records calls ------------------------------------------------------------------


class RecordingSink:
    """A real in-memory sink: applies set/merge/delete to a dict of documents, counts writes;
    `offline = True` makes it raise like an unreachable Firestore."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.writes: dict[str, int] = {}
        self.calls = 0
        self.offline = False
        self.lock = threading.Lock()

    def write(self, events: Sequence[OutboxEvent]) -> None:
        with self.lock:
            self.calls += 1
            if self.offline:
                raise TransientSinkError("UNAVAILABLE: connection refused (test outage)")
            for ev in events:
                self.writes[ev.path] = self.writes.get(ev.path, 0) + 1
                if ev.op == "delete":
                    self.docs.pop(ev.path, None)
                elif ev.op == "merge":
                    self.docs[ev.path] = {**self.docs.get(ev.path, {}), **ev.payload}
                else:
                    self.docs[ev.path] = dict(ev.payload)


class StaticUser:
    """A UserSource with a fixed verified user (what Identity.user is after sign_in)."""

    def __init__(self, uid: str | None) -> None:
        from leo_lsp.cloud.firebase import VerifiedUser

        self.user = None if uid is None else VerifiedUser(uid, f"{uid}@example.com", True, {})
        self.error = None


# -- node tooling and emulators -----------------------------------------------------------------


def ensure_node_tooling() -> tuple[str, Path]:
    """node + the npm packages in .emulators (installed with `npm ci` on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail(
            "tests/unit/cloud need Node.js ≥ 20 with npm on PATH (Firebase Auth emulator from "
            "firebase-tools, @firestore-emulator/server); install Node.js and re-run",
            pytrace=False,
        )
    firebase = EMULATORS_DIR / "node_modules" / ".bin" / "firebase"
    server = EMULATORS_DIR / "node_modules" / "@firestore-emulator" / "server"
    if not firebase.exists() or not server.exists():
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=EMULATORS_DIR,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            pytest.fail(f"npm ci in {EMULATORS_DIR} failed:\n{proc.stderr[-3000:]}", pytrace=False)
    return node, firebase


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FirestoreEmulator:
    """@firestore-emulator/server on 127.0.0.1 with an outage switch and write counters."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen(
            [node, str(Path(__file__).parent / "firestore_emulator.cjs"), "0"],
            cwd=EMULATORS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = 0
        self._lock = threading.Lock()

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            pytest.fail(f"Firestore emulator did not start: {line!r}", pytrace=False)
        self.port = int(line.split()[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self, cmd: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
            return self.proc.stdout.readline().strip()

    def stats(self) -> dict[str, Any]:
        reply = self.command("stats")
        assert reply.startswith("STATS "), reply
        result: dict[str, Any] = json.loads(reply[6:])
        return result

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class AuthEmulator:
    """`firebase emulators:start --only auth --project demo-leo` on loopback ports of its own."""

    def __init__(self, firebase: Path, workdir: Path) -> None:
        self.port = free_port()
        config = {
            "emulators": {
                "auth": {"host": "127.0.0.1", "port": self.port},
                "hub": {"host": "127.0.0.1", "port": free_port()},
                "logging": {"host": "127.0.0.1", "port": free_port()},
                "ui": {"enabled": False},
                "singleProjectMode": True,
            }
        }
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "firebase.json").write_text(json.dumps(config))
        env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "FIREBASE_CLI_EXPERIMENTS": "", "CI": "1"}
        env.pop("FIREBASE_AUTH_EMULATOR_HOST", None)
        self.proc = subprocess.Popen(
            [str(firebase), "emulators:start", "--only", "auth", "--project", PROJECT],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: teardown ends node and its children
        )
        self.output: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if "All emulators ready" in line:
                self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout: float = 90) -> None:
        if not self.ready.wait(timeout) or self.proc.poll() is not None:
            pytest.fail(
                "Auth emulator did not start:\n" + "".join(self.output[-40:]), pytrace=False
            )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
