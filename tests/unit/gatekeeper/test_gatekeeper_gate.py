"""Gatekeeper.decide: rules, scanner, cache, audit, and the LLM path against a real local server."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "embeddings"))
from openai_stub import (  # type: ignore[import-not-found]  # noqa: E402
    OpenAIStub,
    Reply,
    StubRequest,
    free_port,
)

from leo_lsp.errors import GatekeeperError, InvalidArguments  # noqa: E402
from leo_lsp.gatekeeper.gate import Gatekeeper, MemoryAuditLog, MemoryDecisionCache  # noqa: E402
from leo_lsp.gatekeeper.llm import LlmJudge, parse_verdict  # noqa: E402
from leo_lsp.openai_api import OpenAICompatClient  # noqa: E402
from leo_lsp.records import content_hash  # noqa: E402
from leo_lsp.settings import GatekeeperSettings, IndexSettings  # noqa: E402

PASSWORD = "Xk9#mP2$" + "vL8qR4wZ"
AWS_ID = "AKIA" + "Z3MSJV4WQ7PLX2RT"
CONFIG = (
    f"server:\n  port: 8080\n  host: example.org\ndatabase:\n  password: {PASSWORD}\n"
    + "".join(f"  option_{i}: {i}\n" for i in range(8))
)


def write(root: Path, rel: str, content: str) -> tuple[Path, bytes, str]:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    data = path.read_bytes()
    return path, data, content_hash(content)


def decision_json(decision: str, reason: str = "looks fine", category: str = "config") -> str:
    return json.dumps(
        {"decision": decision, "category": category, "reason": reason, "confidence": 0.9}
    )


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


@pytest.fixture
async def client(stub: OpenAIStub) -> AsyncIterator[OpenAICompatClient]:
    c = OpenAICompatClient(stub.url, max_retries=0)
    yield c
    await c.aclose()


def llm_gate(
    root: Path, client: OpenAICompatClient, *, on_llm_error: str = "rules", timeout: float = 5.0
) -> Gatekeeper:
    settings = GatekeeperSettings(mode="llm", on_llm_error=on_llm_error, timeout_seconds=timeout)
    return Gatekeeper(root, settings, IndexSettings(), judge=LlmJudge(client, "stub-chat"))


# -- rules mode -------------------------------------------------------------------------------


async def test_rules_mode_allows_source_and_counts_redactions(tmp_path: Path) -> None:
    gate = Gatekeeper(tmp_path, GatekeeperSettings(mode="rules"), IndexSettings())
    plain = await gate.decide(*write(tmp_path, "src/app.py", "def f():\n    return 1\n"))
    assert (plain.allowed, plain.source, plain.redactions) == (True, "rules", 0)
    module = "import boto3\n\n" + "".join(f"X{i} = {i}\n" for i in range(10))
    with_secret = await gate.decide(*write(tmp_path, "src/aws.py", module + f"K = '{AWS_ID}'\n"))
    assert (with_secret.allowed, with_secret.redactions) == (True, 1)
    assert "1 secret redacted" in with_secret.reason
    assert gate.redact(f"K = '{AWS_ID}'")[0] == "K = '«redacted:aws_access_key_id»'"


async def test_rules_mode_denies_hard_rules_and_mostly_secret_files(tmp_path: Path) -> None:
    gate = Gatekeeper(tmp_path, GatekeeperSettings(mode="rules"), IndexSettings())
    env = await gate.decide(*write(tmp_path, ".env", f"DB_PASSWORD={PASSWORD}\n"))
    assert (env.allowed, env.source) == (False, "rules")
    assert ".env" in env.reason
    keys = f"AWS_ACCESS_KEY_ID = '{AWS_ID}'\nDB_PASSWORD = '{PASSWORD}'\nDEBUG = 1\n"
    mostly = await gate.decide(*write(tmp_path, "settings_local.py", keys))
    assert not mostly.allowed and "mostly secrets" in mostly.reason
    doubtful = await gate.decide(*write(tmp_path, "config.yaml", CONFIG))
    assert (doubtful.allowed, doubtful.source, doubtful.redactions) == (True, "rules", 1)


async def test_off_mode_keeps_hard_denies_only(tmp_path: Path) -> None:
    gate = Gatekeeper(tmp_path, GatekeeperSettings(mode="off"), IndexSettings())
    assert not (await gate.decide(*write(tmp_path, "id_rsa", "key\n"))).allowed
    mostly = await gate.decide(*write(tmp_path, "keys.py", f"K = '{AWS_ID}'\n"))
    assert mostly.allowed and mostly.redactions == 1
    assert gate.judge is None and gate.state()["llm"] == "disabled"


# -- cache and audit --------------------------------------------------------------------------


async def test_cache_hit_returns_source_cache_and_audit_records_everything(
    tmp_path: Path,
) -> None:
    cache, audit = MemoryDecisionCache(), MemoryAuditLog()
    gate = Gatekeeper(
        tmp_path, GatekeeperSettings(mode="rules"), IndexSettings(), cache=cache, audit=audit
    )
    args = write(tmp_path, "src/app.py", "print('hi')\n")
    first = await gate.decide(*args)
    second = await gate.decide(*args)
    assert (first.source, second.source) == ("rules", "cache")
    assert second.allowed and second.reason == first.reason
    assert cache.get(str(args[0]), gate.cache_key(args[2])) == first
    assert [d.source for _, d in audit.rows] == ["rules", "cache"]
    # a new content hash is decided afresh
    changed = write(tmp_path, "src/app.py", "print('bye')\n")
    assert (await gate.decide(*changed)).source == "rules"
    assert gate.state()["decisions"] == {"rules": 2, "cache": 1}


async def test_hard_denies_are_never_served_from_the_cache(tmp_path: Path) -> None:
    gate = Gatekeeper(tmp_path, GatekeeperSettings(mode="rules"), IndexSettings())
    args = write(tmp_path, "notes.py", "x = 1\n")
    assert (await gate.decide(*args)).allowed
    (tmp_path / ".gitignore").write_text("notes.py\n")
    gate.rules.invalidate("")
    again = await gate.decide(*args)
    assert (again.allowed, again.source) == (False, "rules")


async def test_policy_key_changes_with_the_policy(tmp_path: Path) -> None:
    a = Gatekeeper(tmp_path, GatekeeperSettings(mode="rules"), IndexSettings())
    b = Gatekeeper(tmp_path, GatekeeperSettings(mode="off"), IndexSettings())
    c = Gatekeeper(tmp_path, GatekeeperSettings(mode="rules"), IndexSettings(max_file_bytes=10))
    assert len({a.policy_key, b.policy_key, c.policy_key}) == 3
    assert a.cache_key("h") != b.cache_key("h")


# -- LLM path ---------------------------------------------------------------------------------


async def test_llm_allow_sees_only_a_redacted_excerpt(
    tmp_path: Path, stub: OpenAIStub, client: OpenAICompatClient
) -> None:
    stub.chat_content = decision_json("allow", "ordinary service configuration")
    gate = llm_gate(tmp_path, client)
    d = await gate.decide(*write(tmp_path, "deploy/config.yaml", CONFIG))
    assert (d.allowed, d.source, d.redactions) == (True, "llm", 1)
    assert "ordinary service configuration" in d.reason
    (request,) = stub.requests_to("/v1/chat/completions")
    body = request.json
    assert body["temperature"] == 0
    prompt = "\n".join(m["content"] for m in body["messages"])
    assert "path: deploy/config.yaml" in prompt  # relative, no home directory
    assert str(tmp_path) not in prompt
    assert PASSWORD not in request.body.decode()
    assert "«redacted:password»" in prompt
    assert gate.state()["llm"] == "reachable"
    # the LLM's decision is cached
    again = await gate.decide(*write(tmp_path, "deploy/config.yaml", CONFIG))
    assert again.source == "cache" and len(stub.requests_to("/v1/chat/completions")) == 1


async def test_llm_deny(tmp_path: Path, stub: OpenAIStub, client: OpenAICompatClient) -> None:
    stub.chat_content = decision_json("deny", "customer records", "data")
    gate = llm_gate(tmp_path, client)
    d = await gate.decide(*write(tmp_path, "export.csvx", "name,email\nann,a@b.c\n"))
    assert (d.allowed, d.source) == (False, "llm")
    assert "data: customer records" in d.reason


async def test_clear_source_files_never_reach_the_llm(
    tmp_path: Path, stub: OpenAIStub, client: OpenAICompatClient
) -> None:
    gate = llm_gate(tmp_path, client)
    d = await gate.decide(*write(tmp_path, "src/app.py", "def main():\n    pass\n"))
    assert (d.allowed, d.source) == (True, "rules")
    weak = await gate.decide(
        *write(tmp_path, "src/db.py", 'password = "hunter2abc"\n' * 1 + "x = 1\ny = 2\n")
    )
    assert weak.source == "llm"  # a weak scanner flag on source makes it doubtful
    assert len(stub.requests_to("/v1/chat/completions")) == 1


@pytest.mark.parametrize(
    "content",
    [
        "I think this file is fine.",
        '{"decision": "allow", "reason": "ok"',  # truncated JSON
        '{"decision": "maybe", "reason": "unsure"}',  # schema violation
        '{"decision": "allow"}',  # no reason
        '{"decision": "allow", "reason": "ok", "confidence": 7}',
    ],
)
async def test_llm_garbage_falls_back_to_rules(
    tmp_path: Path, stub: OpenAIStub, client: OpenAICompatClient, content: str
) -> None:
    stub.chat_content = content
    gate = llm_gate(tmp_path, client)
    d = await gate.decide(*write(tmp_path, "config.yaml", CONFIG))
    assert (d.allowed, d.source, d.redactions) == (True, "rules", 1)
    assert "LLM" in d.reason or "model" in d.reason
    assert gate.state()["lastError"]
    # a bad answer is about one file: the LLM is asked again, and the fallback was not cached
    await gate.decide(*write(tmp_path, "other.yaml", CONFIG))
    assert len(stub.requests_to("/v1/chat/completions")) == 2
    assert (await gate.decide(*write(tmp_path, "config.yaml", CONFIG))).source != "cache"


async def test_llm_http_500_falls_back(
    tmp_path: Path, stub: OpenAIStub, client: OpenAICompatClient
) -> None:
    stub.script("POST", "/v1/chat/completions", *[Reply(status=500, body=b"boom")] * 4)
    gate = llm_gate(tmp_path, client)
    d = await gate.decide(*write(tmp_path, "config.yaml", CONFIG))
    assert (d.allowed, d.source) == (True, "rules")
    assert "500" in d.reason


async def test_server_down_falls_back_fast_and_trips_the_breaker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leo_lsp.gatekeeper.gate")
    client = OpenAICompatClient(f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    gate = llm_gate(tmp_path, client)
    started = time.perf_counter()
    d = await gate.decide(*write(tmp_path, "config.yaml", CONFIG))
    assert time.perf_counter() - started < 2.0
    assert (d.allowed, d.source) == (True, "rules")
    assert "refused" in d.reason
    assert any("refused" in r.getMessage() for r in caplog.records)  # the reason is logged
    state = gate.state()
    assert state["llm"] == "unreachable" and "refused" in state["lastError"]
    second = await gate.decide(*write(tmp_path, "b.toml", CONFIG))
    assert "LLM unavailable" in second.reason  # not asked again until llm_retry_after passes
    assert not await gate.check_llm()
    await client.aclose()


async def test_slow_server_times_out_and_falls_back(
    tmp_path: Path, stub: OpenAIStub, client: OpenAICompatClient
) -> None:
    stub.script("POST", "/v1/chat/completions", Reply(delay=10.0, json={}))
    gate = llm_gate(tmp_path, client, timeout=0.3)
    started = time.perf_counter()
    d = await gate.decide(*write(tmp_path, "config.yaml", CONFIG))
    assert time.perf_counter() - started < 3.0
    assert (d.allowed, d.source) == (True, "rules")
    assert "did not answer within 0.3 s" in d.reason
    assert gate.state()["llm"] == "unreachable"


async def test_on_llm_error_deny(
    tmp_path: Path, stub: OpenAIStub, client: OpenAICompatClient
) -> None:
    stub.chat_content = "garbage"
    gate = llm_gate(tmp_path, client, on_llm_error="deny")
    d = await gate.decide(*write(tmp_path, "config.yaml", CONFIG))
    assert (d.allowed, d.source) == (False, "rules")
    assert "onLlmError=deny" in d.reason


async def test_json_schema_rejection_falls_back_to_json_object(
    tmp_path: Path, stub: OpenAIStub, client: OpenAICompatClient
) -> None:
    stub.reject_json_schema = True
    stub.chat_content = decision_json("allow")
    gate = llm_gate(tmp_path, client)
    d = await gate.decide(*write(tmp_path, "config.yaml", CONFIG))
    assert d.source == "llm"
    kinds = [r.json["response_format"]["type"] for r in stub.requests_to("/v1/chat/completions")]
    assert kinds == ["json_schema", "json_object"]


async def test_check_llm_and_evaluate_operation(
    tmp_path: Path, stub: OpenAIStub, client: OpenAICompatClient
) -> None:
    gate = llm_gate(tmp_path, client)
    assert await gate.check_llm()
    assert gate.state()["llm"] == "reachable"
    args = write(tmp_path, "src/app.py", "x = 1\n")
    sync = await gate.evaluate_operation("sync", *args, details={"target": "firebase"})
    assert sync.allowed and sync.reason.startswith("sync to firebase: ")
    index = await gate.evaluate_operation("index", *args)
    assert index.allowed
    with pytest.raises(InvalidArguments):
        await gate.evaluate_operation("delete", *args)


def test_parse_verdict() -> None:
    v = parse_verdict({"decision": "Redact", "reason": " has a\n token ", "category": "config"})
    assert (v.decision, v.allowed, v.reason, v.confidence) == ("redact", True, "has a token", None)
    bad: object
    for bad in (
        [],
        {"reason": "x"},
        {"decision": "allow", "reason": 3},
        {"decision": "deny", "reason": "x", "confidence": True},
    ):
        with pytest.raises(GatekeeperError):
            parse_verdict(bad)


async def test_stub_request_type_is_used() -> None:
    # guards the import of StubRequest used for typing callable chat content
    seen: list[str] = []

    def content(request: StubRequest) -> str:
        seen.append(request.path)
        return decision_json("allow")

    with OpenAIStub(chat_content=content) as server:
        client = OpenAICompatClient(server.url, max_retries=0)
        judge = LlmJudge(client, "stub-chat")
        verdict = await judge.judge("a.yaml", 10, "a: 1")
        await client.aclose()
    assert verdict.decision == "allow" and seen == ["/v1/chat/completions"]


async def test_large_files_are_scanned_off_the_event_loop(tmp_path: Path) -> None:
    gate = Gatekeeper(tmp_path, GatekeeperSettings(mode="rules"), IndexSettings())
    body = "".join(f"value_{i} = {i}\n" for i in range(30_000)) + f"K = '{AWS_ID}'\n"
    d = await gate.decide(*write(tmp_path, "big_module.py", body))
    assert (d.allowed, d.redactions) == (True, 1)
