"""Language detection and grammar loading for every language in the table."""

from __future__ import annotations

import pytest
import tree_sitter

from leo_lsp.indexing import chunker
from leo_lsp.indexing.languages import LANGUAGES, detect_language, get_language


@pytest.mark.parametrize(
    ("path", "language_id", "expected"),
    [
        ("src/app.py", None, "python"),
        ("src/app.pyi", None, "python"),
        ("web/main.js", None, "javascript"),
        ("web/main.mjs", None, "javascript"),
        ("web/Button.jsx", None, "jsx"),
        ("web/x.ts", None, "typescript"),
        ("web/App.tsx", None, "tsx"),
        ("cmd/main.go", None, "go"),
        ("src/lib.rs", None, "rust"),
        ("A.java", None, "java"),
        ("list.c", None, "c"),
        ("list.h", None, "c"),
        ("shape.cpp", None, "cpp"),
        ("shape.hpp", None, "cpp"),
        ("Greeter.cs", None, "c_sharp"),
        ("greeter.rb", None, "ruby"),
        ("Rakefile", None, "ruby"),
        ("index.php", None, "php"),
        ("Main.kt", None, "kotlin"),
        ("Main.swift", None, "swift"),
        ("deploy.sh", None, "bash"),
        ("README.md", None, "markdown"),
        ("notes.txt", None, "text"),
        ("Makefile", None, "text"),
        ("UPPER.PY", None, "python"),
        # The client's languageId wins over the extension.
        ("untitled-1", "python", "python"),
        ("x.txt", "typescriptreact", "tsx"),
        ("x", "javascriptreact", "jsx"),
        ("x", "csharp", "c_sharp"),
        ("x", "shellscript", "bash"),
        ("x.py", "plaintext", "python"),
    ],
)
def test_detect_language(path: str, language_id: str | None, expected: str) -> None:
    assert detect_language(path, language_id) == expected


@pytest.mark.parametrize("name", sorted(LANGUAGES))
def test_every_grammar_loads_parses_and_has_a_query(name: str) -> None:
    language = get_language(name)
    assert isinstance(language, tree_sitter.Language)
    assert get_language(name) is language  # cached
    tree = tree_sitter.Parser(language).parse(b"x\n")
    assert tree.root_node is not None
    source = chunker.load_query_source(name)
    assert source is not None and "@name" in source
    assert chunker.get_query(name) is not None


def test_text_and_unknown_have_no_grammar() -> None:
    assert get_language("text") is None
    assert get_language("cobol") is None
    assert chunker.get_query("text") is None
