"""Coverage, coordinates and robustness properties of the chunker, on generated and real text."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leo_lsp.indexing.chunker import Chunker, looks_generated
from leo_lsp.records import Chunk

PY_FRAGMENTS = [
    "def f(x):\n    return x\n",
    "class A:\n    '''Doc.'''\n    y = 1\n\n    def m(self):\n        return self.y\n",
    "@decorator\ndef g():\n    pass\n",
    "import os\n",
    "# a comment\n",
    "if x:\n    y = [\n        1,\n    ]\n",
    "for i in range(3):\n    print(i)\n",
    "def broken(:\n",
    "    ",
    "\n\n",
    ")",
    "'''unterminated\n",
    "s = 'é😀中文'\n",
    "async def h():\n    await z()\n",
]
JS_FRAGMENTS = [
    "function f(a) {\n  return a;\n}\n",
    "class C {\n  m() {\n    return 1;\n  }\n}\n",
    "const g = () => {\n  go();\n};\n",
    "}\n",
    "// note\n",
    "let s = '😀';\n",
    "{\n",
    "export default App;\n",
]


def assert_covers(text: str, chunks: list[Chunk]) -> None:
    """Chunks are ordered, disjoint, match their byte ranges and cover all non-blank text once."""
    data = text.encode("utf-8", "surrogatepass")
    covered = bytearray(len(data))
    previous_end = 0
    for c in chunks:
        assert c.start_byte >= previous_end
        assert c.start_byte < c.end_byte
        previous_end = c.end_byte
        assert data[c.start_byte : c.end_byte].decode("utf-8", "surrogatepass") == c.text
        covered[c.start_byte : c.end_byte] = b"\x01" * (c.end_byte - c.start_byte)
        assert c.start_line <= c.end_line
    missing = [m.start() for m in re.finditer(rb"\S", data) if not covered[m.start()]]
    assert missing == []
    # Whole-line chunks: every non-blank line in exactly one chunk.
    if all(c.start_col == 0 for c in chunks) and not looks_generated(text):
        lines = text.split("\n")
        owners = [0] * len(lines)
        for c in chunks:
            for i in range(c.start_line, c.end_line + 1):
                owners[i] += 1
        assert [i for i, line in enumerate(lines) if line.strip() and owners[i] != 1] == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PY_FRAGMENTS), max_size=40))
def test_python_generated_texts_are_covered_exactly_once(parts: list[str]) -> None:
    text = "".join(parts)
    assert_covers(text, Chunker().chunk(text, "gen.py", "python"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(JS_FRAGMENTS), max_size=40))
def test_javascript_generated_texts_are_covered_exactly_once(parts: list[str]) -> None:
    text = "".join(parts)
    assert_covers(text, Chunker().chunk(text, "gen.js", "javascript"))


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab{}();:\n\n  \t#é😀"), max_size=400))
def test_arbitrary_text_is_covered_in_every_mode(text: str) -> None:
    for language in ("python", "rust", "markdown", "text"):
        assert_covers(text, Chunker().chunk(text, "x", language))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(PY_FRAGMENTS), min_size=10, max_size=60))
def test_small_limits_still_cover_and_respect_line_limit(parts: list[str]) -> None:
    text = "".join(parts)
    chunker = Chunker(max_lines=8, max_chars=200)
    chunks = chunker.chunk(text, "gen.py", "python")
    assert_covers(text, chunks)
    # A chunk exceeds the line limit only by crumbs folded into it (a closing line or two).
    assert all(c.end_line - c.start_line + 1 <= 8 + 3 for c in chunks)


def test_real_stdlib_files_are_covered_exactly_once() -> None:
    stdlib = Path(os.__file__).parent
    files = sorted(stdlib.glob("*.py"))[::7][:40]
    assert len(files) >= 20
    chunker = Chunker()
    total = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        chunks = chunker.chunk(text, str(path), "python")
        assert_covers(text, chunks)
        total += len(chunks)
    assert total > 100


def test_long_function_is_split_with_signature_as_context() -> None:
    body = "".join(f"    value_{i} = compute({i}, 'some argument text')\n" for i in range(150))
    text = f"def very_long(alpha, beta):\n{body}    return value_0\n"
    chunks = Chunker().chunk(text, "long.py", "python")
    assert len(chunks) >= 3
    assert all(c.symbol == "very_long" and c.kind == "function" for c in chunks)
    assert chunks[0].context == ""
    assert all(c.context == "def very_long(alpha, beta):" for c in chunks[1:])
    assert all(c.end_line - c.start_line + 1 <= 60 for c in chunks)
    assert all(sum(len(x.strip()) + 1 for x in c.text.split("\n")) <= 1500 for c in chunks)
    assert_covers(text, chunks)


def test_top_level_code_between_definitions_becomes_blocks() -> None:
    text = (
        "import os\nimport sys\n\nCONFIG = {'a': 1, 'b': 2, 'c': 3}\n\n"
        "def f():\n    return 1\n\n"
        "handlers = [f for _ in range(3)]\nregistry = dict(zip('abc', handlers))\n\n"
        "def g():\n    return 2\n"
    )
    chunks = Chunker().chunk(text, "m.py", "python")
    kinds = [(c.kind, c.symbol) for c in chunks]
    assert kinds == [("block", ""), ("function", "f"), ("block", ""), ("function", "g")]
    assert chunks[0].text.startswith("import os") and "CONFIG" in chunks[0].text
    assert "registry" in chunks[2].text


def test_tiny_closing_crumbs_merge_and_comments_attach() -> None:
    text = (
        "// Adds two numbers.\nfunction add(a, b) {\n  return a + b;\n}\n\n"
        "class K {\n  m() {\n    return 1;\n  }\n}\n"
    )
    chunks = Chunker().chunk(text, "k.js", "javascript")
    assert [(c.kind, c.symbol, c.scope) for c in chunks] == [
        ("function", "add", ""),
        ("class", "K", ""),
        ("method", "m", "K"),
    ]
    assert chunks[0].text.startswith("// Adds two numbers.")
    assert chunks[2].text.endswith("}\n}")  # the class's closing brace joined its last method


def test_utf16_columns_on_emoji_and_cjk_lines() -> None:
    text = 'def f():\n    return "😀中文"\n'
    (chunk,) = Chunker().chunk(text, "u.py", "python")
    last = '    return "😀中文"'
    assert chunk.end_line == 1
    assert chunk.end_col == len(last) + 1  # the emoji is two UTF-16 code units
    assert chunk.end_byte == len(text.encode()) - 1
    # Byte windows of generated text report UTF-16 columns in the middle of a line.
    line = ("😀中" * 40 + " ") * 60
    windows = Chunker(max_chars=300).chunk(line, "min.js", "javascript")
    assert len(windows) > 1 and all(w.kind == "window" for w in windows)
    second = windows[1]
    prefix_chars = len(line.encode()[: second.start_byte].decode())
    assert second.start_col == len(line[:prefix_chars].encode("utf-16-le")) // 2
    assert second.start_byte == len(line[:prefix_chars].encode())
    assert_covers(line, windows)


def test_syntax_errors_still_chunk() -> None:
    text = (
        "def ok():\n    return 1\n\n"
        "def broken(x):\n    x = = 2\n    return )\n\n"
        "class Fine:\n    def m(self):\n        return 2\n"
    )
    chunks = Chunker().chunk(text, "e.py", "python")
    assert_covers(text, chunks)
    assert [(c.symbol, c.kind) for c in chunks] == [
        ("ok", "function"),
        ("broken", "function"),
        ("Fine", "class"),
        ("m", "method"),
    ]
    # An error that swallows the rest of the file still leaves every line in a chunk.
    wrecked = "def ok():\n    return 1\n\ndef broken(:\n    )))\nclass Fine:\n    pass\n"
    chunks = Chunker().chunk(wrecked, "w.py", "python")
    assert_covers(wrecked, chunks)
    assert chunks[0].symbol == "ok"


def test_text_without_grammar_gets_line_windows_at_blank_lines() -> None:
    paragraphs = ["\n".join(f"line {p}.{i} of prose" for i in range(15)) for p in range(6)]
    text = "\n\n".join(paragraphs) + "\n"
    chunks = Chunker().chunk(text, "notes.txt", "text")
    assert all(c.kind == "window" for c in chunks)
    assert all(c.end_line - c.start_line + 1 <= 40 for c in chunks)
    # Windows break where paragraphs break.
    assert all(c.text.split("\n")[0].endswith(".0 of prose") for c in chunks)
    assert_covers(text, chunks)


def test_minified_text_is_cut_into_bounded_windows() -> None:
    text = "var a=" + ",".join(f"function(x){{return x+{i}}}" for i in range(3000)) + ";\n"
    assert looks_generated(text)
    chunks = Chunker().chunk(text, "bundle.min.js", "javascript")
    assert len(chunks) > 10
    assert all(len(c.text) <= 1500 and c.kind == "window" for c in chunks)
    assert_covers(text, chunks)


def test_low_letter_share_counts_as_generated() -> None:
    text = "\n".join(", ".join(str(i * j) for j in range(20)) for i in range(200))
    assert looks_generated(text)
    assert not looks_generated(Path(os.__file__).read_text(encoding="utf-8"))


def test_deep_nesting_does_not_recurse_past_the_limit() -> None:
    depth = sys.getrecursionlimit() + 500
    text = "".join("  " * i + f"def f{i}():\n" for i in range(depth)) + "  " * depth + "pass\n"
    chunks = Chunker().chunk(text, "deep.py", "python")
    assert_covers(text, chunks)
    nested = "x = " + "[" * 3000 + "]" * 3000 + "\n"
    assert_covers(nested, Chunker().chunk(nested, "n.py", "python"))


def test_large_document_is_parsed_in_segments_with_same_coverage() -> None:
    unit = "".join(f"def f{i}(a):\n    return a + {i}\n\n\n" for i in range(400))
    text = unit * 3
    small = Chunker(segment_bytes=len(unit.encode()) // 2)
    segmented = small.chunk(text, "big.py", "python")
    whole = Chunker().chunk(text, "big.py", "python")
    assert_covers(text, segmented)
    assert [(c.symbol, c.start_line) for c in segmented] == [
        (c.symbol, c.start_line) for c in whole
    ]


def test_empty_and_blank_documents_have_no_chunks() -> None:
    assert Chunker().chunk("", "a.py", "python") == []
    assert Chunker().chunk("\n  \n\t\n", "a.py", "python") == []
