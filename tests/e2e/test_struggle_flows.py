"""Struggle hints, scripted editor sessions: one hint, fix memory, dismiss, threshold, Helix.

Every wait is on a message from the server (a publishDiagnostics, a command's answer, or a
`leo/indexed`), never a sleep. `Recorder` keeps every publishDiagnostics, not just the last one,
so "never a flood" is checked over the whole session.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

sys.path.insert(0, str(Path(__file__).parent))
from session import command, open_buffer, start  # noqa: E402

pytestmark = pytest.mark.slow

TYPE_ERROR = "TypeError: unsupported operand type(s) for +: 'int' and 'str'"
# The same program in two files: `count + label` adds an int to a str on line 4.
BROKEN_REPORT = (
    "import sys\n\n\ndef report(count, label):\n"
    "    return count + label\n\n\nprint(report(3, ' items'), file=sys.stderr)\n"
)
FIXED_REPORT = (
    "import sys\n\n\ndef report(count, label):\n"
    "    return str(count) + label\n\n\nprint(report(3, ' items'), file=sys.stderr)\n"
)
BROKEN_SUMMARY = "def summary(total, unit):\n    text = total + unit\n    return text.strip()\n"
WORKING = (
    "def describe_basket(count: int, label: str) -> str:\n"
    "    return str(count) + ' ' + label\n\n\n"
    "def describe_weight(grams: int) -> str:\n"
    "    return f'{grams} g'\n"
)


class Recorder(dict[str, Sequence[types.Diagnostic]]):
    """pytest-lsp's client stores only the last publishDiagnostics per uri; keep them all."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[tuple[str, list[types.Diagnostic]]] = []

    def __setitem__(self, uri: str, diagnostics: Sequence[types.Diagnostic]) -> None:
        self.history.append((uri, list(diagnostics)))
        super().__setitem__(uri, diagnostics)

    def leo(self, uri: str) -> list[types.Diagnostic]:
        """The leo hints currently published for `uri`."""
        return [d for d in self.get(uri, []) if d.source == "leo"]

    def published(self, uri: str) -> list[list[types.Diagnostic]]:
        """Every leo set published for `uri`, in order."""
        return [[d for d in ds if d.source == "leo"] for u, ds in self.history if u == uri]


def fix_code_action_structuring(lsp: LanguageClient) -> None:
    """lsprotocol 2025.0.0 structures every `Command | CodeAction` with a `command` key as a
    Command (so a CodeAction's command object becomes a string); tell them apart by its type."""
    converter = lsp.protocol._converter

    def hook(obj: Any, _: Any) -> types.Command | types.CodeAction:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], hook)  # noqa: UP007


async def session(ws: Path, data: Path, **options: Any) -> tuple[LanguageClient, Recorder]:
    opts = {"index": {"debounceMs": 20}, **options}
    lsp = await start(ws, data, options=opts)
    recorder = Recorder()
    lsp.diagnostics = recorder
    return lsp, recorder


def workspace(tmp: Path) -> Path:
    ws = tmp / "ws"
    ws.mkdir()
    (ws / "baskets.py").write_text(WORKING)
    return ws


async def until(
    lsp: LanguageClient, recorder: Recorder, uri: str, ok: Callable[[list[types.Diagnostic]], bool]
) -> list[types.Diagnostic]:
    """Wait for publishDiagnostics until `uri`'s leo set satisfies `ok`; return that set."""
    for _ in range(200):
        if uri in recorder and ok(recorder.leo(uri)):
            return recorder.leo(uri)
        await asyncio.wait_for(
            lsp.protocol.wait_for_notification_async("textDocument/publishDiagnostics"), 60
        )
    raise AssertionError(f"no matching publishDiagnostics for {uri}: {recorder.get(uri)}")


def change(lsp: LanguageClient, uri: str, version: int, text: str) -> None:
    lsp.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def forward(lsp: LanguageClient, uri: str, line: int | None, message: str = TYPE_ERROR) -> None:
    """What the VS Code extension / Neovim plugin send for pyright's diagnostics of `uri`."""
    lines = [] if line is None else [line]
    diagnostics = [
        {
            "range": {"start": {"line": n, "character": 11}, "end": {"line": n, "character": 30}},
            "message": message,
            "severity": 1,
            "source": "Pyright",
        }
        for n in lines
    ]
    lsp.protocol.notify("leo/observeDiagnostics", {"uri": uri, "diagnostics": diagnostics})


async def struggle_row(lsp: LanguageClient, occurrences: int) -> dict[str, Any]:
    """Ask leo.struggles until the newest row has counted `occurrences` (all forwards handled)."""
    for _ in range(500):
        rows = await command(lsp, "leo.struggles")
        if rows and rows[0]["occurrences"] >= occurrences:
            assert rows[0]["occurrences"] == occurrences, rows[0]
            return dict(rows[0])
    raise AssertionError(f"leo.struggles never reached {occurrences} occurrences")


