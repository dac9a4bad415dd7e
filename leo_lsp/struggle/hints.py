"""Turn an open struggle into a hint: a one-line explanation plus places to look.

The places are, first, remembered fixes of the same signature (from any file), then similar code
from the user's own workspace found by search. The search query is the normalised message plus the
identifiers the error is about (quoted in the message, or on the erroring lines), so hits tend to be
code that uses the same API; hits at the error's own location, or that contain the erroring line
verbatim (the broken code itself), are dropped, and hits in other files come first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from leo_lsp.records import SearchHit
from leo_lsp.struggle.detector import StruggleEvent
from leo_lsp.struggle.fixes import Fix

logger = logging.getLogger(__name__)

SearchFn = Callable[[str, int], Awaitable[list[SearchHit]]]
"""`await search(query, limit)` → hits, best first (the store's hybrid search)."""

MAX_FIXES = 2
MAX_SIMILAR = 3

_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_QUOTED = re.compile(r"['\"`\u2018\u201c]([^'\"`\u2019\u201d\n]{1,80})['\"`\u2019\u201d]")
# Words that say nothing about which API the code uses.
_STOP = frozenset(
    """
    and as assert async await break case catch class const continue def default del do elif else
    enum except export extends false final finally fn for from func function go if impl import in
    interface is let match mod mut new nil none not null of or package pass private protected pub
    public raise return self static struct super switch this throw throws true try type typeof use
    var void where while with yield undefined string number boolean int str bool float list dict
    object any the a an to be it its at on by error cannot can not no has have was is are
    """.split()
)


@dataclass(frozen=True, slots=True)
class Related:
    """A place worth looking at; lines 0-indexed, inclusive.

    `path` is the fix's uri for `kind="fix"`, and `SearchHit.path` as the search gave it for
    `kind="similar"`.
    """

    path: str
    start_line: int
    end_line: int
    message: str
    kind: str  # fix | similar


@dataclass(frozen=True, slots=True)
class Hint:
    """What the server publishes as a diagnostic (source `leo`, code `struggle/<category>`)."""

    uri: str
    start_line: int
    end_line: int
    message: str
    code: str
    signature: str
    category: str
    severity: str = "hint"
    source: str = "leo"
    related: list[Related] = field(default_factory=list)
    query: str = ""


def _path_of(uri_or_path: str) -> str:
    if uri_or_path.startswith("file:"):
        return unquote(urlparse(uri_or_path).path)
    return uri_or_path


def _same_file(a: str, b: str) -> bool:
    pa, pb = _path_of(a).replace("\\", "/"), _path_of(b).replace("\\", "/")
    if not pa or not pb:
        return False
    return pa == pb or pa.endswith("/" + pb.lstrip("/")) or pb.endswith("/" + pa.lstrip("/"))


def _overlaps(start: int, end: int, lo: int, hi: int, slack: int = 2) -> bool:
    return start <= hi + slack and lo - slack <= end


def identifiers(text: str) -> list[str]:
    """Identifiers in a line of code or a message, in order, without keywords and noise."""
    seen: dict[str, None] = {}
    for match in _IDENTIFIER.finditer(text):
        for part in [match.group(0), *match.group(0).split(".")]:
            if len(part) >= 3 and part.lower() not in _STOP and not part.isdigit():
                seen.setdefault(part, None)
    return list(seen)


def _api_terms(event: StruggleEvent) -> list[str]:
    """The names the error is about: quoted in the raw message (`'map'`), e.g. a property."""
    terms: dict[str, None] = {}
    for quoted in _QUOTED.findall(event.raw_message):
        for ident in identifiers(quoted):
            terms.setdefault(ident, None)
    return list(terms)


def build_query(event: StruggleEvent) -> str:
    """The search query: the normalised message's words plus the identifiers the error is about."""
    words = [w for w in re.findall(r"[A-Za-z][\w]+", event.message) if w.lower() not in _STOP]
    terms: dict[str, None] = {}
    for term in [*_api_terms(event), *identifiers(event.context), *words]:
        terms.setdefault(term, None)
    return " ".join(list(terms)[:16])


def _rank(hit: SearchHit, event: StruggleEvent, api: Sequence[str], broken: Sequence[str]) -> float:
    score = hit.score
    if api and any(term in hit.snippet for term in api):
        score += 0.5  # uses the same API
    if _same_file(hit.path, event.uri):
        score -= 0.25  # another file shows the user something new
    if any(line in hit.snippet for line in broken):
        score -= 1.0
    return score


async def build_hint(
    event: StruggleEvent, search: SearchFn, fixes: Sequence[Fix], *, limit: int = MAX_SIMILAR
) -> Hint:
    """The hint for an open struggle: explanation, occurrences, past fixes and similar code."""
    related: list[Related] = []
    for fix in list(fixes)[:MAX_FIXES]:
        first_change = next((line.strip() for line in fix.after.splitlines() if line.strip()), "")
        where = "here" if _same_file(fix.uri, event.uri) else "in another file"
        related.append(
            Related(
                path=fix.uri,
                start_line=fix.start_line,
                end_line=fix.end_line,
                message=f"past fix of this error ({where}): {first_change[:100]}".rstrip(": "),
                kind="fix",
            )
        )

    query = build_query(event)
    hits: list[SearchHit] = []
    if query:
        try:
            hits = await search(query, limit * 4)
        except Exception as exc:  # a hint without similar code beats no hint
            logger.warning("struggle hint: search failed: %s", exc)
    api = _api_terms(event)
    broken = [line.strip() for line in event.context.splitlines() if len(line.strip()) >= 8]
    candidates = [
        hit
        for hit in hits
        if not (
            _same_file(hit.path, event.uri)
            and _overlaps(hit.start_line, hit.end_line, event.start_line, event.end_line)
        )
        and not any(
            r.kind == "fix"
            and _same_file(r.path, hit.path)
            and _overlaps(hit.start_line, hit.end_line, r.start_line, r.end_line, 0)
            for r in related
        )
    ]
    candidates.sort(key=lambda hit: _rank(hit, event, api, broken), reverse=True)
    for hit in candidates[:limit]:
        label = hit.scope + "." + hit.symbol if hit.scope and hit.symbol else hit.symbol
        related.append(
            Related(
                path=hit.path,
                start_line=hit.start_line,
                end_line=hit.end_line,
                message=f"similar code: {label or hit.kind}",
                kind="similar",
            )
        )

    times = "once" if event.occurrences == 1 else f"{event.occurrences} times"
    message = f"{event.explanation} (seen {times}: {event.message})"
    if any(r.kind == "fix" for r in related):
        message += " — you fixed this before, see related."
    return Hint(
        uri=event.uri,
        start_line=event.start_line,
        end_line=event.end_line,
        message=message,
        code=f"struggle/{event.category}",
        signature=event.signature,
        category=event.category,
        related=related,
        query=query,
    )
