"""The gatekeeper: rules first, then the secret scanner, then (for doubtful files) the LLM.

`Gatekeeper.decide` for one file:

1. `Rules.check` denies → deny (source `rules`). These are the *hard* denies: they hold in every
   mode, `off` included (binaries, oversized, vendored or ignored paths, `.env*`, private keys,
   credential files, lock/minified files), and they are re-checked on every call — never served
   from the cache — so a path added to `.gitignore` is denied at once.
2. A cached decision for (path, content hash, policy) → that decision with source `cache`.
3. The secret scanner runs on the text. Mode `off` stops here: allowed, nothing else judged.
4. A file whose non-blank lines are mostly secrets (`secrets.MOSTLY_SECRETS`) → deny.
5. Mode `rules`: allow; secrets (strong or weak) are redacted by the pipeline in every chunk.
6. Mode `llm`: doubtful files (the rules said doubtful, or the scanner flagged something weakly)
   go to the LLM with a redacted excerpt; `allow`/`redact` → allow, `deny` → deny (source `llm`).
   Clear files, or files with only strong secrets in ordinary source, are allowed by the rules
   without asking (the secrets are redacted). On an LLM failure (refused, timeout, 5xx, garbage,
   schema violation) `on_llm_error` decides: `rules` → the step-5 verdict, `deny` → deny. Fallback
   decisions are not cached, so the LLM decides once it is back. After a transport failure the
   LLM is not asked again for `llm_retry_after` seconds, so a crawl with LM Studio down is not
   slowed by one failed connection per file.

The policy key appended to the content hash in the cache covers the rules version, the index
settings, the mode, `on_llm_error` and the LLM model: changing any of them re-decides.
Redaction count (`Decision.redactions`) is the number of secret values the pipeline will replace.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from leo_lsp.errors import GatekeeperError, InvalidArguments, LeoError, UpstreamError
from leo_lsp.gatekeeper import secrets
from leo_lsp.gatekeeper.llm import LlmJudge
from leo_lsp.gatekeeper.rules import RULES_VERSION, Rules, RuleVerdict
from leo_lsp.openai_api import OpenAICompatClient
from leo_lsp.records import Decision
from leo_lsp.settings import GatekeeperSettings, IndexSettings

logger = logging.getLogger(__name__)

# Bump when the gate's own logic changes what it decides (the rules have RULES_VERSION).
POLICY_VERSION = 1

# Scanning runs at ~40-80 MB/s: below this size it costs < 5 ms and stays on the event loop;
# above it, it moves to a thread so that the editor's requests are not held up.
OFF_LOOP_BYTES = 256 * 1024

OPERATIONS = frozenset({"index", "sync", "remote_embed"})


class DecisionCache(Protocol):
    """Where decisions are remembered; `content_hash` already carries the policy key."""

    def get(self, path: str, content_hash: str) -> Decision | None:
        """The decision stored for this path and content hash, or None."""
        ...

    def put(self, decision: Decision, content_hash: str) -> None:
        """Remember `decision` for (decision.path, content_hash)."""
        ...


class AuditLog(Protocol):
    """Receives every decision the gatekeeper makes (including cache hits)."""

    def record(self, decision: Decision) -> None:
        """Store one decision (the sink adds the time)."""
        ...


class MemoryDecisionCache:
    """A dict-backed `DecisionCache` (tests, single-file projects)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Decision] = {}

    def get(self, path: str, content_hash: str) -> Decision | None:
        """The stored decision or None."""
        return self.entries.get((path, content_hash))

    def put(self, decision: Decision, content_hash: str) -> None:
        """Store `decision`."""
        self.entries[(decision.path, content_hash)] = decision


