"""Fix regions are the change nearest the error, and bounded."""

from __future__ import annotations

from leo_lsp.struggle.fixes import FixMemory, make_fix


def _fix(before: str, after: str, near: tuple[int, int], at: float = 0.0):  # type: ignore[no-untyped-def]
    return make_fix(
        signature="s",
        category="type",
        message="m",
        uri="u",
        before_text=before,
        after_text=after,
        near=near,
        created_at=at,
    )


def test_picks_the_change_nearest_the_error() -> None:
    before = "\n".join(f"line {n}" for n in range(100))
    after = before.replace("line 5\n", "LINE FIVE\n").replace("line 80\n", "LINE EIGHTY\n")
    fix = _fix(before, after, (79, 79))
    assert fix is not None
    assert fix.after == "LINE EIGHTY" and fix.before == "line 80" and fix.start_line == 80
    assert "FIVE" not in fix.diff


def test_large_rewrite_is_truncated_and_no_change_is_no_fix() -> None:
    before = "\n".join(f"a{n}" for n in range(200))
    after = "\n".join(f"b{n}" for n in range(200))
    fix = _fix(before, after, (3, 3))
    assert fix is not None and len(fix.diff.splitlines()) <= 30
    assert len(fix.after.splitlines()) <= 30
    assert _fix("same\n", "same\n", (0, 0)) is None


def test_memory_keeps_most_recent_per_signature() -> None:
    memory = FixMemory(per_signature=2)
    fixes = [_fix("x\n", f"y{n}\n", (0, 0), at=n) for n in range(3)]
    memory.load([f for f in fixes if f is not None])
    assert [f.after for f in memory.fixes_for("s")] == ["y2", "y1"]
    assert memory.fixes_for("other") == []
