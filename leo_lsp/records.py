"""Plain records passed between services (no protocol types here).

Coordinates: `start_line`/`end_line` are 0-indexed and inclusive (LSP lines); `start_col`/`end_col`
are UTF-16 code-unit columns as LSP requires, end exclusive; `start_byte`/`end_byte` are UTF-8 byte
offsets into the document, end exclusive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def content_hash(text: str) -> str:
    """Stable short hash of a text, used to skip re-embedding unchanged chunks."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Chunk:
    """One unit of code a search hit points at: a function, method, class, section or window."""

    path: str
    language: str
    text: str
    start_line: int
    end_line: int
    start_col: int = 0
    end_col: int = 0
    start_byte: int = 0
    end_byte: int = 0
    symbol: str = ""
    kind: str = "block"  # function | method | class | interface | module | section | window | block
    scope: str = ""  # enclosing scope, e.g. "Class" for Class.method
    context: str = ""  # signature / header kept with a split body; embedded, not shown

    @property
    def qualified_name(self) -> str:
        """`Scope.symbol`, or the symbol alone."""
        return f"{self.scope}.{self.symbol}" if self.scope and self.symbol else self.symbol

    @property
    def hash(self) -> str:
        """Content hash of what gets embedded (context + text)."""
        return content_hash(self.context + "\n" + self.text)


@dataclass(frozen=True, slots=True)
class Decision:
    """The gatekeeper's verdict on one file."""

    path: str
    allowed: bool
    reason: str
    source: str = "rules"  # rules | llm | cache
    redactions: int = 0  # secrets redacted in the approved text


@dataclass(slots=True)
class SearchHit:
    """One search result before it is turned into an LSP location."""

    path: str
    start_line: int
    end_line: int
    start_col: int
    end_col: int
    score: float
    language: str
    symbol: str
    kind: str
    scope: str
    snippet: str
    project_id: str = ""
    chunk_id: int = 0
    sources: list[str] = field(default_factory=list)  # which rankers found it: vector, lexical
