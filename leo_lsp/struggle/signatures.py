"""Normalise error messages into stable signatures.

Two occurrences of "the same error" rarely have the same text: the file, the line, the variable and
the value differ. `normalise` strips what varies (paths, line/column numbers, quoted identifiers
and values, numbers, hex addresses, generic type arguments, exception-class prefixes) and keeps the
shape of the message; `signature` hashes that shape together with the language family.

    >>> normalise("src/a.ts(3,7): error TS2339: Property 'map' does not exist on type 'Foo'.")
    "Property '_' does not exist on type '_'"
    >>> normalise("NameError: name 'foo' is not defined") == normalise("name 'bar' is not defined")
    True
"""

from __future__ import annotations

import functools
import hashlib
import re

PLACEHOLDER = "'_'"
"""What every quoted identifier or value becomes."""

# A language id (LSP's languageId, or a file extension's name) → the family whose messages look
# alike; TypeScript and JavaScript share runtime errors, so one signature covers both.
_FAMILIES: dict[str, str] = {
    "typescript": "js",
    "typescriptreact": "js",
    "javascript": "js",
    "javascriptreact": "js",
    "ts": "js",
    "tsx": "js",
    "js": "js",
    "jsx": "js",
    "mjs": "js",
    "cjs": "js",
    "node": "js",
    "python": "python",
    "py": "python",
    "go": "go",
    "golang": "go",
    "rust": "rust",
    "rs": "rust",
    "java": "java",
    "kotlin": "jvm",
    "c": "c",
    "cpp": "c",
    "c++": "c",
    "objective-c": "c",
}

_CODE_PATTERNS = [
    re.compile(r"\berror\s+(TS\d{3,5})\b"),
    re.compile(r"\berror\[(E\d{4})\]"),
    re.compile(r"^\s*(TS\d{3,5})\b"),
]

_TRACEBACK_HEAD = re.compile(r"^\s*Traceback \(most recent call last\)", re.MULTILINE)
_STACK_LINE = re.compile(
    r"^\s*(at\s|File \"|\^|~|-->|\||\d+\s*\||=\s*(note|help)|note:|help:|goroutine\s|\[)"
)

_FILE_URI = re.compile(r"file://[^\s'\"`)]+")
# "/abs/path/x.py", "./rel/x.ts", "C:\\x\\y.cs", "~/a/b"; a bare "a/b" only with an extension.
_PATH = re.compile(
    r"(?:(?<![\w/])(?:[A-Za-z]:[\\/]|~[\\/]|\.{1,2}[\\/]|[\\/])(?:[\w.@+\-]+[\\/])*[\w.@+\-]+)"
    r"|(?:(?<![\w/.])(?:[\w.@+\-]+[\\/])+[\w@+\-]+\.[A-Za-z]{1,5}\b)"
)
_SOURCE_FILE = re.compile(
    r"\b[\w\-]+\.(?:py|pyi|ts|tsx|js|jsx|mjs|cjs|go|rs|java|kt|c|h|cc|cpp|hpp|cs|rb|php|swift)\b"
)
_LOCATION_SUFFIX = re.compile(r"<path>(?::\d+){1,2}|<path>\(\d+(?:,\s*\d+)?\)")
_LEADING_LOCATION = re.compile(r"^\s*(?:<path>\s*[:\-]?\s*)+")
_BARE_LOCATION = re.compile(r"^\s*\S+:\d+(?::\d+)?\s*$")
_LINE_WORDS = re.compile(r"\b(line|column|col|row)\s+\d+", re.IGNORECASE)
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
_UUIDISH = re.compile(r"\b[0-9a-f]{8,}(?:-[0-9a-f]{4,}){0,4}\b")
_QUOTED = [
    re.compile(r"'(?:[^'\\\n]|\\.)*'"),
    re.compile(r'"(?:[^"\\\n]|\\.)*"'),
    re.compile(r"`[^`\n]*`"),
    re.compile(r"\u2018[^\u2019\n]*\u2019"),
    re.compile(r"\u201c[^\u201d\n]*\u201d"),
]
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])")
_GENERIC = re.compile(r"(?<=\w)<[^<>\n]*>")
# Prefixes that name the severity or the exception class but not the problem.
_SEVERITY_PREFIX = re.compile(
    r"^\s*(?:(?:fatal\s+)?error|warning|panic|uncaught|unhandled)\s*(?:\[[^\]]*\])?\s*:\s*",
    re.IGNORECASE,
)
_EXCEPTION_PREFIX = re.compile(
    r"^\s*(?:Exception in thread \S+\s+)?(?:Uncaught\s+)?(?:[a-z_][\w$]*\.)*"
    r"([A-Z][\w$]*(?:Error|Exception|Warning|Failure))(?:\s*:\s*|\s*$)"
)
# Go's unquoted identifiers in its most common messages.
_GO_IDENTIFIERS = [
    (re.compile(r"^undefined: \S+"), "undefined: _"),
    (re.compile(r"^declared and not used: \S+"), "declared and not used: _"),
    (re.compile(r"^\S+ declared and not used"), "_ declared and not used"),
    (re.compile(r"^\S+ declared (?:but|and) not used"), "_ declared and not used"),
    (re.compile(r"^\S+ \(.*?\) is not used"), "_ is not used"),
    (re.compile(r"^\S+ redeclared in this block"), "_ redeclared in this block"),
    (
        re.compile(r"\bcannot use \S+ \((?:variable|constant|value) of type [^)]*\) as \S+ value"),
        "cannot use _ (of type _) as _ value",
    ),
    (
        re.compile(r"\bcannot use \S+ \(untyped \S+ constant\) as \S+ value"),
        "cannot use _ (of type _) as _ value",
    ),
    (re.compile(r"\bmismatched types \S+ and \S+"), "mismatched types _ and _"),
    (
        re.compile(r"\b\S+\.(\S+) undefined \(type \S+ has no field or method \S+\)"),
        "_._ undefined (type _ has no field or method _)",
    ),
    (re.compile(r"\b(too many|not enough) arguments in call to \S+"), r"\1 arguments in call to _"),
    (re.compile(r"\binvalid operation: .*?\("), "invalid operation: _ ("),
]
_JAVA_IDENTIFIERS = [
    (re.compile(r"\bmethod \S+ in (class|interface) \S+"), r"method _ in \1 _"),
    (re.compile(r"\bvariable \S+ (might not have been|is already defined)"), r"variable _ \1"),
    (
        re.compile(r"\bincompatible types: \S+ cannot be converted to \S+"),
        "incompatible types: _ cannot be converted to _",
    ),
    (re.compile(r"\bpackage \S+ does not exist"), "package _ does not exist"),
    (re.compile(r"\bnon-static (variable|method) \S+"), r"non-static \1 _"),
    (re.compile(r"\bunreported exception \S+;"), "unreported exception _;"),
]
_WHITESPACE = re.compile(r"\s+")


