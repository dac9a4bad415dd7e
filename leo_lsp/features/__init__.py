"""LSP handlers, one module per area; each exposes `register(server)`."""

from __future__ import annotations

from types import ModuleType

from leo_lsp.features import (
    account,
    code_actions,
    commands,
    diagnostics,
    documents,
    lifecycle,
    symbols,
)

# Registration order matters only for readability: lifecycle builds the services the others use.
FEATURES: list[ModuleType] = [
    lifecycle,
    documents,
    commands,
    symbols,
    diagnostics,
    code_actions,
    account,
]
