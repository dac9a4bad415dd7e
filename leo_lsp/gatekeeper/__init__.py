"""The gatekeeper: decides which files leo may index, and redacts secrets in what it indexes.

`rules` (deterministic path/content policy) → `secrets` (scanner, redaction) → `llm` (a local
chat model for doubtful files) → `gate.Gatekeeper` (combines them, caches and audits decisions).
"""

from __future__ import annotations

from leo_lsp.gatekeeper.gate import (
    AuditLog,
    DecisionCache,
    Gatekeeper,
    MemoryAuditLog,
    MemoryDecisionCache,
)
from leo_lsp.gatekeeper.rules import Rules, RuleVerdict
from leo_lsp.gatekeeper.secrets import Finding, redact, scan, secret_share

__all__ = [
    "AuditLog",
    "DecisionCache",
    "Finding",
    "Gatekeeper",
    "MemoryAuditLog",
    "MemoryDecisionCache",
    "RuleVerdict",
    "Rules",
    "redact",
    "scan",
    "secret_share",
]
