"""The detector: recurrence opens, a fix resolves and is remembered, the window expires, churn."""

from __future__ import annotations

from leo_lsp.struggle.detector import ObservedDiagnostic, StruggleDetector, StruggleEvent


class FakeClock:
    """A clock the test moves by hand (no sleeps)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


URI = "file:///w/app/src/list.ts"
OTHER_URI = "file:///w/app/src/table.ts"
ERR = "Cannot read properties of undefined (reading 'map')"


def make(threshold: int = 3, window: int = 600) -> tuple[StruggleDetector, FakeClock]:
    clock = FakeClock()
    return StruggleDetector(threshold, window, clock, wall_clock=lambda: 1_700_000_000.0), clock


def diag(message: str = ERR, line: int = 4, **kw: object) -> ObservedDiagnostic:
    return ObservedDiagnostic(message, line, line, **kw)  # type: ignore[arg-type]


def source(version: int, body: str = "const xs = items.map((x) => x.id);") -> str:
    return f"// v{version}\nimport {{ items }} from './items';\n\nfunction f() {{\n  {body}\n}}\n"


def test_three_recurrences_open_one_struggle() -> None:
    detector, clock = make()
    assert detector.observe(URI, [diag()], source(1)) == []
    clock.advance(20)
    assert detector.observe(URI, [diag()], source(2)) == []
    clock.advance(20)
    events = detector.observe(URI, [diag()], source(3))
    assert [e.kind for e in events] == ["opened"]
    event = events[0]
    assert event.category == "null"
    assert event.occurrences == 3 and event.score >= 3
    assert event.message == "Cannot read properties of undefined (reading '_')"
    assert (event.start_line, event.end_line) == (4, 4)
    assert "items.map" in event.context
    assert event.first_seen == 1_700_000_000.0 and event.last_seen == 1_700_000_040.0
    clock.advance(5)
    assert [e.kind for e in detector.observe(URI, [diag()], source(4))] == ["updated"]
    assert len(detector.open_struggles(URI)) == 1
    assert detector.open_struggles(OTHER_URI) == []


def test_republishing_for_unchanged_text_does_not_count() -> None:
    detector, clock = make()
    for _ in range(5):
        clock.advance(1)
        assert detector.observe(URI, [diag()], source(1)) == []
    # ... but without text every observation is an attempt
    detector2, _ = make()
    kinds = [e.kind for _ in range(3) for e in detector2.observe(URI, [diag()], None)]
    assert kinds == ["opened"]


def test_fix_resolves_and_is_remembered() -> None:
    detector, clock = make()
    for version in (1, 2, 3):
        clock.advance(10)
        detector.observe(URI, [diag()], source(version))
    fixed = source(5, "const xs = (items ?? []).map((x) => x.id);")
    clock.advance(10)
    assert detector.observe(URI, [], fixed) == []  # one clean attempt is not "gone for good"
    clock.advance(10)
    events = detector.observe(URI, [], fixed.replace("v5", "v6"))
    assert [e.kind for e in events] == ["resolved"]
    fix = events[0].fix
    assert fix is not None
    assert "-  const xs = items.map" in fix.diff and "+  const xs = (items ?? []).map" in fix.diff
    assert fix.after.strip() == "const xs = (items ?? []).map((x) => x.id);"
    assert fix.start_line == 4 and fix.uri == URI
    assert len(fix.diff.splitlines()) <= 30
    assert detector.fixes_for(events[0].signature) == [fix]
    assert detector.open_struggles() == []


def test_scattered_errors_that_get_fixed_do_not_open() -> None:
    detector, clock = make()
    events: list[StruggleEvent] = []
    for version in range(1, 8):
        clock.advance(10)
        events += detector.observe(URI, [diag()] if version % 2 else [], source(version))
    assert events == []


def test_old_occurrences_expire_with_the_window() -> None:
    detector, clock = make(window=60)
    detector.observe(URI, [diag()], source(1))
    clock.advance(50)
    detector.observe(URI, [diag()], source(2))
    clock.advance(70)  # the first two fall out of the window together
    assert detector.observe(URI, [diag()], source(3)) == []
    clock.advance(70)
    assert detector.observe(URI, [diag()], source(4)) == []
    # within the window the same three attempts do open it
    clock.advance(5)
    assert [e.kind for e in detector.observe(URI, [diag()], source(5))] == ["opened"]


def test_reports_open_and_expire() -> None:
    detector, clock = make(window=300)
    first = detector.report("TypeError: Cannot read property 'map' of undefined", URI, 4)
    assert first.kind == "updated" and not first.open and first.category == "null"
    clock.advance(5)
    detector.report("TypeError: Cannot read property 'map' of undefined", URI, 4)
    clock.advance(5)
    third = detector.report("TypeError: Cannot read property 'filter' of undefined", URI, 4)
    assert third.kind == "opened" and third.open and third.occurrences == 3
    assert third.language == "typescript"
    clock.advance(301)
    resolved = detector.sweep()
    assert [e.kind for e in resolved] == ["resolved"] and resolved[0].fix is None


def test_leo_hints_warnings_and_other_files_are_ignored() -> None:
    detector, _ = make(threshold=1)
    assert detector.observe(URI, [diag(source="leo")], None) == []
    assert detector.observe(URI, [diag(severity=2)], None) == []
    opened = detector.observe(URI, [diag(severity=1, source="ts")], None)
    assert [e.kind for e in opened] == ["opened"]
    # another file's observation does not count as this file's fix
    assert detector.observe(OTHER_URI, [], None) == []
    assert detector.observe(OTHER_URI, [], None) == []
    assert len(detector.open_struggles(URI)) == 1


def test_dismiss_silences_for_the_window() -> None:
    detector, clock = make(window=100)
    events = []
    for version in (1, 2, 3):
        events = detector.observe(URI, [diag()], source(version))
    detector.dismiss(events[0].signature, URI)
    assert detector.observe(URI, [diag()], source(4)) == []
    assert detector.open_struggles(URI) == []
    clock.advance(101)
    assert [e.kind for e in detector.observe(URI, [diag()], source(5))] == ["updated"]


def test_persistent_syntax_error_opens_but_typing_does_not() -> None:
    detector, clock = make()
    broken = "def f(:\n    return 1\n"
    events = []
    for n in range(3):  # the broken line stays while other lines are edited
        clock.advance(2)
        events = detector.observe_syntax_errors("file:///w/a.py", [0], broken + f"x = {n}\n")
    assert [e.kind for e in events] == ["opened"]
    assert events[0].category == "syntax" and events[0].origin == "syntax"

    typing, clock2 = make()
    out = []
    for partial in ("def g(", "def g(a", "def g(a,", "def g(a, b"):
        clock2.advance(0.5)
        out += typing.observe_syntax_errors("file:///w/b.py", [0], partial + "\n")
    assert out == []


def test_typing_below_an_unclosed_construct_is_not_a_struggle() -> None:
    detector, clock = make()
    uri = "file:///w/settings.py"
    body = ["import os", "", "APPS = ["]
    out = detector.observe_syntax_errors(uri, [2], "\n".join(body) + "\n")
    for item in ("'users',", "'orders',", "'billing',", "'mail',", "'search',", "'admin',"):
        clock.advance(3)  # past the time grace too: still typing the list
        body.append("    " + item)
        out += detector.observe_syntax_errors(uri, [2], "\n".join(body) + "\n")
    assert out == []
    # Then the developer leaves the list open and edits elsewhere: now the error persists.
    for n in range(2):
        clock.advance(3)
        out += detector.observe_syntax_errors(uri, [3], f"x = {n}\n" + "\n".join(body) + "\n")
    assert [e.kind for e in out] == ["opened"]  # 1 (first seen) + 1.5 + 2


def test_syntax_fix_resolves_with_fix() -> None:
    detector, clock = make()
    for n in range(3):  # edits further down, the broken signature stays
        clock.advance(2)
        detector.observe_syntax_errors("file:///w/a.py", [0], f"def f(:\n    return 1\n\nx = {n}\n")
    detector.observe_syntax_errors("file:///w/a.py", [], "def f():\n    return 1\n\nx = 2\n")
    events = detector.observe_syntax_errors(
        "file:///w/a.py", [], "def f():\n    return 1\n\nx = 3\n"
    )
    assert [e.kind for e in events] == ["resolved"]
    assert events[0].fix is not None and "+def f():" in events[0].fix.diff


def test_churn_same_lines_rewritten_again_and_again() -> None:
    detector, clock = make()  # churn threshold: 5 rewrites
    events: list[StruggleEvent] = []
    for rewrite in range(5):
        for keystroke in range(4):  # one burst of typing on lines 10-11
            clock.advance(0.3)
            events += detector.observe_edit(URI, range(10, 12), f"text {rewrite} {keystroke}")
        clock.advance(30)  # a pause: the next edit is a new rewrite
    assert [e.kind for e in events] == ["opened"]
    assert events[0].category == "churn" and events[0].occurrences == 5
    assert (events[0].start_line, events[0].end_line) == (10, 11)


def test_edits_spread_over_a_file_are_not_churn() -> None:
    detector, clock = make()
    events = []
    for n in range(20):
        clock.advance(30)
        events += detector.observe_edit(URI, range(n * 10, n * 10 + 1), None)
    assert events == []
