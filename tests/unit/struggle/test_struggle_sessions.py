"""Precision and recall of struggle detection on scripted, hand-labelled editor sessions.

The sessions (struggle_sessions.json) are replayed through a real StruggleDetector with a clock
moved by hand; "a hint was shown" is compared with the label. The floors below are the measured
values (see the closing note of issue 6), so a change that makes detection worse fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from leo_lsp.struggle.detector import RESOLVED, ObservedDiagnostic, StruggleDetector

SESSIONS = json.loads((Path(__file__).parent / "struggle_sessions.json").read_text())["sessions"]
# Measured: 0.90 / 1.00 on each half and on all 37 (exact fractions: 9/10, 9/10, 18/20). Before
# the syntax "still typing" rule, tuned on half A only, precision was 0.82 on both halves.
PRECISION_FLOOR = 0.9 - 1e-9
RECALL_FLOOR = 1.0


class Clock:
    """The detector's clock, moved by the replay (no sleeps)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def expand(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unroll `repeat`/`every`, substitute {n}, and order the steps by time."""
    out = []
    for step in steps:
        for n in range(step.get("repeat", 1)):
            s = {k: v for k, v in step.items() if k not in ("repeat", "every", "shift")}
            s["at"] = step["at"] + n * step.get("every", 0)
            if "text" in s:
                s["text"] = s["text"].replace("{n}", str(n))
            if "lines" in s:
                s["lines"] = [line.replace("{n}", str(n)) for line in s["lines"]]
            if "edit" in s:
                s["edit"] = [line + n * step.get("shift", 0) for line in s["edit"]]
            out.append(s)
    return sorted(out, key=lambda s: s["at"])  # stable: same-time steps keep their order


def diagnostic(raw: list[Any]) -> ObservedDiagnostic:
    message, line, *rest = raw
    severity = rest[0] if rest else 1
    source = rest[1] if len(rest) > 1 else None
    return ObservedDiagnostic(message, line, line, severity, None, source)


def replay(session: dict[str, Any]) -> bool:
    """Whether the detector would have shown a hint at any point of the session."""
    clock = Clock()
    detector = StruggleDetector(3, 600, clock, wall_clock=lambda: 1_700_000_000.0)
    shown = False
    for step in expand(session["steps"]):
        clock.now = float(step["at"])
        uri = step.get("uri", session["uri"])
        if "diags" in step:
            events = detector.observe(uri, [diagnostic(d) for d in step["diags"]], step["text"])
        elif "report" in step:
            events = [detector.report(step["report"], uri)]
        elif "syntax" in step:
            text = "\n".join(step["lines"])
            events = detector.observe_syntax_errors(uri, step["syntax"], text)
        elif "edit" in step:
            first, last = step["edit"]
            events = detector.observe_edit(uri, range(first, last + 1), None)
        else:
            raise AssertionError(f"unknown step in {session['name']!r}: {step}")
        shown |= any(e.open and e.kind != RESOLVED for e in events)
    return shown


def scores(sessions: list[dict[str, Any]]) -> tuple[float, float, list[str]]:
    """Precision, recall, and the names of the sessions the detector got wrong."""
    tp = fp = fn = 0
    wrong = []
    for session in sessions:
        shown, stuck = replay(session), session["stuck"]
        tp += shown and stuck
        fp += shown and not stuck
        fn += stuck and not shown
        if shown != stuck:
            wrong.append(("false alarm: " if shown else "missed: ") + session["name"])
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, wrong


def test_the_set_is_big_enough_and_balanced() -> None:
    names = [s["name"] for s in SESSIONS]
    assert len(names) == len(set(names)) >= 30
    stuck = sum(s["stuck"] for s in SESSIONS)
    assert 0.4 <= stuck / len(SESSIONS) <= 0.6
    assert {s["half"] for s in SESSIONS} == {"A", "B"}


@pytest.mark.parametrize("half", ["A", "B", "all"])
def test_precision_and_recall_stay_above_the_measured_floor(
    half: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = [s for s in SESSIONS if half in ("all", s["half"])]
    precision, recall, wrong = scores(sessions)
    with capsys.disabled():
        print(
            f"\nstruggle detection, half {half}: {len(sessions)} sessions, "
            f"precision {precision:.2f}, recall {recall:.2f}; wrong: {wrong or 'none'}"
        )
    assert precision >= PRECISION_FLOOR and recall >= RECALL_FLOOR, wrong
