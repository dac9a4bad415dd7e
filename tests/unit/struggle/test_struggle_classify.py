"""Table test: real error messages from five languages land in the expected category."""

from __future__ import annotations

from typing import Any

import pytest

from leo_lsp.errors import UpstreamError
from leo_lsp.struggle.classify import CATEGORIES, LlmClassifier, classify

# (language, message, code, source, expected category)
TABLE: list[tuple[str, str, str | int | None, str | None, str]] = [
    # Python
    ("python", "NameError: name 'foo' is not defined", None, None, "name"),
    (
        "python",
        "UnboundLocalError: cannot access local variable 'x' where it is not associated "
        "with a value",
        None,
        None,
        "name",
    ),
    ("python", "AttributeError: 'NoneType' object has no attribute 'group'", None, None, "null"),
    ("python", "TypeError: 'NoneType' object is not subscriptable", None, None, "null"),
    ("python", "TypeError: unsupported operand type(s) for +: 'int' and 'str'", None, None, "type"),
    ("python", "TypeError: f() missing 1 required positional argument: 'b'", None, None, "type"),
    ("python", "ModuleNotFoundError: No module named 'requests'", None, None, "import"),
    (
        "python",
        "ImportError: cannot import name 'foo' from 'bar' (/x/bar.py)",
        None,
        None,
        "import",
    ),
    (
        "python",
        '  File "x.py", line 3\n    def f(:\n          ^\nSyntaxError: invalid syntax',
        None,
        None,
        "syntax",
    ),
    (
        "python",
        "IndentationError: expected an indented block after function definition on line 1",
        None,
        None,
        "syntax",
    ),
    ("python", "RuntimeWarning: coroutine 'fetch' was never awaited", None, None, "async"),
    ("python", "AttributeError: 'coroutine' object has no attribute 'json'", None, None, "async"),
    (
        "python",
        "RuntimeError: asyncio.run() cannot be called from a running event loop",
        None,
        None,
        "async",
    ),
    ("python", "FAILED tests/test_a.py::test_sum - assert 3 == 4", None, None, "test"),
    ("python", "AssertionError: assert [1, 2] == [1, 3]", None, None, "test"),
    ("python", '"foo" is not defined', "reportUndefinedVariable", "Pyright", "name"),
    (
        "python",
        '"group" is not a known attribute of "None"',
        "reportOptionalMemberAccess",
        "Pyright",
        "null",
    ),
    ("python", 'Import "numpy" could not be resolved', "reportMissingImports", "Pyright", "import"),
    (
        "python",
        'Item "None" of "Optional[Match[str]]" has no attribute "group"',
        "union-attr",
        "mypy",
        "null",
    ),
    (
        "python",
        'Incompatible types in assignment (expression has type "str", variable has type "int")',
        "assignment",
        "mypy",
        "type",
    ),
    ("python", "Undefined name `foo`", "F821", "Ruff", "name"),
    (
        "python",
        "ERROR: Could not find a version that satisfies the requirement torchz",
        None,
        None,
        "build",
    ),
    # TypeScript / JavaScript
    ("javascript", "TypeError: Cannot read property 'map' of undefined", None, None, "null"),
    (
        "javascript",
        "Uncaught TypeError: Cannot read properties of null (reading 'addEventListener')",
        None,
        None,
        "null",
    ),
    ("javascript", "TypeError: undefined is not an object (evaluating 'a.b')", None, None, "null"),
    ("javascript", "ReferenceError: fetchData is not defined", None, None, "name"),
    ("javascript", "TypeError: items.map is not a function", None, None, "type"),
    ("javascript", "SyntaxError: Unexpected token '}'", None, None, "syntax"),
    (
        "javascript",
        "Error: Cannot find module 'express'\nRequire stack:\n- /app/index.js",
        None,
        None,
        "import",
    ),
    (
        "javascript",
        "SyntaxError: Cannot use import statement outside a module",
        None,
        None,
        "import",
    ),
    (
        "javascript",
        "SyntaxError: await is only valid in async functions and the top level bodies of modules",
        None,
        None,
        "async",
    ),
    (
        "javascript",
        "UnhandledPromiseRejectionWarning: Error: connect ECONNREFUSED",
        None,
        None,
        "async",
    ),
    (
        "javascript",
        "expect(received).toBe(expected) // Object.is equality\n\nExpected: 4\nReceived: 5",
        None,
        None,
        "test",
    ),
    (
        "javascript",
        "npm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree",
        None,
        None,
        "build",
    ),
    ("typescript", "Type 'string' is not assignable to type 'number'.", 2322, "ts", "type"),
    ("typescript", "Property 'foo' does not exist on type 'Bar'.", 2339, "ts", "type"),
    ("typescript", "Cannot find name 'useState'.", 2304, "ts", "name"),
    (
        "typescript",
        "Cannot find module './utils' or its corresponding type declarations.",
        2307,
        "ts",
        "import",
    ),
    ("typescript", "';' expected.", 1005, "ts", "syntax"),
    ("typescript", "Object is possibly 'undefined'.", 2532, "ts", "null"),
    ("typescript", "'user' is possibly 'null'.", 18047, "typescript", "null"),
    (
        "typescript",
        "src/app.ts(4,10): error TS2345: Argument of type 'number' is not assignable "
        "to parameter of type 'string'.",
        None,
        None,
        "type",
    ),
    (
        "typescript",
        "'await' expressions are only allowed within async functions and at the top "
        "levels of modules.",
        "1308",
        "ts",
        "async",
    ),
    ("typescript", "error TS5023: Unknown compiler option 'foo'.", None, None, "build"),
    # Go
    ("go", "./main.go:12:5: undefined: fooBar", None, None, "name"),
    ("go", "./main.go:8:2: x declared and not used", None, None, "name"),
    ("go", './main.go:3:2: "os" imported and not used', None, None, "import"),
    ("go", "cannot use x (variable of type int) as string value in assignment", None, None, "type"),
    ("go", "invalid operation: a + b (mismatched types int and string)", None, None, "type"),
    ("go", "syntax error: unexpected newline, expected comma or }", None, None, "syntax"),
    (
        "go",
        "panic: runtime error: invalid memory address or nil pointer dereference\n[signal "
        "SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48f4d2]",
        None,
        None,
        "null",
    ),
    ("go", "panic: assignment to entry in nil map", None, None, "null"),
    ("go", "fatal error: all goroutines are asleep - deadlock!", None, None, "async"),
    ("go", "--- FAIL: TestAdd (0.00s)\n    add_test.go:9: got 3, want 4", None, None, "test"),
    (
        "go",
        "main.go:4:2: no required module provides package github.com/x/y; to add it:",
        None,
        None,
        "import",
    ),
    (
        "go",
        "go: go.mod file not found in current directory or any parent directory",
        None,
        None,
        "build",
    ),
    ("go", "undefined: Foo", "UndeclaredName", "compiler", "name"),
    # Rust
    ("rust", "error[E0308]: mismatched types\n --> src/main.rs:4:18", None, None, "type"),
    ("rust", "cannot find value `foo` in this scope", "E0425", "rustc", "name"),
    (
        "rust",
        "error[E0433]: failed to resolve: use of undeclared crate or module `serde`",
        None,
        None,
        "import",
    ),
    ("rust", "error[E0382]: borrow of moved value: `v`", None, None, "type"),
    (
        "rust",
        "error[E0502]: cannot borrow `v` as mutable because it is also borrowed as immutable",
        None,
        None,
        "type",
    ),
    ("rust", "error[E0432]: unresolved import `crate::utils`", None, None, "import"),
    (
        "rust",
        "error: expected one of `.`, `;`, `?`, `}`, or an operator, found `let`",
        None,
        None,
        "syntax",
    ),
    (
        "rust",
        "thread 'main' panicked at src/main.rs:3:30:\ncalled `Option::unwrap()` on a `None` value",
        None,
        None,
        "null",
    ),
    (
        "rust",
        "error[E0728]: `await` is only allowed inside `async` functions and blocks",
        None,
        None,
        "async",
    ),
    (
        "rust",
        "thread 'tests::it_adds' panicked at src/lib.rs:10:9:\nassertion `left == right` "
        "failed\n  left: 3\n right: 4",
        None,
        None,
        "test",
    ),
    # Java
    (
        "java",
        "Foo.java:5: error: cannot find symbol\n    symbol:   variable x\n  location: class Foo",
        None,
        None,
        "name",
    ),
    (
        "java",
        'Exception in thread "main" java.lang.NullPointerException: Cannot invoke '
        '"String.length()" because "<local1>" is null',
        None,
        None,
        "null",
    ),
    ("java", "error: incompatible types: String cannot be converted to int", None, None, "type"),
    ("java", "error: ';' expected", None, None, "syntax"),
    ("java", "error: package org.junit does not exist", None, None, "import"),
    ("java", "org.opentest4j.AssertionFailedError: expected: <1> but was: <2>", None, None, "test"),
    (
        "java",
        "error: method add in class Calc cannot be applied to given types;",
        None,
        None,
        "type",
    ),
    (
        "java",
        "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-compiler-plugin:3.8.1"
        ":compile",
        None,
        None,
        "build",
    ),
    ("java", "error: variable count might not have been initialized", None, None, "name"),
    ("java", "error: reached end of file while parsing", None, None, "syntax"),
]


