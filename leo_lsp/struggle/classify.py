"""Place an error message in a category, by rules first and an LLM only for what they cannot place.

Categories (the `struggle/<category>` diagnostic code): syntax, type, null (null/undefined/None
access), name (undefined name or reference), import (module resolution), async (async/await,
promises, futures, goroutines), test (a failing assertion or test), build (build tool or
configuration), other.

Rules are checked in order: the diagnostic's code (TS2322, E0308, pyright/mypy/ruff rule names,
gopls codes), then message patterns from the common compilers and runtimes of Python,
TypeScript/JavaScript, Go, Rust and Java, then broad fallbacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from leo_lsp.struggle.signatures import error_code, headline, language_family, signature

logger = logging.getLogger(__name__)

SYNTAX = "syntax"
TYPE = "type"
NULL = "null"
NAME = "name"
IMPORT = "import"
ASYNC = "async"
TEST = "test"
BUILD = "build"
OTHER = "other"
CATEGORIES: tuple[str, ...] = (SYNTAX, TYPE, NULL, NAME, IMPORT, ASYNC, TEST, BUILD, OTHER)
"""Every category `classify` returns."""

MAX_MESSAGE_CHARS = 4000
MAX_HEADLINE_CHARS = 500
RULE_CONFIDENCE_FLOOR = 0.5
"""An `other` below this means no rule matched; only then is the LLM asked."""


@dataclass(frozen=True, slots=True)
class Classification:
    """A category, how sure the classifier is (0–1) and a one-line explanation for a developer."""

    category: str
    confidence: float
    explanation: str
    source: str = "rules"  # rules | llm


_EXPLAIN = {
    SYNTAX: "The parser cannot read this code: look for an unclosed bracket, quote or a missing "
    "separator just before the marked spot.",
    TYPE: "A value's type does not match what this code expects: check the declared type and "
    "what is actually passed or returned.",
    NULL: "A value is null/undefined/None where an object is needed: check where it is assigned "
    "or guard it before use.",
    NAME: "A name is used that is not defined in this scope: check spelling, declaration order "
    "and imports.",
    IMPORT: "A module or package cannot be resolved: check the import path, the installed "
    "dependencies and the module settings.",
    ASYNC: "Asynchronous code is used wrongly: a missing await/async, or a promise, future or "
    "goroutine not handled.",
    TEST: "A test assertion fails: compare the expected and the actual value in the output.",
    BUILD: "The build or project configuration fails: check the build file, toolchain version "
    "and dependency manifest.",
    OTHER: "An error leo has no specific advice for.",
}

# --- by code ---------------------------------------------------------------------------------

_TS_CODES: dict[int, tuple[str, str]] = {
    1005: (SYNTAX, "A token is missing, often a ',' ';' ')' or '}' just before this spot."),
    1109: (SYNTAX, "An expression is expected here; a token before it is missing or extra."),
    1128: (SYNTAX, "A statement or declaration is expected: a brace is probably unbalanced."),
    1308: (ASYNC, "'await' is only allowed inside an async function: mark the function async."),
    1375: (ASYNC, "Top-level 'await' needs an ES module target ('module' ≥ es2022)."),
    1378: (ASYNC, "Top-level 'await' needs 'module' es2022/esnext and 'target' ≥ es2017."),
    1192: (IMPORT, "The module has no default export: use a named import or esModuleInterop."),
    1259: (IMPORT, "Default import of a CommonJS module needs 'esModuleInterop'."),
    2300: (NAME, "The same identifier is declared twice in this scope."),
    2304: (NAME, "This name is not declared or imported here."),
    2305: (IMPORT, "The module does not export this member: check its exports and the spelling."),
    2306: (IMPORT, "The file is not a module: it has no import or export."),
    2307: (IMPORT, "The module path cannot be resolved: check the path, the package and 'paths'."),
    2322: (TYPE, "The value's type is not assignable to the declared type."),
    2339: (TYPE, "The property does not exist on this type: check its spelling or narrow it."),
    2345: (TYPE, "The argument's type does not match the parameter's type."),
    2349: (TYPE, "This expression is not callable: its type has no call signature."),
    2351: (TYPE, "This expression cannot be used with 'new'."),
    2353: (TYPE, "An object literal has a property the target type does not declare."),
    2362: (TYPE, "Arithmetic needs number, bigint or enum operands."),
    2365: (TYPE, "This operator cannot be applied to these operand types."),
    2367: (TYPE, "This comparison is always false: the types do not overlap."),
    2448: (NAME, "A block-scoped variable is used before its declaration."),
    2451: (NAME, "A block-scoped variable is declared twice."),
    2454: (NAME, "A variable is used before it is assigned."),
    2488: (TYPE, "This type is not iterable: it needs a [Symbol.iterator]() method."),
    2503: (NAME, "This namespace is not declared or imported."),
    2531: (NULL, "The object may be null: narrow it with a check or '?.' before use."),
    2532: (NULL, "The object may be undefined: narrow it with a check or '?.' before use."),
    2533: (NULL, "The object may be null or undefined: narrow it before use."),
    2552: (NAME, "This name is not declared; the compiler suggests a similar one."),
    2554: (TYPE, "The call passes the wrong number of arguments."),
    2555: (TYPE, "The call passes too few arguments."),
    2571: (TYPE, "The value is 'unknown': narrow it before use."),
    2583: (BUILD, "This name needs a newer 'lib' in tsconfig.json."),
    2584: (BUILD, "This name needs the 'dom' lib in tsconfig.json."),
    2585: (BUILD, "This name needs a newer 'lib' in tsconfig.json."),
    2693: (NAME, "A type-only name is used as a value."),
    2694: (NAME, "The namespace has no exported member of that name."),
    2739: (TYPE, "The object is missing properties the target type requires."),
    2740: (TYPE, "The object is missing properties the target type requires."),
    2741: (TYPE, "A property the target type requires is missing."),
    2769: (TYPE, "No overload of this function accepts these arguments."),
    2792: (IMPORT, "The module cannot be found: set 'moduleResolution' to node16/bundler."),
    2794: (ASYNC, "A Promise's resolve() is called without the value its type requires."),
    2801: (ASYNC, "This condition is always true: a Promise is tested instead of its result."),
    7006: (TYPE, "A parameter implicitly has an 'any' type: annotate it."),
    7016: (IMPORT, "The module has no type declarations: install @types/… or declare it."),
    7031: (TYPE, "A destructured binding implicitly has an 'any' type: annotate it."),
    17004: (BUILD, "JSX needs the 'jsx' option in tsconfig.json."),
    18003: (BUILD, "tsconfig.json matches no input files: check 'include' and 'files'."),
    18046: (TYPE, "The value is 'unknown': narrow it before use."),
    18047: (NULL, "The value may be null: narrow it with a check or '?.' before use."),
    18048: (NULL, "The value may be undefined: narrow it with a check or '?.' before use."),
    18049: (NULL, "The value may be null or undefined: narrow it before use."),
    80007: (ASYNC, "'await' has no effect on this expression: it is not a Promise."),
}

_BORROW = "The borrow checker rejects this use: "
_RUST_CODES: dict[str, tuple[str, str]] = {
    "E0061": (TYPE, "The call passes the wrong number of arguments."),
    "E0063": (TYPE, "A struct literal is missing fields."),
    "E0106": (TYPE, "A reference needs an explicit lifetime parameter."),
    "E0107": (TYPE, "A type is given the wrong number of generic arguments."),
    "E0277": (TYPE, "A type does not implement a trait this code requires."),
    "E0282": (TYPE, "The compiler cannot infer a type here: annotate it."),
    "E0308": (TYPE, "The value's type does not match the expected type."),
    "E0369": (TYPE, "This binary operator is not implemented for these types."),
    "E0373": (TYPE, _BORROW + "a closure may outlive a borrowed value: use 'move'."),
    "E0381": (NAME, "A variable is used before it is initialised."),
    "E0382": (TYPE, _BORROW + "the value was moved before this use: clone it or borrow it."),
    "E0384": (TYPE, "An immutable variable is assigned twice: declare it 'mut'."),
    "E0412": (NAME, "This type name is not in scope: import or declare it."),
    "E0423": (NAME, "A type or module is used where a value is expected."),
    "E0424": (NAME, "'self' is used outside a method that takes self."),
    "E0425": (NAME, "This name is not in scope: check spelling, 'use' items and scope."),
    "E0428": (NAME, "The same name is defined twice in this module."),
    "E0432": (IMPORT, "The 'use' path cannot be resolved: check the module path and Cargo.toml."),
    "E0433": (IMPORT, "A path cannot be resolved: a crate or module is not declared or imported."),
    "E0463": (IMPORT, "A crate cannot be found: add it to Cargo.toml."),
    "E0499": (TYPE, _BORROW + "the value is borrowed mutably twice at once."),
    "E0502": (TYPE, _BORROW + "a value is borrowed mutably while also borrowed immutably."),
    "E0503": (TYPE, _BORROW + "a value is used while it is mutably borrowed."),
    "E0505": (TYPE, _BORROW + "a value is moved while it is borrowed."),
    "E0506": (TYPE, _BORROW + "a value is assigned while it is borrowed."),
    "E0507": (TYPE, _BORROW + "a value is moved out of a borrow: clone it or use a reference."),
    "E0515": (TYPE, _BORROW + "a reference to a local value is returned."),
    "E0596": (TYPE, _BORROW + "a value is borrowed mutably but not declared 'mut'."),
    "E0597": (TYPE, _BORROW + "a borrowed value does not live long enough."),
    "E0599": (TYPE, "No method of that name exists for this type (or its trait is not imported)."),
    "E0601": (BUILD, "The crate has no 'main' function."),
    "E0603": (IMPORT, "The item is private to its module: make it 'pub' or use another path."),
    "E0609": (TYPE, "The type has no field of that name."),
    "E0614": (TYPE, "This type cannot be dereferenced."),
    "E0618": (TYPE, "This value is not a function and cannot be called."),
    "E0658": (BUILD, "This feature is unstable: it needs a nightly toolchain or a feature flag."),
    "E0716": (TYPE, _BORROW + "a temporary value is dropped while still borrowed."),
    "E0728": (ASYNC, "'await' is only allowed inside async functions and blocks."),
    "E0746": (TYPE, "Return a concrete type or a Box<dyn Trait>, not a bare trait object."),
    "E0752": (ASYNC, "'main' cannot be async without a runtime attribute such as #[tokio::main]."),
}

# pyright / basedpyright rule names, mypy error codes, ruff/pyflakes codes, gopls codes.
_NAMED_CODES: dict[str, tuple[str, str]] = {
    "reportUndefinedVariable": (NAME, ""),
    "reportPossiblyUnbound": (NAME, "The variable may be unbound on some path: assign it first."),
    "reportAttributeAccessIssue": (TYPE, "This attribute does not exist on the value's type."),
    "reportOptionalMemberAccess": (NULL, "The value may be None: check it before the access."),
    "reportOptionalSubscript": (NULL, "The value may be None: check it before indexing."),
    "reportOptionalCall": (NULL, "The value may be None: check it before calling."),
    "reportOptionalIterable": (NULL, "The value may be None: check it before iterating."),
    "reportOptionalOperand": (NULL, "The value may be None: check it before the operator."),
    "reportMissingImports": (IMPORT, "The import cannot be resolved in this environment."),
    "reportMissingModuleSource": (IMPORT, "The module's stubs are found but not its source."),
    "reportMissingTypeStubs": (IMPORT, "The module has no type stubs."),
    "reportArgumentType": (TYPE, ""),
    "reportAssignmentType": (TYPE, ""),
    "reportReturnType": (TYPE, ""),
    "reportCallIssue": (TYPE, ""),
    "reportIndexIssue": (TYPE, ""),
    "reportOperatorIssue": (TYPE, ""),
    "reportGeneralTypeIssues": (TYPE, ""),
    "reportUnusedCoroutine": (ASYNC, "The coroutine's result is not awaited."),
    "name-defined": (NAME, ""),
    "used-before-def": (NAME, ""),
    "attr-defined": (TYPE, ""),
    "union-attr": (NULL, "One member of the union (often None) lacks this attribute: narrow it."),
    "arg-type": (TYPE, ""),
    "assignment": (TYPE, ""),
    "return-value": (TYPE, ""),
    "call-arg": (TYPE, ""),
    "index": (TYPE, ""),
    "operator": (TYPE, ""),
    "import": (IMPORT, ""),
    "import-not-found": (IMPORT, ""),
    "import-untyped": (IMPORT, "The package has no type information: install its stubs."),
    "unused-coroutine": (ASYNC, "The coroutine's result is not awaited."),
    "syntax": (SYNTAX, ""),
    "F821": (NAME, ""),
    "F822": (NAME, ""),
    "F823": (NAME, "A local variable is referenced before assignment."),
    "E999": (SYNTAX, ""),
    "RUF006": (ASYNC, "Keep a reference to the task, or it may be garbage-collected."),
    "UndeclaredName": (NAME, ""),
    "IncompatibleAssign": (TYPE, ""),
    "InvalidIfaceAssign": (TYPE, "The type does not implement the interface's methods."),
    "MissingFieldOrMethod": (TYPE, ""),
    "WrongArgCount": (TYPE, ""),
    "BrokenImport": (IMPORT, ""),
    "UnusedImport": (IMPORT, "The import is unused: remove it or use it."),
    "UnusedVar": (NAME, "The variable is declared and never used."),
    "MismatchedTypes": (TYPE, ""),
    "MissingReturn": (TYPE, "A function with results must end in a return statement."),
}

# --- by message ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    category: str
    explanation: str
    confidence: float
    families: frozenset[str] | None  # None: any language


def _rule(
    pattern: str, category: str, explanation: str = "", confidence: float = 0.9, only: str = ""
) -> _Rule:
    families = frozenset(only.split()) if only else None
    return _Rule(re.compile(pattern, re.IGNORECASE), category, explanation, confidence, families)


_RULES: list[_Rule] = [
    # async first: a coroutine misused often surfaces as a TypeError or AttributeError
    _rule(r"coroutine .* was never awaited", ASYNC, "A coroutine is called but not awaited."),
    _rule(r"'coroutine' object (is not|has no)", ASYNC, "A coroutine is used before awaiting it."),
    _rule(
        r"object \w+ can't be used in 'await' expression",
        ASYNC,
        "Only awaitables can be awaited: this value is not a coroutine or future.",
    ),
    _rule(
        r"(asyncio\.run\(\) )?cannot be called from a running event loop",
        ASYNC,
        "asyncio.run() inside a running loop: await the coroutine instead.",
    ),
    _rule(
        r"no (current|running) event loop|event loop is closed",
        ASYNC,
        "The coroutine runs without (or after) its event loop.",
    ),
    _rule(
        r"await.{0,30}only (valid|allowed) (in|within|inside) async",
        ASYNC,
        "'await' is only allowed inside an async function: mark the function async.",
    ),
    _rule(
        r"unhandled ?promise ?rejection|uncaught \(in promise\)",
        ASYNC,
        "A promise rejects and nothing catches it: await it inside try/catch or add .catch().",
    ),
    _rule(
        r"all goroutines are asleep - deadlock",
        ASYNC,
        "Every goroutine is blocked: a channel send/receive or lock has no partner.",
    ),
    _rule(
        r"concurrent map (writes|read and map write)|data race",
        ASYNC,
        "Goroutines touch shared data without synchronisation: use a mutex or channel.",
    ),
    _rule(
        r"send on closed channel|close of (closed|nil) channel",
        ASYNC,
        "A channel is used after it was closed.",
    ),
    _rule(
        r"future cannot be sent between threads|is not a future|`await` is only allowed",
        ASYNC,
        "",
        only="rust",
    ),
    _rule(
        r"ExecutionException|CompletionException|InterruptedException",
        ASYNC,
        "A task on another thread failed or was interrupted: look at its cause.",
        0.7,
        only="java jvm",
    ),
    # null / undefined / None access
    _rule(
        r"cannot read propert(y|ies) .*of (undefined|null)|cannot set propert(y|ies) .*of "
        r"(undefined|null)",
        NULL,
        "A property is read from a value that is undefined/null: check where it is set or "
        "use '?.'.",
    ),
    _rule(
        r"(undefined|null) is not an object|can't access property .*, \S+ is (undefined|null)"
        r"|\b[\w.$]+ is (undefined|null)$|is possibly '?(null|undefined)'?",
        NULL,
    ),
    _rule(
        r"'NoneType' object|NoneType|has no attribute .* of .*None|of \"None\"",
        NULL,
        "A value is None where an object is needed: check the function that returned it.",
    ),
    _rule(r"\"None\" is not|Item \"None\" of", NULL),
    _rule(
        r"NullPointerException|because \S+ is null|Cannot invoke .* because",
        NULL,
        "A reference is null where an object is needed: find where it should be initialised.",
    ),
    _rule(
        r"nil pointer dereference|invalid memory address|assignment to entry in nil map",
        NULL,
        "A nil pointer or map is used: initialise it (e.g. make(), &T{}) or check for nil.",
    ),
    _rule(
        r"called `?Option::unwrap\(\)`? on a `?None`? value|unwrap\(\)` on a `None`",
        NULL,
        "unwrap() on None: handle the None case with match, if let or ?.",
    ),
    # test failures
    _rule(
        r"(?-i:^\s*(---\s+)?FAIL[: ]|\bFAILED\b)|tests? failed|AssertionError|assertion failed"
        r"|assertion `.*` failed|AssertionFailedError|expected:? ?<.*> but was:? ?<"
        r"|expect\(received\)|Expected: .*Received:|ComparisonFailure|\bassert\b .*==",
        TEST,
    ),
    # import / module
    _rule(
        r"No module named|ModuleNotFoundError|ImportError|cannot import name",
        IMPORT,
        "The module cannot be imported: check the package is installed in this environment "
        "and the import path.",
    ),
    _rule(
        r"Cannot find module|Module not found|Can't resolve|Failed to resolve import"
        r"|ERR_MODULE_NOT_FOUND|ERR_REQUIRE_ESM|Cannot use import statement outside a module"
        r"|does not provide an export named|is not exported by|has no exported member",
        IMPORT,
    ),
    _rule(
        r"Import .* could not be resolved|Cannot find implementation or library stub"
        r"|is not a known attribute of module|module '?[\w.]+'? has no attribute",
        IMPORT,
    ),
    _rule(
        r"imported and not used|cannot find package|no required module provides package"
        r"|is not in (GOROOT|std)|could not import|use of internal package",
        IMPORT,
        only="go",
    ),
    _rule(
        r"unresolved import|failed to resolve: use of undeclared (crate|type|module)"
        r"|can't find crate",
        IMPORT,
        only="rust",
    ),
    _rule(r"package .* does not exist|cannot access .*class file", IMPORT, only="java jvm"),
    # build / configuration
    _rule(
        r"go\.mod file not found|missing go\.sum entry|updates to go\.mod needed"
        r"|go: cannot find main module|requires go >=",
        BUILD,
    ),
    _rule(
        r"npm ERR!|ERESOLVE|peer dep|tsconfig\.json|Unknown compiler option|No inputs were found"
        r"|package\.json",
        BUILD,
    ),
    _rule(
        r"Failed to execute goal|Could not resolve dependencies|BUILD FAILED|Could not find "
        r"method|Unsupported class file major version|release version \d+ not supported"
        r"|ClassNotFoundException|NoClassDefFoundError|could not find or load main class",
        BUILD,
    ),
    _rule(
        r"Could not find a version that satisfies|externally-managed-environment"
        r"|pyproject\.toml|setup\.py|No matching distribution",
        BUILD,
    ),
    _rule(
        r"Cargo\.toml|failed to select a version|could not compile .* due to previous",
        BUILD,
        confidence=0.7,
    ),
    _rule(
        r"linker .* not found|undefined reference to|ld returned|CMake Error|Makefile:\d+"
        r"|command not found",
        BUILD,
        confidence=0.8,
    ),
    # syntax
    _rule(
        r"SyntaxError|IndentationError|TabError|invalid syntax|unexpected indent"
        r"|expected an indented block|unindent does not match|was never closed"
        r"|unterminated string|unmatched '|EOF while scanning|unexpected EOF",
        SYNTAX,
    ),
    _rule(
        r"Unexpected token|Unexpected identifier|Unterminated|missing \) after|expected "
        r"expression|Declaration or statement expected|';' expected|',' expected",
        SYNTAX,
    ),
    _rule(
        r"syntax error|non-declaration statement outside function body|expected '?[;,)}\]]'?"
        r"|expected declaration|expected operand|unexpected newline",
        SYNTAX,
    ),
    _rule(
        r"expected one of|unclosed delimiter|unexpected closing delimiter|this file contains an "
        r"unclosed|expected item|mismatched closing delimiter",
        SYNTAX,
        only="rust",
    ),
    _rule(
        r"illegal start of (expression|type)|class, interface, enum,? or record expected"
        r"|reached end of file while parsing|unclosed (string|character) literal|not a "
        r"statement|<identifier> expected",
        SYNTAX,
    ),
    _rule(r"^\s*expected [\w`'\"]+,? found [\w`'\"]+", SYNTAX, confidence=0.6),
    # name / reference
    _rule(
        r"\bname '?\S+'? is not defined|is not defined|NameError|UnboundLocalError"
        r"|referenced before assignment|is possibly unbound",
        NAME,
        "A name is used that is not defined here: check spelling, scope and imports.",
    ),
    _rule(r"ReferenceError|Cannot access '.*' before initialization|Cannot find name", NAME),
    _rule(
        r"^undefined: |declared and not used|declared but not used|redeclared in this block"
        r"|undeclared name",
        NAME,
        only="go",
    ),
    _rule(
        r"cannot find (value|function|type|struct|trait|macro) .* in (this scope|module|crate)"
        r"|use of undeclared",
        NAME,
    ),
    _rule(
        r"cannot find symbol|might not have been initiali[sz]ed|is already defined in"
        r"|non-static (variable|method) .* cannot be referenced",
        NAME,
    ),
    # type
    _rule(
        r"TypeError|is not a function|is not callable|is not iterable|is not subscriptable"
        r"|unsupported operand type|object has no attribute|has no attribute|missing \d+ required"
        r"|takes \d+ positional argument|got an unexpected keyword argument|ClassCastException"
        r"|is not assignable to|incompatible type|Incompatible (types|return)|has incompatible"
        r"|Argument .* cannot be assigned|cannot be converted to|mismatched types"
        r"|cannot use .* as|has no field or method|(too many|not enough) arguments"
        r"|cannot be applied to given types|does not exist on type|bad operand types"
        r"|possible lossy conversion"
        r"|unreported exception|the trait bound|no method named|no field `|expected .* found"
        r"|invalid operation|cannot infer type|type annotations needed",
        TYPE,
    ),
    # other, but with something to say
    _rule(
        r"KeyError|IndexError|index out of (range|bounds)|IndexOutOfBounds|out of range",
        OTHER,
        "A key or index is not in the collection: check its length or keys first.",
        0.7,
    ),
    _rule(
        r"Maximum call stack size exceeded|RecursionError|StackOverflowError|stack overflow",
        OTHER,
        "Unbounded recursion: check the base case.",
        0.7,
    ),
    _rule(
        r"JSONDecodeError|Unexpected end of JSON input|is not valid JSON",
        OTHER,
        "The input is not valid JSON: log the raw text before parsing it.",
        0.7,
    ),
]

# "path:12:5: ", "path(12,5): " before the message proper
_LOCATION = re.compile(r"^\s*(?:[^\s:()]+(?::\d+){1,2}:\s*|[^\s()]+\(\d+,\d+\):\s*)")
_TS_SOURCES = {"ts", "typescript", "tsserver", "deno-ts", "vtsls", "javascript"}


def _normalise_code(code: str | int | None, source: str | None, message: str) -> str | None:
    if code is None or code == "":
        return error_code(message)
    text = str(code).strip()
    if text.isdigit() and (source or "").lower() in _TS_SOURCES | {""}:
        return f"TS{text}"
    return text


def _by_code(code: str) -> tuple[str, str, float] | None:
    upper = code.upper()
    if upper.startswith("TS") and upper[2:].isdigit():
        number = int(upper[2:])
        if number in _TS_CODES:
            category, explanation = _TS_CODES[number]
            return category, explanation, 0.95
        # The TypeScript code ranges: 1xxx grammar, 2xxx/7xxx/18xxx checker, 5xxx/6xxx options.
        if 1000 <= number < 2000:
            return SYNTAX, "", 0.7
        if 2000 <= number < 3000 or 7000 <= number < 8000 or 18000 <= number < 19000:
            return TYPE, "", 0.55
        if 5000 <= number < 7000:
            return BUILD, "", 0.6
        return None
    if re.fullmatch(r"E\d{4}", upper):
        if upper in _RUST_CODES:
            category, explanation = _RUST_CODES[upper]
            return category, explanation, 0.95
        return None
    if code in _NAMED_CODES:
        category, explanation = _NAMED_CODES[code]
        return category, explanation, 0.9
    return None


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def classify(
    message: str,
    language: str | None,
    code: str | int | None = None,
    source: str | None = None,
) -> Classification:
    """Place an error in one of `CATEGORIES` by rules; `other` with confidence < 0.5 if none fit."""
    # Long outputs (a whole test log) say what matters early; bounded text keeps the regexes fast.
    message = message[:MAX_MESSAGE_CHARS]
    family = language_family(language)
    normal_code = _normalise_code(code, source, message)
    head = _LOCATION.sub("", headline(message)[:MAX_HEADLINE_CHARS], count=1)
    if normal_code:
        found = _by_code(normal_code)
        if found:
            category, explanation, confidence = found
            return Classification(category, confidence, explanation or _EXPLAIN[category])
    for text in (head, message) if head != message.strip() else (head,):
        for rule in _RULES:
            if rule.families is not None and family not in rule.families and family != "any":
                continue
            if rule.pattern.search(text):
                confidence = rule.confidence if text is head else rule.confidence - 0.1
                return Classification(
                    rule.category, confidence, rule.explanation or _EXPLAIN[rule.category]
                )
    return Classification(OTHER, 0.2, _EXPLAIN[OTHER])


# --- LLM fallback ----------------------------------------------------------------------------

ChatJson = Callable[..., Awaitable[dict[str, Any]]]
"""`async chat_json(model=, messages=, schema=, schema_name=) -> dict` (OpenAICompatClient's)."""

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "explanation": {"type": "string"},
        "confidence": {"type": "number"},
    },
    "required": ["category", "explanation"],
    "additionalProperties": False,
}
_SYSTEM = (
    "You classify compiler, linter, runtime and test error messages for a developer tool. "
    "Answer with JSON: category (one of: "
    + ", ".join(CATEGORIES)
    + "), explanation (one short sentence telling the developer what the error means and where "
    "to look), confidence (0 to 1)."
)


