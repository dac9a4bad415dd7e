"""Signatures stay the same across files, lines, identifiers and values; differ across shapes."""

from __future__ import annotations

import pytest

from leo_lsp.struggle.signatures import headline, language_family, normalise, signature

# Each group: (language, messages that must share one signature)
SAME: list[tuple[str, list[str]]] = [
    (
        "javascript",
        [
            "TypeError: Cannot read property 'map' of undefined",
            "Cannot read property 'filter' of undefined",
            "/home/ann/app/src/list.js:12\nTypeError: Cannot read property 'length' of undefined",
        ],
    ),
    (
        "typescript",
        [
            "src/a.ts(3,7): error TS2339: Property 'map' does not exist on type 'Foo'.",
            "Property 'name' does not exist on type '{ id: number; }'.",
            "lib/b.ts:88:1 - error TS2339: Property 'x' does not exist on type 'Bar<string>'.",
        ],
    ),
    (
        "python",
        [
            "NameError: name 'foo' is not defined",
            "name 'bar' is not defined",
            'Traceback (most recent call last):\n  File "/srv/app/main.py", line 40, in <module>\n'
            "    run()\nNameError: name 'run' is not defined",
        ],
    ),
    (
        "python",
        [
            "AttributeError: 'NoneType' object has no attribute 'group'",
            "AttributeError: 'NoneType' object has no attribute 'split'",
        ],
    ),
    (
        "go",
        [
            "./main.go:12:5: undefined: fooBar",
            "/home/x/proj/pkg/util/strings.go:3:14: undefined: strings2",
        ],
    ),
    (
        "go",
        [
            "cannot use x (variable of type int) as string value in assignment",
            "cannot use count (variable of type int64) as float64 value in assignment",
        ],
    ),
    (
        "go",
        [
            "panic: runtime error: invalid memory address or nil pointer dereference\n"
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48f4d2]",
            "panic: runtime error: invalid memory address or nil pointer dereference\n"
            "[signal SIGSEGV: segmentation violation code=0x2 addr=0x18 pc=0x10a3b7e]",
        ],
    ),
    (
        "rust",
        [
            "error[E0425]: cannot find value `foo` in this scope\n --> src/main.rs:2:13",
            "error[E0425]: cannot find value `total_count` in this scope\n --> src/lib.rs:88:5",
            "cannot find value `x` in this scope",
        ],
    ),
    (
        "rust",
        [
            'error[E0308]: mismatched types\n --> src/main.rs:4:18\n  |\n4 |     let x: i32 = "a";',
            "error[E0308]: mismatched types\n  --> crates/core/src/a.rs:100:9",
        ],
    ),
    (
        "java",
        [
            'Exception in thread "main" java.lang.NullPointerException: Cannot invoke '
            '"String.length()" because "<local1>" is null\n\tat Main.main(Main.java:4)',
            'java.lang.NullPointerException: Cannot invoke "java.util.List.size()" because '
            '"this.items" is null',
        ],
    ),
    (
        "java",
        [
            "Foo.java:5: error: incompatible types: String cannot be converted to int",
            "src/main/java/a/B.java:17: error: incompatible types: List<String> cannot be "
            "converted to Set<Integer>",
        ],
    ),
    (
        "c",
        [
            "segfault at 0x7ffde4a3b2c0 ip 0x55d0 in /usr/lib/libfoo.so",
            "segfault at 0x10 ip 0x4a in /opt/lib/libbar.so",
        ],
    ),
]

DIFFERENT: list[tuple[str, str, str]] = [
    ("python", "NameError: name 'foo' is not defined", "ImportError: No module named 'foo'"),
    ("javascript", "Cannot read property 'map' of undefined", "Cannot read property 'map' of null"),
    ("rust", "error[E0382]: borrow of moved value: `v`", "error[E0425]: cannot find value `v`"),
]


@pytest.mark.parametrize(("language", "messages"), SAME)
def test_same_shape_same_signature(language: str, messages: list[str]) -> None:
    signatures = {signature(m, language) for m in messages}
    assert len(signatures) == 1, [normalise(m) for m in messages]


@pytest.mark.parametrize(("language", "a", "b"), DIFFERENT)
def test_different_shape_different_signature(language: str, a: str, b: str) -> None:
    assert signature(a, language) != signature(b, language)


def test_normalised_text_is_readable_and_stripped() -> None:
    text = normalise("src/a.ts(3,7): error TS2339: Property 'map' does not exist on type 'Foo'.")
    assert text == "Property '_' does not exist on type '_'"
    assert normalise("NameError: name 'foo' is not defined") == "name '_' is not defined"
    assert normalise("expected Vec<Option<i32>>, found HashMap<String, Vec<u8>>") == (
        "expected Vec<_>, found HashMap<_>"
    )
    assert "0x" not in normalise("object at 0x7f3a2b1c4d50 is not callable")
    assert normalise("java.lang.NullPointerException") == "NullPointerException"


def test_signature_is_stable_short_and_family_scoped() -> None:
    sig = signature("Cannot read property 'map' of undefined", "typescriptreact")
    assert sig == signature("Cannot read property 'x' of undefined", "javascript")
    assert sig.startswith("js:") and len(sig) == len("js:") + 12
    # pinned: a signature must not change between releases, or history and fixes are orphaned
    assert sig == signature("Cannot read property 'map' of undefined", "typescript")
    assert signature("x", "python") != signature("x", "go")
    assert language_family(None) == "any"


def test_headline_picks_the_statement_of_the_error() -> None:
    assert (
        headline(
            "Traceback (most recent call last):\n  File \"a.py\", line 1\n    x\nKeyError: 'a'"
        )
        == "KeyError: 'a'"
    )
    assert headline("error[E0308]: mismatched types\n --> src/a.rs:1:1") == (
        "error[E0308]: mismatched types"
    )