@pytest.mark.parametrize(("language", "message", "code", "source", "expected"), TABLE)
def test_classification_table(
    language: str, message: str, code: str | int | None, source: str | None, expected: str
) -> None:
    result = classify(message, language, code, source)
    assert result.category == expected, (message, result)
    assert result.confidence >= 0.5
    assert result.explanation and "\n" not in result.explanation


def test_table_is_broad() -> None:
    languages = {row[0] for row in TABLE}
    assert {"python", "javascript", "typescript", "go", "rust", "java"} <= languages
    assert len(TABLE) >= 30
    assert {row[4] for row in TABLE} == set(CATEGORIES) - {"other"}


def test_unknown_message_is_other_with_low_confidence() -> None:
    result = classify("the frobnicator wobbled unexpectedly", "python")
    assert result.category == "other"
    assert result.confidence < 0.5


def test_code_outranks_message() -> None:
    # tsserver sends the code apart from the message; the code alone decides.
    assert classify("Something odd.", "typescript", 2307, "ts").category == "import"
    assert classify("Something odd.", "rust", "E0502", "rustc").category == "type"
    assert "borrow" in classify("x", "rust", "E0502").explanation


async def test_llm_used_only_for_other_and_cached() -> None:
    calls: list[dict[str, Any]] = []

    async def chat_json(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return {
            "category": "build",
            "explanation": "The linker script is\nbroken.",
            "confidence": 2,
        }

    llm = LlmClassifier(chat_json, model="small")
    first = await llm.classify("the frobnicator wobbled at 0x1f", "c")
    second = await llm.classify("the frobnicator wobbled at 0x2e", "c")  # same signature
    ruled = await llm.classify("NameError: name 'x' is not defined", "python")
    assert first.category == "build" and first.source == "llm"
    assert first.explanation == "The linker script is broken."
    assert first.confidence <= 0.8
    assert second == first
    assert ruled.category == "name" and ruled.source == "rules"
    assert len(calls) == 1
    assert calls[0]["model"] == "small" and calls[0]["schema_name"] == "struggle_category"
    assert calls[0]["schema"]["properties"]["category"]["enum"] == list(CATEGORIES)


async def test_llm_failure_falls_back_to_rules() -> None:
    async def down(**kwargs: Any) -> dict[str, Any]:
        raise UpstreamError("LM Studio is not running")

    async def garbage(**kwargs: Any) -> dict[str, Any]:
        return {"category": "weather", "explanation": "sunny"}

    for chat in (down, garbage):
        result = await LlmClassifier(chat, model="m").classify("the frobnicator wobbled", "c")
        assert result.category == "other" and result.source == "rules"