def language_family(language: str | None) -> str:
    """The family whose messages look alike ("js" for TypeScript and JavaScript), else the id."""
    lang = (language or "").strip().lower()
    return _FAMILIES.get(lang, lang or "any")


def error_code(message: str) -> str | None:
    """The compiler's error code inside a message (`TS2322`, `E0308`), if there is one."""
    for pattern in _CODE_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def headline(message: str) -> str:
    """The one line of a (possibly multi-line) message that states the error.

    A Python traceback states it on its last line; compilers state it on the first, followed by
    notes, code frames and stack lines.
    """
    lines = [line for line in message.splitlines() if line.strip()]
    if not lines:
        return ""
    if _TRACEBACK_HEAD.search(message):
        for line in reversed(lines):
            if not line.startswith((" ", "\t")) and not _TRACEBACK_HEAD.match(line):
                return line.strip()
        return lines[-1].strip()
    for line in lines:
        if not _STACK_LINE.match(line) and not _BARE_LOCATION.match(line):
            return line.strip()
    return lines[0].strip()


def _strip_quoted(text: str) -> str:
    for pattern in _QUOTED:
        text = pattern.sub(PLACEHOLDER, text)
    return text


def _strip_generics(text: str) -> str:
    # Innermost first, so `Map<String, List<Int>>` collapses to `Map<_>`.
    while True:
        replaced = _GENERIC.sub("\x00", text)
        if replaced == text:
            return text.replace("\x00", "<_>")
        text = replaced


def normalise(message: str) -> str:
    """The shape of an error message with everything that varies between occurrences stripped."""
    message = message[:4000]  # bounded work for a whole pasted log
    code = error_code(message)
    text = headline(message)[:500]
    text = _FILE_URI.sub("<path>", text)
    text = _strip_quoted(text)
    text = _PATH.sub("<path>", text)
    text = _SOURCE_FILE.sub("<path>", text)
    text = _LOCATION_SUFFIX.sub("<path>", text)
    text = _LEADING_LOCATION.sub("", text)
    text = text.replace("<path>", "_")
    if code:
        text = re.sub(rf"\berror\s*(?:\[{code}\]|{code})\s*:?\s*", "", text, count=1)
        text = re.sub(rf"^\s*{code}\s*:?\s*", "", text)
    text = _SEVERITY_PREFIX.sub("", text)
    match = _EXCEPTION_PREFIX.match(text)
    if match:
        rest = text[match.end() :]
        text = rest if rest.strip() else match.group(1)
    for pattern, replacement in _GO_IDENTIFIERS + _JAVA_IDENTIFIERS:
        text = pattern.sub(replacement, text)
    text = _strip_generics(text)
    text = _LINE_WORDS.sub(r"\1 _", text)
    text = _HEX.sub("_", text)
    text = _UUIDISH.sub("_", text)
    text = _NUMBER.sub("_", text)
    text = _WHITESPACE.sub(" ", text).strip().rstrip(".:;, ")
    # The code is left out on purpose: language servers send it apart from the message, terminals
    # inside it, and both must give one signature.
    return (text or code or "")[:300]


@functools.lru_cache(maxsize=4096)
def signature(message: str, language: str | None) -> str:
    """A stable short id of an error's shape: `<family>:<12 hex>` over `normalise(message)`."""
    family = language_family(language)
    digest = hashlib.blake2b(
        f"{family}\n{normalise(message).lower()}".encode(), digest_size=6
    ).hexdigest()
    return f"{family}:{digest}"
