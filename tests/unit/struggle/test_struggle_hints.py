"""Hints: explanation, past fixes first, similar code from search without the error's own place."""

from __future__ import annotations

from leo_lsp.records import SearchHit
from leo_lsp.struggle.detector import ObservedDiagnostic, StruggleDetector, StruggleEvent
from leo_lsp.struggle.fixes import Fix
from leo_lsp.struggle.hints import build_hint, build_query

URI = "file:///w/app/src/list.ts"
ERR = "Cannot read properties of undefined (reading 'map')"
LINE = "  const names = users.map((u) => u.name);"


def hit(path: str, start: int, end: int, snippet: str, score: float = 0.5) -> SearchHit:
    return SearchHit(path, start, end, 0, 0, score, "typescript", "render", "function", "", snippet)


def open_event() -> tuple[StruggleDetector, StruggleEvent]:
    clock = [0.0]
    detector = StruggleDetector(3, 600, lambda: clock[0])
    events = []
    for n in range(3):
        clock[0] += 5
        text = f"// {n}\nimport {{ users }} from './users';\nfunction f() {{\n{LINE}\n}}\n"
        events = detector.observe(URI, [ObservedDiagnostic(ERR, 3, 3, 1, None, "ts")], text)
    assert events and events[0].kind == "opened"
    return detector, events[0]


async def test_hint_excludes_same_location_and_prefers_same_api() -> None:
    _, event = open_event()
    queries: list[tuple[str, int]] = []

    async def search(query: str, limit: int) -> list[SearchHit]:
        queries.append((query, limit))
        return [
            hit("/w/app/src/list.ts", 2, 4, LINE, score=0.99),  # the error itself
            hit("src/list.ts", 3, 3, "users.map", score=0.98),  # same place, relative path
            hit("/w/app/src/other.ts", 10, 20, "const total = count + 1;", score=0.9),
            hit("/w/app/src/table.ts", 30, 40, "const rows = (users ?? []).map(toRow);", 0.6),
            hit("/w/app/src/list.ts", 40, 50, "items.map((i) => i.id)", score=0.55),
        ]

    hint = await build_hint(event, search, [])
    assert hint.code == "struggle/null" and hint.severity == "hint" and hint.source == "leo"
    assert (hint.start_line, hint.end_line) == (3, 3)
    assert "3 times" in hint.message and "\n" not in hint.message
    paths = [(r.path, r.start_line) for r in hint.related]
    assert ("/w/app/src/list.ts", 2) not in paths and ("src/list.ts", 3) not in paths
    assert paths[0] == ("/w/app/src/table.ts", 30)  # same API (`map`), another file
    assert all(r.kind == "similar" for r in hint.related) and len(hint.related) == 3
    query = queries[0][0]
    assert "map" in query and "users" in query and "undefined" not in query.split()


async def test_hint_shows_past_fix_first_and_survives_search_failure() -> None:
    _, event = open_event()
    fix = Fix(
        signature=event.signature,
        category="null",
        message="m",
        uri="file:///w/app/src/old.ts",
        start_line=7,
        end_line=7,
        before="const x = data.map(f);",
        after="const x = (data ?? []).map(f);",
        diff="@@ -8 +8 @@\n-const x = data.map(f);\n+const x = (data ?? []).map(f);",
        created_at=0.0,
    )

    async def down(query: str, limit: int) -> list[SearchHit]:
        raise RuntimeError("index not ready")

    hint = await build_hint(event, down, [fix])
    assert [(r.kind, r.path, r.start_line) for r in hint.related] == [
        ("fix", "file:///w/app/src/old.ts", 7)
    ]
    assert "(data ?? []).map(f)" in hint.related[0].message
    assert "fixed this before" in hint.message


def test_query_uses_quoted_api_and_line_identifiers() -> None:
    _, event = open_event()
    query = build_query(event)
    words = query.split()
    assert words[0] == "map"
    assert {"names", "users", "name", "read", "properties", "reading"} <= set(words)
