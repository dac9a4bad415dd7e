"""Security of a running leo: loopback TCP, nothing read outside the workspace, no secret at rest.

Secrets are seeded in a .py file and a .env file of the workspace; a whole session (crawl, open
buffer, search and struggle report quoting the token) runs with --log-file at debug level. Neither
the log nor any byte of the data dir (databases and their WAL files) may hold a raw secret.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from rel_support import SMALL_STDLIB, EmbeddingStub, RawLsp, copy_stdlib, free_port  # noqa: E402

AWS_KEY_ID = "AKIAQ3EGRTLZJH6W2XPN"
AWS_SECRET = "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"
GITHUB_TOKEN = "ghp_R4nd0mT0k3nV4lu3Xq9Lm2WdZp8Yt6Hs1Jk3"
PRIVATE_KEY_BODY = "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw"
SECRETS = [AWS_KEY_ID, AWS_SECRET, GITHUB_TOKEN, PRIVATE_KEY_BODY]

SECRET_PY = f'''\
"""Deployment helpers."""

AWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"
AWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"
GITHUB_TOKEN = "{GITHUB_TOKEN}"
DEPLOY_KEY = """-----BEGIN RSA PRIVATE KEY-----
{PRIVATE_KEY_BODY}
-----END RSA PRIVATE KEY-----"""


def deploy_release(bucket_name):
    """Upload the release archive to the bucket."""
    return f"s3://{{bucket_name}}/release.tar.gz"


def release_notes(version, changes):
    """Format release notes for a version."""
    lines = [f"Release {{version}}", ""]
    for change in changes:
        lines.append(f"- {{change}}")
    return "\\n".join(lines)


class Deployer:
    """Runs a deployment step by step."""

    def __init__(self, region):
        self.region = region
        self.steps = []

    def add_step(self, name, action):
        self.steps.append((name, action))

    def run(self):
        results = []
        for name, action in self.steps:
            results.append((name, action(self.region)))
        return results
'''


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net shows them) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            addr, hexport = parts[1].split(":")
            if int(hexport, 16) == port and parts[3] == "0A":  # 0A = LISTEN
                found.add(addr)
    return found


def test_tcp_mode_binds_loopback_by_default(tmp_path: Path) -> None:
    for spec in (":{port}", "{port}"):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "leo_lsp", "--tcp", spec.format(port=port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "LEO_DATA_DIR": str(tmp_path / "data")},
        )
        try:
            deadline = time.monotonic() + 60
            addrs: set[str] = set()
            while not addrs and time.monotonic() < deadline and proc.poll() is None:
                addrs = listening_addresses(port)
                time.sleep(0.05)  # readiness poll of the listening socket
            assert addrs, f"leo-lsp --tcp {spec} never listened"
            assert addrs == {"0100007F"}, f"bound to {addrs}, expected 127.0.0.1 only"
        finally:
            proc.kill()
            proc.wait(30)


def test_commands_never_read_outside_the_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    copy_stdlib(ws, SMALL_STDLIB[:2])
    outside = tmp_path / "outside_secret_notes.py"
    outside.write_text("def outside_marker_91c2():\n    return 'OUTSIDE_CONTENT_91c2'\n")
    (ws / "lib" / "link_out.py").symlink_to(outside)
    data = tmp_path / "data"
    stub = EmbeddingStub()
    lsp = RawLsp(data, log_file=tmp_path / "server.log")
    try:
        lsp.initialize(ws, {"dataDir": str(data), **stub.options()})
        lsp.result("leo.indexWorkspace")
        projects_before = sorted(p.name for p in (data / "projects").iterdir())
        for uri in (
            outside.as_uri(),
            f"{ws.as_uri()}/../{outside.name}",
            f"{ws.as_uri()}/lib/%2e%2e/%2e%2e/{outside.name}",
            (ws / "lib" / "link_out.py").as_uri(),  # a symlink inside pointing outside
            "file:///etc/passwd",
        ):
            resp = lsp.command("leo.indexFile", {"uri": uri})
            assert "error" in resp, (uri, resp)
            assert "outside" in resp["error"]["message"], resp
        decisions = lsp.command("leo.gatekeeperDecisions", {"uri": outside.as_uri()})
        assert decisions.get("result") in ([], None) or "error" in decisions
        hits = lsp.result("leo.search", {"query": "outside_marker_91c2", "mode": "lexical"})
        for r in hits["results"]:
            assert r["uri"].startswith(ws.as_uri() + "/") and "91c2" not in r["snippet"], r
        assert sorted(p.name for p in (data / "projects").iterdir()) == projects_before
        for f in data.rglob("*"):
            if f.is_file():
                assert b"OUTSIDE_CONTENT_91c2" not in f.read_bytes(), f
    finally:
        lsp.shutdown()
        stub.close()


def test_no_secret_in_logs_or_databases_and_data_dir_is_private(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    copy_stdlib(ws, SMALL_STDLIB[:2])
    (ws / "deploy.py").write_text(SECRET_PY)
    (ws / ".env").write_text(
        f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\n"
        f"GITHUB_TOKEN={GITHUB_TOKEN}\n"
    )
    data = tmp_path / "leo-data"
    log = tmp_path / "logs" / "leo.jsonl"
    stub = EmbeddingStub()
    lsp = RawLsp(data, log_file=log, extra_args=["-vv"])
    try:
        lsp.initialize(ws, {"dataDir": str(data), **stub.options()})
        report = lsp.result("leo.indexWorkspace")
        assert report["denied"] >= 1  # the .env file
        uri = (ws / "deploy.py").as_uri()
        lsp.send(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": SECRET_PY}},
            msg_id=False,
        )
        lsp.wait_notification("leo/indexed", lambda p: p.get("uri") == uri)
        lsp.result("leo.search", {"query": f"where is {GITHUB_TOKEN} used"})
        lsp.command(
            "leo.reportStruggle",
            {"errorMessage": f"403 Forbidden: bad credentials {GITHUB_TOKEN} for {AWS_KEY_ID}"},
        )
        lsp.command("leo.indexFile", {"uri": (ws / ".env").as_uri()})
        found = lsp.result("leo.search", {"query": "deploy_release bucket", "mode": "lexical"})
        assert any("deploy.py" in r["uri"] for r in found["results"]), found
        redacted = lsp.result("leo.search", {"query": "AWS_SECRET_ACCESS_KEY", "mode": "lexical"})
        assert redacted["results"], "the file is indexed, only its secret values are redacted"
        for r in redacted["results"]:
            assert not any(s in r["snippet"] for s in SECRETS), r["snippet"]
    finally:
        lsp.shutdown()
        stub.close()
    assert log.stat().st_size > 0
    log_text = log.read_text(errors="replace") + lsp.tail(10**7)
    leaked = [s for s in SECRETS if s in log_text]
    assert not leaked, f"secrets in the log: {leaked}"
    for f in data.rglob("*"):
        if f.is_file():
            raw = f.read_bytes()
            leaked = [s for s in SECRETS if s.encode() in raw]
            assert not leaked, f"secrets in {f}: {leaked}"
    for d in [data, *[p for p in data.rglob("*") if p.is_dir()]]:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, f"{d} is {oct(d.stat().st_mode)}"