async def struggle_in(
    lsp: LanguageClient, recorder: Recorder, path: Path, text: str, line: int, first_version: int
) -> types.Diagnostic:
    """Open `path` and forward the TypeError three times, the text changing between forwards."""
    uri = path.as_uri()
    await open_buffer(lsp, path, text, "python", version=first_version)
    for n in range(1, 4):
        change(lsp, uri, first_version + n, text + f"# attempt {n}\n")
        forward(lsp, uri, line)
    (hint,) = await until(lsp, recorder, uri, bool)
    return hint


async def test_same_type_error_three_times_gives_one_hint_never_a_flood(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    lsp, recorder = await session(ws, tmp_path / "data")
    try:
        await command(lsp, "leo.indexWorkspace")
        path = ws / "report.py"
        uri = path.as_uri()
        hint = await struggle_in(lsp, recorder, path, BROKEN_REPORT, 4, 1)
        assert hint.code == "struggle/type"
        assert hint.severity == types.DiagnosticSeverity.Hint
        assert hint.range.start.line == 4
        assert "seen 3 times" in hint.message and "type does not match" in hint.message
        related = hint.related_information or []
        assert related, "a hint points at code to look at"
        # Working code elsewhere that does the same (str + int done right) comes first.
        assert related[0].location.uri == (ws / "baskets.py").as_uri(), related
        assert related[0].message == "similar code: describe_basket"
        assert all(r.location.range.start.line != 4 for r in related if r.location.uri == uri)
        assert hint.data["category"] == "type"

        # Ten more attempts, one of them reporting the error twice: still one hint.
        for n in range(10):
            change(lsp, uri, 10 + n, BROKEN_REPORT + f"# retry {n}\n")
            if n == 5:
                lsp.protocol.notify(
                    "leo/observeDiagnostics",
                    {
                        "uri": uri,
                        "diagnostics": [
                            {
                                "range": {
                                    "start": {"line": ln, "character": 0},
                                    "end": {"line": ln, "character": 9},
                                },
                                "message": TYPE_ERROR,
                                "severity": 1,
                            }
                            for ln in (4, 7)
                        ],
                    },
                )
            else:
                forward(lsp, uri, 4)
        hints = await until(lsp, recorder, uri, lambda ds: any("13 times" in d.message for d in ds))
        assert len(hints) == 1 and hints[0].code == "struggle/type"
        assert all(len(leo) <= 1 for leo in recorder.published(uri)), recorder.published(uri)
        row = await struggle_row(lsp, 13)
        assert row["category"] == "type" and row["files"] == [uri] and row["open"] is True
    finally:
        await lsp.shutdown_session()


async def test_a_fix_is_remembered_and_shown_in_another_file(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    lsp, recorder = await session(ws, tmp_path / "data")
    try:
        await command(lsp, "leo.indexWorkspace")
        first = ws / "report.py"
        await struggle_in(lsp, recorder, first, BROKEN_REPORT, 4, 1)
        # The developer fixes line 4; the checker's next two passes show no error (resolve_after).
        change(lsp, first.as_uri(), 5, FIXED_REPORT)
        forward(lsp, first.as_uri(), None)
        change(lsp, first.as_uri(), 6, FIXED_REPORT + "# done\n")
        forward(lsp, first.as_uri(), None)
        await until(lsp, recorder, first.as_uri(), lambda ds: not ds)

        second = ws / "summary.py"
        hint = await struggle_in(lsp, recorder, second, BROKEN_SUMMARY, 1, 1)
        assert hint.code == "struggle/type"
        assert "you fixed this before" in hint.message
        fixes = [r for r in hint.related_information or [] if "past fix" in r.message]
        assert len(fixes) == 1, hint.related_information
        fix = fixes[0]
        assert fix.location.uri == first.as_uri()
        assert fix.location.range.start.line == 4  # the fixed line, in the text after the fix
        assert fix.message == "past fix of this error (in another file): return str(count) + label"
        rows = await command(lsp, "leo.struggles")
        assert set(rows[0]["files"]) == {first.as_uri(), second.as_uri()}
    finally:
        await lsp.shutdown_session()


async def test_dismissing_through_the_code_action_keeps_the_hint_away(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    lsp, recorder = await session(ws, tmp_path / "data")
    try:
        await command(lsp, "leo.indexWorkspace")
        path = ws / "report.py"
        uri = path.as_uri()
        hint = await struggle_in(lsp, recorder, path, BROKEN_REPORT, 4, 1)
        fix_code_action_structuring(lsp)
        actions = await lsp.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=hint.range,
                context=types.CodeActionContext(diagnostics=[hint]),
            )
        )
        dismiss = [a for a in actions or [] if isinstance(a, types.CodeAction) and a.command]
        dismiss = [a for a in dismiss if a.command and a.command.command == "leo.dismissHint"]
        assert len(dismiss) == 1 and dismiss[0].title == "leo: dismiss this hint"
        cmd = dismiss[0].command
        assert cmd is not None
        answer = await lsp.workspace_execute_command_async(
            types.ExecuteCommandParams(command=cmd.command, arguments=cmd.arguments)
        )
        assert answer == {"dismissed": True}
        await until(lsp, recorder, uri, lambda ds: not ds)
        published = len(recorder.published(uri))

        # The error keeps coming back within the window: it is counted, never shown.
        for n in range(5):
            change(lsp, uri, 10 + n, BROKEN_REPORT + f"# retry {n}\n")
            forward(lsp, uri, 4)
        # leo.reportStruggle answers after the struggle is handled, and notifications count before
        # they await anything: the probe sees all five recurrences (3 + 5 + itself).
        probe = await command(
            lsp,
            "leo.reportStruggle",
            {"errorMessage": TYPE_ERROR, "uri": uri, "language": "python"},
        )
        assert probe["open"] is True and probe["occurrences"] == 9
        assert "hint" not in probe
        assert all(not leo for leo in recorder.published(uri)[published:])
        assert recorder.leo(uri) == []
    finally:
        await lsp.shutdown_session()


@pytest.mark.parametrize(("threshold", "forwards"), [(3, 2), (6, 3)])
async def test_below_the_threshold_there_is_no_hint(
    tmp_path: Path, threshold: int, forwards: int
) -> None:
    # Consecutive attempts score 1, 1.5, 2, 2.5: two stay below 3, three below 6; one more
    # crosses either threshold.
    ws = workspace(tmp_path)
    lsp, recorder = await session(ws, tmp_path / "data", struggle={"threshold": threshold})
    try:
        await command(lsp, "leo.indexWorkspace")
        path = ws / "report.py"
        uri = path.as_uri()
        await open_buffer(lsp, path, BROKEN_REPORT, "python")
        for n in range(forwards):
            change(lsp, uri, 2 + n, BROKEN_REPORT + f"# attempt {n}\n")
            forward(lsp, uri, 4)
        # Notifications are handled in order and count before anything awaits, so the report
        # sees every forward; `opened` says the struggle was not open before it.
        probe = await command(
            lsp,
            "leo.reportStruggle",
            {"errorMessage": TYPE_ERROR, "uri": uri, "language": "python"},
        )
        assert probe["occurrences"] == forwards + 1
        assert probe["opened"] is True and probe["hint"]["code"] == "struggle/type"
        (hint,) = await until(lsp, recorder, uri, bool)
        assert f"seen {forwards + 1} times" in hint.message
        shown = [i for i, leo in enumerate(recorder.published(uri)) if leo]
        assert all(
            f"seen {forwards + 1} times" in d.message
            for i in shown
            for d in recorder.published(uri)[i]
        )
    finally:
        await lsp.shutdown_session()


HELIX_BUFFER = (
    "def parse_header(line):\n"
    "    key, value = line.split(':', 1\n"  # the unclosed call the developer cannot see
    "    return key.strip(), value.strip()\n"
    "\n\n"
    "def parse_body(lines):\n"
    "    return [line.rstrip() for line in lines]\n"
)


async def test_helix_a_persistent_syntax_error_gets_a_hint_without_forwarding(
    tmp_path: Path,
) -> None:
    ws = workspace(tmp_path)
    lsp, recorder = await session(ws, tmp_path / "data")
    try:
        await command(lsp, "leo.indexWorkspace")
        path = ws / "headers.py"
        uri = path.as_uri()
        await open_buffer(lsp, path, HELIX_BUFFER, "python")
        lines = HELIX_BUFFER.count("\n")
        # Helix sends incremental changes and never forwards other servers' diagnostics: the
        # developer keeps working further down while the broken call stays broken. The open
        # counts once, each re-parse with the same broken line again: 1 + 1.5 + 2 ≥ 3.
        for n in range(2):
            assert recorder.leo(uri) == []
            waiter = lsp.protocol.wait_for_notification_async("leo/indexed")
            line = lines + n
            lsp.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2 + n),
                    content_changes=[
                        types.TextDocumentContentChangePartial(
                            range=types.Range(
                                start=types.Position(line=line, character=0),
                                end=types.Position(line=line, character=0),
                            ),
                            text=f"# step {n}\n",
                        )
                    ],
                )
            )
            await asyncio.wait_for(waiter, 60)
        (hint,) = await until(lsp, recorder, uri, bool)
        assert hint.code == "struggle/syntax"
        assert hint.range.start.line == 1
        assert "parser cannot read this code" in hint.message
        rows = await command(lsp, "leo.struggles")
        assert rows[0]["category"] == "syntax" and rows[0]["files"] == [uri]
    finally:
        await lsp.shutdown_session()
