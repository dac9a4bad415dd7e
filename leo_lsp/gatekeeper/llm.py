"""Ask a local OpenAI-compatible chat model (LM Studio) whether a doubtful file may be indexed.

The model sees the file's path relative to the workspace, its size and language, and a bounded
excerpt **after** secret redaction: even a local model never receives a raw secret, because its
server may log prompts. Its answer must match `DECISION_SCHEMA`; anything else is a
`GatekeeperError`, which the `Gatekeeper` turns into its configured fallback.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

from leo_lsp.errors import GatekeeperError, UpstreamError
from leo_lsp.openai_api import OpenAICompatClient

logger = logging.getLogger(__name__)

LlmDecision = Literal["allow", "deny", "redact"]

EXCERPT_LINES = 40
EXCERPT_LINE_CHARS = 200
EXCERPT_CHARS = 4000
REASON_CHARS = 300

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["allow", "deny", "redact"]},
        "category": {"type": "string"},
        "reason": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["decision", "category", "reason", "confidence"],
    "additionalProperties": False,
}

SYSTEM_PROMPT = (
    "You are the privacy gatekeeper of a code search index that runs on the user's machine. "
    "For one file, decide whether its text may be indexed for semantic search.\n"
    "- allow: source code, documentation, tests, ordinary build or tool configuration.\n"
    "- redact: useful text that contains a few credentials; they are replaced before indexing.\n"
    "- deny: files whose purpose is to hold secrets, credentials, keys, tokens, personal data, "
    "customer data or database dumps.\n"
    "Secrets already found are shown as «redacted:<kind>». "
    "category is one word such as source, docs, config, credentials, data, generated. "
    "Answer with one JSON object: "
    '{"decision": "allow|deny|redact", "category": "...", "reason": "...", "confidence": 0.0-1.0}.'
)


@dataclass(frozen=True, slots=True)
class LlmVerdict:
    """The model's validated answer."""

    decision: LlmDecision
    reason: str
    category: str = ""
    confidence: float | None = None

    @property
    def allowed(self) -> bool:
        """`allow` and `redact` both index the file (secrets are always redacted)."""
        return self.decision != "deny"


def excerpt(redacted_text: str) -> str:
    """The bounded excerpt sent to the model: first lines of the (already redacted) text."""
    lines = redacted_text.splitlines()[:EXCERPT_LINES]
    clipped = [
        ln if len(ln) <= EXCERPT_LINE_CHARS else ln[:EXCERPT_LINE_CHARS] + "…" for ln in lines
    ]
    return "\n".join(clipped)[:EXCERPT_CHARS]


def build_messages(
    path: str, size: int, redacted_text: str, *, language: str = "", redactions: int = 0
) -> list[dict[str, str]]:
    """The chat messages for one file; `redacted_text` must already be redacted."""
    facts = [f"path: {path}", f"size: {size} bytes"]
    if language:
        facts.append(f"language: {language}")
    if redactions:
        facts.append(f"secrets found and redacted: {redactions}")
    user = "\n".join(facts) + f"\nfirst lines:\n```\n{excerpt(redacted_text)}\n```"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_verdict(answer: Any) -> LlmVerdict:
    """Validate the model's JSON against `DECISION_SCHEMA`; raise GatekeeperError if it is not."""
    if not isinstance(answer, dict):
        raise GatekeeperError(f"the LLM's answer is not a JSON object: {answer!r:.120}")
    decision = answer.get("decision")
    if not isinstance(decision, str) or decision.strip().lower() not in ("allow", "deny", "redact"):
        raise GatekeeperError(f"the LLM's answer has no valid decision: {answer!r:.160}")
    reason = answer.get("reason")
    if not isinstance(reason, str):
        raise GatekeeperError(f"the LLM's answer has no reason: {answer!r:.160}")
    category = answer.get("category", "")
    if not isinstance(category, str):
        raise GatekeeperError(f"the LLM's category is not a string: {answer!r:.160}")
    confidence = answer.get("confidence")
    if confidence is not None:
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not math.isfinite(confidence)
            or not 0 <= confidence <= 1
        ):
            raise GatekeeperError(f"the LLM's confidence is not in [0, 1]: {answer!r:.160}")
        confidence = float(confidence)
    norm: LlmDecision = "allow"
    if decision.strip().lower() == "deny":
        norm = "deny"
    elif decision.strip().lower() == "redact":
        norm = "redact"
    return LlmVerdict(
        decision=norm,
        reason=" ".join(reason.split())[:REASON_CHARS] or "(no reason given)",
        category=category.strip()[:40],
        confidence=confidence,
    )


class LlmJudge:
    """Decides doubtful files with one `/v1/chat/completions` request each."""

    def __init__(self, client: OpenAICompatClient, model: str) -> None:
        self.client = client
        self.model = model

    async def judge(
        self,
        path: str,
        size: int,
        redacted_text: str,
        *,
        language: str = "",
        redactions: int = 0,
    ) -> LlmVerdict:
        """Ask the model about one file; raises GatekeeperError on any failure or bad answer."""
        messages = build_messages(
            path, size, redacted_text, language=language, redactions=redactions
        )
        try:
            answer = await self.client.chat_json(self.model, messages, DECISION_SCHEMA)
        except UpstreamError as exc:
            raise GatekeeperError(f"the gatekeeper LLM failed: {exc.message}") from exc
        verdict = parse_verdict(answer)
        logger.debug("llm decision for %s: %s (%s)", path, verdict.decision, verdict.reason)
        return verdict


__all__ = [
    "DECISION_SCHEMA",
    "LlmDecision",
    "LlmJudge",
    "LlmVerdict",
    "build_messages",
    "excerpt",
    "parse_verdict",
]