class LlmClassifier:
    """Rules first; asks the LLM only for errors the rules leave in `other`, once per signature.

    When the LLM fails (it raises, times out or answers outside the schema) the rules' answer
    stands, so a stopped LM Studio never breaks struggle detection.
    """

    def __init__(
        self, chat_json: ChatJson, model: str, timeout_seconds: float = 20.0, cache_size: int = 512
    ) -> None:
        self._chat_json = chat_json
        self._model = model
        self._timeout = timeout_seconds
        self._cache: dict[str, Classification] = {}
        self._cache_size = cache_size

    async def classify(
        self,
        message: str,
        language: str | None,
        code: str | int | None = None,
        source: str | None = None,
    ) -> Classification:
        """Like `classify`, with the LLM's opinion for what the rules cannot place."""
        ruled = classify(message, language, code, source)
        if ruled.category != OTHER or ruled.confidence >= RULE_CONFIDENCE_FLOOR:
            return ruled
        key = signature(message, language)
        if key in self._cache:
            return self._cache[key]
        try:
            answer = await asyncio.wait_for(self._ask(message, language), self._timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of an optional upgrade falls back to the rules
            logger.warning("struggle LLM classification failed, using rules: %s", exc)
            return ruled
        if answer is None:
            return ruled
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = answer
        return answer

    async def _ask(self, message: str, language: str | None) -> Classification | None:
        user = json.dumps({"language": language or "unknown", "error": message[:2000]})
        raw = await self._chat_json(
            model=self._model,
            messages=[{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}],
            schema=_SCHEMA,
            schema_name="struggle_category",
        )
        category = str(raw.get("category", "")).strip().lower()
        explanation = raw.get("explanation")
        if category not in CATEGORIES or not isinstance(explanation, str) or not explanation:
            logger.warning("struggle LLM answered outside the schema: %.200r", raw)
            return None
        try:
            confidence = float(raw.get("confidence", 0.6))
        except (TypeError, ValueError):
            confidence = 0.6
        # An LLM's self-reported confidence is not calibrated; cap it below the rules'.
        confidence = max(0.0, min(confidence, 0.8))
        return Classification(category, confidence, _one_line(explanation), source="llm")
