"""Fix memory: what the developer changed when a struggle's error went away.

When an open struggle resolves after an edit, the detector hands the file text from the last
observation that still had the error and the first one without it to `make_fix`, which keeps only
the changed region nearest the error (a unified diff of at most ~30 lines). The next time the same
signature struggles, in any file, the hint can point at that fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

MAX_DIFF_LINES = 30
"""A fix longer than this is not a fix of one error but a rewrite; keep the part nearest it."""


@dataclass(frozen=True, slots=True)
class Fix:
    """The before/after of the edit that made a struggle's error go away.

    `start_line`/`end_line` (0-indexed, inclusive) locate the changed lines in the text *after* the
    fix; `before`/`after` are the changed lines themselves; `diff` is a unified diff with context.
    """

    signature: str
    category: str
    message: str  # the normalised error message
    uri: str
    start_line: int
    end_line: int
    before: str
    after: str
    diff: str
    created_at: float  # Unix seconds


def _distance(start: int, end: int, lo: int, hi: int) -> int:
    if end < lo:
        return lo - end
    if start > hi:
        return start - hi
    return 0


def make_fix(
    *,
    signature: str,
    category: str,
    message: str,
    uri: str,
    before_text: str,
    after_text: str,
    near: tuple[int, int],
    created_at: float,
    max_lines: int = MAX_DIFF_LINES,
) -> Fix | None:
    """The changed region of `before_text` → `after_text` nearest the lines `near`, or None."""
    old = before_text.splitlines()
    new = after_text.splitlines()
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    groups = list(matcher.get_grouped_opcodes(3))
    if not groups or all(tag == "equal" for group in groups for tag, *_ in group):
        return None
    lo, hi = near

    def group_distance(group: list[tuple[str, int, int, int, int]]) -> int:
        changed = [op for op in group if op[0] != "equal"]
        return min(_distance(i1, max(i1, i2 - 1), lo, hi) for _, i1, i2, _, _ in changed)

    group = min(groups, key=group_distance)
    # The region is the one change nearest the error; the diff keeps its hunk for context.
    _, i_start, i_end, j_start, j_end = min(
        (op for op in group if op[0] != "equal"),
        key=lambda op: _distance(op[1], max(op[1], op[2] - 1), lo, hi),
    )

    first, last = group[0], group[-1]
    header = f"@@ -{first[1] + 1},{last[2] - first[1]} +{first[3] + 1},{last[4] - first[3]} @@"
    lines = [header]
    for tag, i1, i2, j1, j2 in group:
        if tag == "equal":
            lines.extend(" " + line for line in old[i1:i2])
            continue
        lines.extend("-" + line for line in old[i1:i2])
        lines.extend("+" + line for line in new[j1:j2])
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + ["…"]
    before = "\n".join(old[i_start:i_end][:max_lines])
    after = "\n".join(new[j_start:j_end][:max_lines])
    return Fix(
        signature=signature,
        category=category,
        message=message,
        uri=uri,
        start_line=j_start,
        end_line=max(j_start, j_end - 1),
        before=before,
        after=after,
        diff="\n".join(lines),
        created_at=created_at,
    )


class FixMemory:
    """The most recent fixes per signature, in memory (the repository persists them)."""

    def __init__(self, per_signature: int = 5) -> None:
        self._per_signature = per_signature
        self._fixes: dict[str, list[Fix]] = {}

    def add(self, fix: Fix) -> None:
        """Remember a fix; the oldest beyond `per_signature` is forgotten."""
        kept = self._fixes.setdefault(fix.signature, [])
        kept.insert(0, fix)
        del kept[self._per_signature :]

    def load(self, fixes: Iterable[Fix]) -> None:
        """Seed the memory (e.g. from the repository at start-up), oldest first."""
        for fix in sorted(fixes, key=lambda f: f.created_at):
            self.add(fix)

    def fixes_for(self, signature: str) -> list[Fix]:
        """Fixes for a signature, most recent first."""
        return list(self._fixes.get(signature, ()))