class MemoryAuditLog:
    """A list-backed `AuditLog` keeping (unix time, decision) pairs, newest last."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.rows: list[tuple[float, Decision]] = []

    def record(self, decision: Decision) -> None:
        """Append one decision, dropping the oldest past `limit`."""
        self.rows.append((time.time(), decision))
        if len(self.rows) > self.limit:
            del self.rows[: len(self.rows) - self.limit]


@dataclass(slots=True)
class _LlmHealth:
    state: str = "unknown"  # disabled | unknown | reachable | unreachable
    last_error: str = ""
    last_error_at: float = 0.0
    down_until: float = 0.0


class Gatekeeper:
    """Decides, per file, whether leo may index it; see the module docstring for the order."""

    def __init__(
        self,
        root: Path | None,
        settings: GatekeeperSettings,
        index: IndexSettings,
        *,
        judge: LlmJudge | None = None,
        cache: DecisionCache | None = None,
        audit: AuditLog | None = None,
        llm_retry_after: float = 30.0,
        llm_concurrency: int = 2,
    ) -> None:
        self.settings = settings
        self.rules = Rules(root, index)
        self.cache: DecisionCache = cache if cache is not None else MemoryDecisionCache()
        self.audit: AuditLog = audit if audit is not None else MemoryAuditLog()
        self._owned_client: OpenAICompatClient | None = None
        if judge is None and settings.mode == "llm":
            # one attempt: the per-decision timeout bounds the wait, and the fallback is the answer
            self._owned_client = OpenAICompatClient(
                settings.url, read_timeout=settings.timeout_seconds, max_retries=1
            )
            judge = LlmJudge(self._owned_client, settings.model)
        self.judge = judge if settings.mode == "llm" else None
        self.llm_retry_after = llm_retry_after
        self._llm_slots = asyncio.Semaphore(max(1, llm_concurrency))
        self._llm = _LlmHealth(state="unknown" if self.judge is not None else "disabled")
        self.counts: Counter[str] = Counter()
        model = self.judge.model if self.judge is not None else ""
        raw = (
            f"p{POLICY_VERSION}|{self.rules.fingerprint}|{settings.mode}|"
            f"{settings.on_llm_error}|{model}"
        )
        self.policy_key = hashlib.blake2b(raw.encode(), digest_size=6).hexdigest()
        """Appended to content hashes in the cache: a policy change re-decides every file."""

    async def aclose(self) -> None:
        """Close the HTTP client the gatekeeper created for its LLM (if any)."""
        if self._owned_client is not None:
            await self._owned_client.aclose()

    # -- public API --------------------------------------------------------------------------

    @staticmethod
    def redact(text: str) -> tuple[str, int]:
        """Redact every secret value in approved text (the pipeline calls this on each chunk)."""
        return secrets.redact(text)

    def cache_key(self, content_hash: str) -> str:
        """The key under which a decision for `content_hash` is cached under this policy."""
        return f"{content_hash}@{self.policy_key}"

    async def decide(self, path: Path, data: bytes, content_hash: str) -> Decision:
        """May `path` with content `data` be indexed? Never raises for a file, never hangs."""
        shown = str(path)
        verdict = self.rules.check(path, data)
        if verdict.verdict == "deny":
            return self._finish(Decision(shown, False, verdict.reason, "rules"))
        key = self.cache_key(content_hash)
        cached = self.cache.get(shown, key)
        if cached is not None:
            return self._finish(replace(cached, source="cache"))

        text = data.decode("utf-8", errors="replace")
        if len(data) > OFF_LOOP_BYTES:
            findings = await asyncio.to_thread(secrets.scan, text)
        else:
            findings = secrets.scan(text)
        n = len(findings)
        if self.settings.mode == "off":
            return self._finish(
                Decision(shown, True, _with_redactions("gatekeeper off", n), "rules", n), key
            )
        share = secrets.secret_share(text, findings) if findings else 0.0
        if share >= secrets.MOSTLY_SECRETS:
            reason = f"mostly secrets ({share:.0%} of its lines carry one)"
            return self._finish(Decision(shown, False, reason, "rules", n), key)

        weak = any(f.strength == "weak" for f in findings)
        doubtful = verdict.verdict == "doubtful" or weak
        rules_reason = verdict.reason + (" (weak secret match)" if weak else "")
        rules_decision = Decision(shown, True, _with_redactions(rules_reason, n), "rules", n)
        if not doubtful or self.judge is None:
            return self._finish(rules_decision, key)

        redacted = secrets.redact_findings(text, findings) if findings else text
        return await self._ask_llm(path, data, redacted, n, rules_decision, verdict, key)

    async def evaluate_operation(
        self,
        operation_type: str,
        path: Path,
        data: bytes,
        content_hash: str,
        details: Mapping[str, Any] | None = None,
    ) -> Decision:
        """The same decision for any operation that exposes a file's text (index, sync, embed).

        Indexing, syncing a project and sending code to a remote embedder all expose the file's
        (redacted) text, so one policy answers all three; the operation only labels the reason.
        """
        if operation_type not in OPERATIONS:
            raise InvalidArguments(
                f"unknown operation {operation_type!r}; expected one of {sorted(OPERATIONS)}",
                field="operation_type",
            )
        decision = await self.decide(path, data, content_hash)
        if operation_type == "index":
            return decision
        target = f" to {details['target']}" if details and "target" in details else ""
        return replace(decision, reason=f"{operation_type}{target}: {decision.reason}")

    def state(self) -> dict[str, Any]:
        """The gatekeeper's health for `leo.health`: mode, LLM reachability, last error, counts."""
        return {
            "mode": self.settings.mode,
            "llm": self._llm.state,
            "model": self.judge.model if self.judge is not None else "",
            "lastError": self._llm.last_error,
            "lastErrorAt": self._llm.last_error_at or None,
            "decisions": dict(self.counts),
        }

    async def check_llm(self) -> bool:
        """Probe the LLM server (`/v1/models`) and update the health state; False if unusable."""
        if self.judge is None:
            return False
        try:
            await asyncio.wait_for(
                self.judge.client.list_models(), timeout=self.settings.timeout_seconds
            )
        except (TimeoutError, LeoError) as exc:
            self._llm_failed(_describe(exc, self.settings.timeout_seconds), transport=True)
            return False
        self._llm.state = "reachable"
        self._llm.down_until = 0.0
        return True

    # -- internals ----------------------------------------------------------------------------

    def _finish(self, decision: Decision, cache_key: str | None = None) -> Decision:
        if cache_key is not None:
            self.cache.put(decision, cache_key)
        self.counts[decision.source] += 1
        if not decision.allowed:
            self.counts["denied"] += 1
        self.audit.record(decision)
        logger.debug(
            "gatekeeper %s %s (%s): %s",
            "allow" if decision.allowed else "deny",
            decision.path,
            decision.source,
            decision.reason,
        )
        return decision

    def _llm_failed(self, message: str, *, transport: bool) -> None:
        now = time.monotonic()
        first = self._llm.state != "unreachable"
        self._llm.last_error = message
        self._llm.last_error_at = time.time()
        if transport:
            self._llm.state = "unreachable"
            self._llm.down_until = now + self.llm_retry_after
        (logger.warning if first else logger.debug)("gatekeeper LLM: %s", message)

    async def _ask_llm(
        self,
        path: Path,
        data: bytes,
        redacted: str,
        redactions: int,
        rules_decision: Decision,
        verdict: RuleVerdict,
        key: str,
    ) -> Decision:
        assert self.judge is not None
        error: str
        if time.monotonic() < self._llm.down_until:
            error = f"LLM unavailable ({self._llm.last_error})"
        else:
            rel = self.rules.relative(path)
            shown = str(rel) if rel is not None else path.name
            try:
                async with self._llm_slots:
                    answer = await asyncio.wait_for(
                        self.judge.judge(shown, len(data), redacted, redactions=redactions),
                        timeout=self.settings.timeout_seconds,
                    )
            except (TimeoutError, LeoError) as exc:
                error = _describe(exc, self.settings.timeout_seconds)
                self._llm_failed(error, transport=_is_transport_failure(exc))
            except Exception as exc:  # a bug must not stop indexing; it is logged with its trace
                logger.exception("gatekeeper LLM call crashed for %s", path)
                error = f"LLM call failed: {type(exc).__name__}: {exc}"
                self._llm_failed(error, transport=False)
            else:
                self._llm.state = "reachable"
                self._llm.down_until = 0.0
                reason = f"{answer.category}: {answer.reason}" if answer.category else answer.reason
                if answer.allowed:
                    reason = _with_redactions(reason, redactions)
                decision = Decision(str(path), answer.allowed, f"LLM: {reason}", "llm", redactions)
                return self._finish(decision, key)

        if self.settings.on_llm_error == "deny":
            return self._finish(
                Decision(str(path), False, f"{error}; onLlmError=deny", "rules", redactions)
            )
        return self._finish(replace(rules_decision, reason=f"{rules_decision.reason}; {error}"))


def _with_redactions(reason: str, n: int) -> str:
    if n == 0:
        return reason
    return f"{reason}; {n} secret{'s' if n != 1 else ''} redacted"


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"LLM did not answer within {timeout:g} s"
    if isinstance(exc, LeoError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _is_transport_failure(exc: BaseException) -> bool:
    """A timeout or an unreachable / failing server, not a bad answer about one file."""
    if isinstance(exc, TimeoutError):
        return True
    cause = exc.__cause__ if isinstance(exc, GatekeeperError) else exc
    if isinstance(cause, UpstreamError):
        # the client marks answers it could not parse with the offending `content`
        return "content" not in cause.data
    return False


__all__ = [
    "AuditLog",
    "DecisionCache",
    "Gatekeeper",
    "MemoryAuditLog",
    "MemoryDecisionCache",
    "OPERATIONS",
    "POLICY_VERSION",
    "RULES_VERSION",
]
