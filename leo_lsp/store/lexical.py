"""Text preparation for the FTS5 lexical index: identifiers split on camelCase and snake_case.

`parseHttpRequest` is indexed as itself and as `parse http request`, so the query "parse request"
finds it, and so does the identifier typed whole.
"""

from __future__ import annotations

import re

from leo_lsp.records import content_hash

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+")
_WORD = re.compile(r"\w+", re.UNICODE)

# Words too common in code or queries to carry meaning for BM25.
STOPWORDS = frozenset(
    """a an the of to in on for and or is are be by with from as at it this that these those
    return returns self cls def function method class if else none true false null get set
    which what when how do does given into its their them then than not no use used using""".split()
)


def split_identifier(ident: str) -> list[str]:
    """`parseHTTPRequest_v2` → ['parse', 'http', 'request', 'v2'] (lower-cased parts)."""
    parts: list[str] = []
    for piece in ident.split("_"):
        parts.extend(m.group(0).lower() for m in _CAMEL.finditer(piece))
    return [p for p in parts if p]


def expand(text: str) -> str:
    """The text followed by the parts of every compound identifier in it."""
    extra: list[str] = []
    for m in _IDENT.finditer(text):
        ident = m.group(0)
        parts = split_identifier(ident)
        if len(parts) > 1:
            extra.extend(parts)
    return text + "\n" + " ".join(extra) if extra else text


def query_terms(query: str) -> list[str]:
    """Lower-cased search terms of a query: words and identifier parts, stopwords dropped."""
    terms: list[str] = []
    seen: set[str] = set()
    for m in _WORD.finditer(query):
        word = m.group(0)
        candidates = [word.lower()]
        if _IDENT.fullmatch(word):
            parts = split_identifier(word)
            if len(parts) > 1:
                candidates.extend(parts)
        for term in candidates:
            if term in STOPWORDS or term in seen or len(term) < 2:
                continue
            seen.add(term)
            terms.append(term)
    return terms


# Suffixes stripped by `stem`, first match wins. The index is not stemmed (identifiers must match
# whole), so the query side does it: "parsing headers" → `"pars"* OR "header"*`. Measured on the
# docstring→function task (tests/bench/bench_quality.py): lexical MRR@10 0.43 → 0.46 (tune half).
_SUFFIXES = ("ing", "ed", "es", "s", "ion", "ly", "er", "e")


def stem(term: str) -> str:
    """A crude suffix-stripping stem (`parsing` → `pars`, `headers` → `header`); keeps 3+ chars."""
    for suffix in _SUFFIXES:
        if term.endswith(suffix) and len(term) - len(suffix) >= 3:
            return term[: -len(suffix)]
    return term


def fts_parts(query: str) -> list[tuple[str, bool]]:
    """The query's FTS5 terms as (term, prefix-matched): stemmed roots of 4+ chars are prefixes."""
    parts: list[tuple[str, bool]] = []
    for term in query_terms(query)[:32]:
        root = stem(term)
        part = (root, True) if len(root) >= 4 else (term, False)
        if part not in parts:
            parts.append(part)
    return parts


def match_expression(parts: list[tuple[str, bool]]) -> str | None:
    """An FTS5 MATCH expression OR-ing `parts`, or None when there are none."""
    if not parts:
        return None
    return " OR ".join(f'"{t}"*' if prefix else f'"{t}"' for t, prefix in parts)


def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression OR-ing the query's stemmed terms (prefix-matched), or None."""
    return match_expression(fts_parts(query))


# Words of a signature line that say nothing about what the code does.
_SIGNATURE_NOISE = frozenset(
    """def async self cls class function fn func pub export const let var static public private
    protected void return function module""".split()
)


# Keywords that occur in parameter lists without naming anything.
_VALUE_WORDS = frozenset("none true false null nil this mut ref const self cls".split())


def _words(text: str) -> list[str]:
    return [p for ident in _IDENT.findall(text) for p in split_identifier(ident)]


def signature_line(symbol: str, text: str) -> str:
    """The line of a chunk that names its symbol (else its first code line)."""
    first = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "//", "@", "/*", "*")):
            continue
        first = first or line
        if symbol and symbol in line:
            return line
    return first


def signature_params(symbol: str, text: str) -> list[str]:
    """Identifiers inside the symbol's parameter list (names, types, defaults), noise words out.

    Reads past the signature line, so a parameter list wrapped over lines is read whole.
    """
    line = signature_line(symbol, text)
    at = text.find(line) if line else -1
    if at < 0:
        return []
    named = text.find(symbol, at) if symbol else -1
    opening = text.find("(", named if named >= 0 else at, at + len(line))
    if opening < 0:
        return []
    depth = 0
    for end in range(opening, min(len(text), opening + 2000)):
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            break
    names: list[str] = []
    for param in _top_level_split(text[opening + 1 : end]):
        # `name: type = default` (Python, TypeScript, Rust) keeps `name`; `int n` keeps both.
        declared = re.split(r"[:=]", param, maxsplit=1)[0]
        names.extend(
            ident
            for ident in _IDENT.findall(declared)
            if ident.lower() not in _SIGNATURE_NOISE and ident.lower() not in _VALUE_WORDS
        )
    return names


def _top_level_split(params: str) -> list[str]:
    """Split a parameter list on the commas outside brackets (`Dict[str, int]` stays whole)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(params):
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(params[start:i])
            start = i + 1
    parts.append(params[start:])
    return parts


def name_view(symbol: str, scope: str, text: str) -> str:
    """Name, parameters and scope as plain words: `get all (name, failobj) in message`.

    Embedded beside each chunk: MiniLM matches a docstring-like query against these few words
    far better than against a whole body (a re-ranking signal measured in bench_quality). This
    phrasing beat the bare word list (`message get all name failobj`) on the training task of
    tests/bench/fit_ranker.py: cross-validated MRR@10 0.4943 → 0.4967.
    """
    name = [w.lower() for w in split_identifier(symbol)]
    own = set(name)
    params = [
        w
        for w in (p.lower() for p in _words(signature_line(symbol, text)))
        if w not in _SIGNATURE_NOISE and w not in own
    ]
    view = " ".join(name) or symbol
    if params:
        view += f" ({', '.join(params)})"
    if scope:
        view += " in " + " ".join(w.lower() for w in split_identifier(scope))
    return view.strip() or "code"


def name_columns(symbol: str, scope: str, text: str) -> tuple[str, str]:
    """A chunk's name view and the hash its vector is stored under."""
    view = name_view(symbol, scope, text)
    # Prefixed so a name view never shares a hash (and a vector) with a chunk of the same text.
    return view, content_hash("name\0" + view)
