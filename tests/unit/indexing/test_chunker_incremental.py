"""ParsedDocument: incremental re-parse and re-chunk equals chunking the new text from scratch."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leo_lsp.indexing.chunker import Chunker, ParsedDocument, _diff

BASE_PY = '''import os


class Greeter:
    """Says hello."""

    def greet(self, name):
        return f"hello {name}"

    def shout(self, name):
        return self.greet(name).upper()


def main():
    print(Greeter().greet("x"))


if __name__ == "__main__":
    main()
'''
BASE_TS = """export interface User {
  id: number;
}

export class Users {
  find(id: number): User | undefined {
    return undefined;
  }
}

const double = (x: number) => {
  return x * 2;
};
"""
INSERTS = [
    "",
    "\n",
    "x",
    "    ",
    "def f():\n    pass\n",
    "class B:\n    def m(self):\n        return 1\n",
    "}",
    "{",
    "(",
    "'''",
    "é😀中",
    "function g() {\n  return 1;\n}\n",
    "# note\n",
    "\n\n\n",
]

edit = st.tuples(st.floats(0, 1), st.integers(0, 40), st.sampled_from(INSERTS))


def _apply(text: str, where: float, length: int, insert: str) -> str:
    start = int(where * len(text))
    return text[:start] + insert + text[start + length :]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([("python", BASE_PY), ("typescript", BASE_TS)]), st.lists(edit, max_size=12))
# The same group text parsed differently by error recovery: the cache once reused the old pieces.
@example(("python", BASE_PY), [(0.5625, 37, "# note\n"), (0.109375, 24, ""), (0.5, 6, "")])
def test_incremental_equals_full(
    base: tuple[str, str], edits: list[tuple[float, int, str]]
) -> None:
    language, text = base
    doc = ParsedDocument("f", language, text)
    assert doc.chunks == Chunker().chunk(text, "f", language)
    for where, length, insert in edits:
        text = _apply(text, where, length, insert)
        assert doc.update(text) == Chunker().chunk(text, "f", language)
        assert doc.text == text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(edit, min_size=1, max_size=6))
def test_incremental_equals_full_on_a_real_file(edits: list[tuple[float, int, str]]) -> None:
    text = (Path(os.__file__).parent / "argparse.py").read_text(encoding="utf-8")
    doc = ParsedDocument("argparse.py", "python", text)
    for where, length, insert in edits:
        text = _apply(text, where, length, insert)
        assert doc.update(text) == Chunker().chunk(text, "argparse.py", "python")


def test_one_line_edit_reuses_unchanged_chunks() -> None:
    text = "".join(f"def f{i}(a):\n    return a + {i}\n\n\n" for i in range(300))
    doc = ParsedDocument("m.py", "python", text)
    before = doc.chunks
    lines = text.split("\n")
    lines[600] = lines[600] + " + 1"  # inside f150's body
    after = doc.update("\n".join(lines))
    assert len(after) == len(before) == 300
    pairs = enumerate(zip(before, after, strict=True))
    changed = [i for i, (a, b) in pairs if (a.text, a.start_line) != (b.text, b.start_line)]
    assert changed == [150]
    assert after[:150] == before[:150]  # chunks before the edit are the very same
    assert after[151].start_byte == before[151].start_byte + 4
    # Inserting a line shifts the chunks after the edit by one line.
    lines.insert(10, "x = 1")
    shifted = doc.update("\n".join(lines))
    assert shifted[-1].start_line == after[-1].start_line + 1
    assert shifted == Chunker().chunk("\n".join(lines), "m.py", "python")


def test_text_language_and_minified_fall_back_to_full_chunking() -> None:
    doc = ParsedDocument("notes.txt", "text", "a\n\nb\n")
    assert [c.kind for c in doc.chunks] == ["window"]
    assert doc.update("a\n\nb\nc\n") == Chunker().chunk("a\n\nb\nc\n", "notes.txt", "text")
    minified = "var a=" + ",".join(str(i) for i in range(5000)) + ";"
    js = ParsedDocument("a.min.js", "javascript", "function f() {}\n")
    assert js.update(minified) == Chunker().chunk(minified, "a.min.js", "javascript")
    assert js.update("function g() {\n  return 1;\n}\n")[0].symbol == "g"
    assert js.update("") == []


@given(st.text(alphabet="aé😀\n b", max_size=30), st.text(alphabet="aé😀\n b", max_size=30))
def test_diff_describes_the_edit(old: str, new: str) -> None:
    a, b = old.encode(), new.encode()
    start, old_end, new_end = _diff(a, b)
    assert a[:start] + b[start:new_end] + a[old_end:] == b
    assert a[:start] == b[:start] and a[old_end:] == b[new_end:]
    # Edits start and end on character boundaries.
    b[:start].decode()
    b[start:new_end].decode()
