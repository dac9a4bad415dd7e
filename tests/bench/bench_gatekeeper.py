"""Gatekeeper cost on a real tree: scanner MB/s, decisions/s, and the LLM path's own overhead.

    python tests/bench/bench_gatekeeper.py [ROOT] [--llm]

ROOT defaults to this Python's standard library. The rules+scanner path is measured on every file
the crawl reaches (directories pruned with `Rules.is_ignored_dir`, as the crawler does); `--llm`
also measures the LLM path against the local OpenAI stub (instant answers, so the number is leo's
overhead per doubtful file, not a model's thinking time). If `detect-secrets` is installed, its
plugin regexes are timed on the same text for comparison. Numbers are noisy on a shared machine.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "embeddings"))

from leo_lsp.gatekeeper import secrets  # noqa: E402
from leo_lsp.gatekeeper.gate import Gatekeeper  # noqa: E402
from leo_lsp.gatekeeper.llm import LlmJudge  # noqa: E402
from leo_lsp.openai_api import OpenAICompatClient  # noqa: E402
from leo_lsp.records import content_hash  # noqa: E402
from leo_lsp.settings import GatekeeperSettings, IndexSettings  # noqa: E402


def crawl(gate: Gatekeeper, root: Path) -> list[Path]:
    """Every file below `root` outside pruned directories."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if not gate.rules.is_ignored_dir(os.path.join(rel, d))]
        out += [Path(dirpath, f) for f in filenames]
    return out


def bench_scanner(texts: list[str]) -> None:
    total = sum(len(t) for t in texts) / 1e6
    started, cpu = time.perf_counter(), time.process_time()
    strong = weak = 0
    for text in texts:
        for f in secrets.scan(text):
            strong += f.strength == "strong"
            weak += f.strength == "weak"
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"scanner: {total:.1f} MB in {took:.2f} s = {total / took:.1f} MB/s wall, "
        f"{total / cpu:.1f} MB/s CPU, {len(texts) / cpu:.0f} files/s CPU; "
        f"findings strong={strong} weak={weak}"
    )
    try:
        ds_util: Any = importlib.import_module("detect_secrets.core.plugins.util")
        ds_settings: Any = importlib.import_module("detect_secrets.settings")
        ds_scan: Any = importlib.import_module("detect_secrets.core.scan")
    except ImportError:
        print("detect-secrets: not installed (pip install detect-secrets to compare)")
        return
    with ds_settings.default_settings():
        regexes = [
            r
            for cls in ds_util.get_mapping_from_secret_type_to_class().values()
            for r in (getattr(cls, "denylist", None) or [])
        ]
        sample = texts[: max(1, len(texts) // 4)]
        size = sum(len(t) for t in sample) / 1e6
        started = time.perf_counter()
        for text in sample:
            for r in regexes:
                for _ in r.finditer(text):
                    pass
        took = time.perf_counter() - started
        print(
            f"detect-secrets plugin regexes ({len(regexes)}) over whole files: "
            f"{size / took:.1f} MB/s"
        )
        sample = texts[:40]
        size = sum(len(t) for t in sample) / 1e6
        started = time.perf_counter()
        for text in sample:
            for line in text.splitlines():
                for _ in ds_scan.scan_line(line):
                    pass
        took = time.perf_counter() - started
        print(f"detect-secrets scan_line (default plugins + filters): {size / took:.2f} MB/s")


async def bench_decisions(root: Path, files: list[Path]) -> None:
    gate = Gatekeeper(root, GatekeeperSettings(mode="rules"), IndexSettings())
    blobs = []
    for path in files:
        try:
            blobs.append((path, path.read_bytes()))
        except OSError:
            continue
    hashes = [content_hash(b.decode("utf-8", "replace")) for _, b in blobs]
    started, cpu = time.perf_counter(), time.process_time()
    decisions = [await gate.decide(p, b, h) for (p, b), h in zip(blobs, hashes, strict=True)]
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"decide (rules+scanner, cold cache): {len(blobs)} files in {took:.2f} s = "
        f"{len(blobs) / took:.0f} files/s wall, {len(blobs) / cpu:.0f} files/s CPU "
        f"({cpu / len(blobs) * 1e6:.0f} µs CPU/file)"
    )
    started = time.perf_counter()
    for (p, b), h in zip(blobs, hashes, strict=True):
        await gate.decide(p, b, h)
    took = time.perf_counter() - started
    print(f"decide (warm cache): {len(blobs) / took:.0f} files/s")
    allowed = sum(d.allowed for d in decisions)
    redacted = sum(d.redactions > 0 for d in decisions)
    print(
        f"crawl of {root}: {allowed} allowed ({redacted} with redactions), "
        f"{len(decisions) - allowed} denied"
    )
    reasons = Counter(d.reason.split(";")[0] for d in decisions if not d.allowed)
    for reason, n in reasons.most_common(12):
        print(f"  denied {n:6d}  {reason}")


async def bench_llm(root: Path, files: list[Path]) -> None:
    from openai_stub import OpenAIStub  # type: ignore[import-not-found]

    answer = {"decision": "allow", "category": "config", "reason": "ok", "confidence": 1}
    with OpenAIStub(chat_content=json.dumps(answer)) as stub:
        client = OpenAICompatClient(stub.url, max_retries=0)
        gate = Gatekeeper(
            root, GatekeeperSettings(mode="llm"), IndexSettings(), judge=LlmJudge(client, "m")
        )
        sample = [(p, p.read_bytes()) for p in files[:200]]
        started = time.perf_counter()
        for i, (path, data) in enumerate(sample):
            # a unique path per call: every decision goes to the LLM, none comes from the cache
            fake = path.with_name(f"bench_{i}.yaml")
            await gate.decide(fake, data, str(i))
        took = time.perf_counter() - started
        await client.aclose()
    asked = len(stub.requests_to("/v1/chat/completions"))
    print(
        f"decide (LLM path, local stub): {asked} requests, "
        f"{took / max(1, len(sample)) * 1000:.2f} ms/file overhead"
    )


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = Path(args[0]) if args else Path(sysconfig.get_paths()["stdlib"])
    gate = Gatekeeper(root, GatekeeperSettings(mode="rules"), IndexSettings())
    started = time.perf_counter()
    files = crawl(gate, root)
    print(f"crawl with pruning: {len(files)} files in {time.perf_counter() - started:.2f} s")
    py = [p for p in files if p.suffix == ".py"]
    bench_scanner([p.read_text(encoding="utf-8", errors="replace") for p in py])
    asyncio.run(bench_decisions(root, files))
    if "--llm" in sys.argv:
        asyncio.run(bench_llm(root, py))


if __name__ == "__main__":
    main()
