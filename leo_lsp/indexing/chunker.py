"""Split a document into the chunks leo embeds and a search hit points at.

Query convention (`grammars/<lang>/chunks.scm`): each pattern captures one definition node with one
of the kind captures below, plus optional helpers:

- `@function`, `@method`, `@class`, `@interface`, `@module`, `@section`: the whole definition node
  (include decorators/templates/`export` wrappers by capturing the wrapper). A `@function` whose
  nearest enclosing definition is a class or interface becomes a `method`.
- `@name`: the node whose text is the symbol; a name `Foo::bar` gives scope `Foo`, symbol `bar`.
- `@scope`: optional, names the scope explicitly (Go method receivers).
- When several patterns capture the same node, the first pattern in the file wins.

Chunks are whole lines (`start_col` 0, `end_col` the UTF-16 length of the last line) except for
minified or generated text, which is cut into windows of bounded size anywhere in a line. Every
non-blank line belongs to exactly one chunk:

- class-like definitions (class, interface, module, section) are containers: their header and
  fields are chunks of the container's kind, each member definition its own chunk;
- a function keeps nested functions inside its chunk unless it is too long;
- anything too long (> `max_lines` lines or > `max_chars` non-blank characters: MiniLM reads about
  256 tokens) is split on statement boundaries, the later parts carrying the signature as
  `context`;
- top-level code between definitions becomes `block` chunks (adjacent ones merged up to the limits);
  comments/attributes right above a definition join it; tiny crumbs (a closing `}` or `end`) join
  the previous chunk;
- languages without a grammar get line windows (about `window_lines`, broken at blank lines).

Lines are split on "\\n" only (tree-sitter's rows); a trailing "\\r" is not counted in `end_col`.

`ParsedDocument` keeps a tree per open buffer, re-parses incrementally with `tree.edit`, and reuses
the chunking of every top-level region whose text and syntax tree did not change; its result equals
`Chunker().chunk` of the new text.
"""

from __future__ import annotations

import importlib.resources
import logging
import threading
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from pathlib import Path

import tree_sitter

from leo_lsp.indexing.languages import LANGUAGES, get_language
from leo_lsp.records import Chunk

logger = logging.getLogger(__name__)

KINDS = ("function", "method", "class", "interface", "module", "section")
_CONTAINERS = frozenset({"class", "interface", "module", "section"})
_PREFIX_TYPES = frozenset({"attribute_item", "decorator", "annotation"})

# A chunk of code longer than this is split. 1,500 non-blank characters is roughly what MiniLM's
# 256 tokens cover; 60 lines keeps a hit small enough to read at a glance.
MAX_LINES = 60
MAX_CHARS = 1500
WINDOW_LINES = 40
# A one-line crumb with fewer non-blank characters than this (`}`, `end`, `main()`) joins the
# chunk before it.
TINY_CHARS = 24
# Lines a piece may exceed max_lines by when tiny crumbs (a closing line or two) fold into it.
CRUMB_SLACK = 2
# Minified/generated detection: lines longer than LONG_LINE holding more than LONG_SHARE of the
# text, or fewer than LETTER_SHARE letters among non-blank characters.
LONG_LINE = 1000
LONG_SHARE = 0.3
LETTER_SHARE = 0.25
# Above this size a document is parsed in independent segments cut at likely top-level boundaries,
# so the syntax tree (several times the size of the text) stays bounded in memory.
SEGMENT_BYTES = 1 << 20
# Statement-boundary search under a node that must be split: how deep and how many nodes.
_BOUNDARY_DEPTH = 6
_BOUNDARY_BUDGET = 20_000

_ASCII_LETTERS_AND_HIGH = bytes(range(65, 91)) + bytes(range(97, 123)) + bytes(range(128, 256))

_queries: dict[str, tree_sitter.Query | None] = {}
_queries_lock = threading.Lock()


def _grammars_dirs() -> list[Path]:
    dirs: list[Path] = []
    try:
        installed = importlib.resources.files("leo_lsp") / "grammars"
        if installed.is_dir():
            dirs.append(Path(str(installed)))
    except (ModuleNotFoundError, NotADirectoryError, TypeError):
        pass
    dirs.append(Path(__file__).resolve().parents[2] / "grammars")
    return dirs


def load_query_source(language: str) -> str | None:
    """The text of `grammars/<dir>/chunks.scm` for a language, or None if there is none."""
    spec = LANGUAGES.get(language)
    if spec is None:
        return None
    for base in _grammars_dirs():
        path = base / spec.query_dir / "chunks.scm"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def get_query(language: str) -> tree_sitter.Query | None:
    """The compiled chunks query for a language (cached; None if it has no grammar or query)."""
    if language in _queries:
        return _queries[language]
    with _queries_lock:
        if language not in _queries:
            _queries[language] = _compile_query(language)
        return _queries[language]


def _compile_query(language: str) -> tree_sitter.Query | None:
    lang = get_language(language)
    source = load_query_source(language)
    if lang is None or source is None:
        return None
    try:
        return tree_sitter.Query(lang, source)
    except (tree_sitter.QueryError, ValueError) as exc:
        logger.error("chunks.scm for %s does not compile: %s", language, exc)
        return None


def looks_generated(text: str) -> bool:
    """True for minified or generated text: very long lines dominate, or few letters."""
    if not text:
        return False
    lengths = [len(line) for line in text.split("\n")]
    long_chars = sum(n for n in lengths if n > LONG_LINE)
    if long_chars > LONG_SHARE * len(text):
        return True
    data = text.encode("utf-8", "surrogatepass")
    nonblank = len(data.translate(None, b" \t\r\n\f\v"))
    if nonblank < 2000:
        return False
    letters = len(data) - len(data.translate(None, _ASCII_LETTERS_AND_HIGH))
    return letters < LETTER_SHARE * nonblank


# ---------------------------------------------------------------------------------------------
# Document facts


class _Doc:
    """Per-line facts about one document text."""

    __slots__ = ("text", "data", "lines", "starts", "weights")

    def __init__(self, text: str, data: bytes | None = None) -> None:
        self.text = text
        self.data = data if data is not None else text.encode("utf-8", "surrogatepass")
        self.lines = text.split("\n")
        # starts[i] is the byte offset of line i; starts[n] is one past the end (+1 for a "\n").
        self.starts = [0, *accumulate(len(b) + 1 for b in self.data.split(b"\n"))]
        # What a line costs in a chunk: its non-blank characters plus one for the line break.
        self.weights = [len(line.strip()) for line in self.lines]

    def weight(self, start: int, end: int) -> int:
        """Non-blank characters (plus line breaks) of lines start..end inclusive."""
        return sum(self.weights[start : end + 1]) + (end - start + 1)

    def blank(self, line: int) -> bool:
        """Whether a line is blank."""
        return self.weights[line] == 0

    def node_text(self, node: tree_sitter.Node) -> str:
        """The text of a node."""
        return self.data[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _last_line(node: tree_sitter.Node) -> int:
    """The last line a node occupies (a node ending at column 0 ends on the line before)."""
    start, end = node.start_point, node.end_point
    if end.column == 0 and end.row > start.row:
        return end.row - 1
    return end.row


# ---------------------------------------------------------------------------------------------
# Pieces: line ranges with an identity, before they become Chunks


@dataclass(slots=True)
class _Piece:
    start: int
    end: int
    kind: str
    symbol: str = ""
    scope: str = ""
    context: str = ""
    role: str = "block"  # def (a definition or a part of it) | crumb | block | prefix

    def shifted(self, delta: int) -> _Piece:
        return _Piece(
            self.start + delta,
            self.end + delta,
            self.kind,
            self.symbol,
            self.scope,
            self.context,
            self.role,
        )


@dataclass(slots=True)
class _Def:
    node: tree_sitter.Node
    kind: str
    symbol: str
    scope_override: str | None
    start: int
    end: int
    pattern: int
    scope: str = ""
    children: list[_Def] = field(default_factory=list)


class Chunker:
    """Turns a document into chunks; thread-safe (a parser per call)."""

    def __init__(
        self,
        max_lines: int = MAX_LINES,
        max_chars: int = MAX_CHARS,
        window_lines: int = WINDOW_LINES,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.window_lines = window_lines
        self.segment_bytes = segment_bytes

    # -- public API ------------------------------------------------------------------------

    def chunk(self, text: str, path: str, language: str) -> list[Chunk]:
        """Chunks of `text` covering every non-blank line exactly once, in document order."""
        if not text.strip():
            return []
        if looks_generated(text):
            return self._byte_windows(text, path, language)
        lang = get_language(language)
        query = get_query(language) if lang is not None else None
        doc = _Doc(text)
        if lang is None or query is None:
            return self._to_chunks(doc, self._line_windows(doc), path, language)
        if len(doc.data) <= self.segment_bytes:
            tree = tree_sitter.Parser(lang).parse(doc.data)
            pieces = self._pieces_for_tree(doc, tree, query, None)
        else:
            pieces = self._segmented_pieces(doc, lang, query)
        return self._to_chunks(doc, pieces, path, language)

    # -- tree → pieces ---------------------------------------------------------------------

    def _pieces_for_tree(
        self,
        doc: _Doc,
        tree: tree_sitter.Tree,
        query: tree_sitter.Query,
        cache: _GroupCache | None,
        first_line: int = 0,
        last_line: int | None = None,
    ) -> list[_Piece]:
        raw: list[_Piece] = []
        for nodes, start, end in _groups(tree.root_node, first_line):
            key: tuple[object, ...] | None = None
            if cache is not None:
                key = _group_key(doc, nodes, start, end)
                hit = cache.get(key)
                if hit is not None:
                    raw.extend(p.shifted(start) for p in hit)
                    continue
            group = self._group_pieces(doc, query, nodes, start, end, cache)
            if cache is not None and key is not None:
                cache.put(key, [p.shifted(-start) for p in group])
            raw.extend(group)
        last = len(doc.lines) - 1 if last_line is None else last_line
        return self._merge(doc, self._fill_gaps(doc, raw, first_line, last))

    def _fill_gaps(self, doc: _Doc, pieces: list[_Piece], first: int, last: int) -> list[_Piece]:
        """Block pieces for any non-blank line no group covered (coverage never depends on it)."""
        out: list[_Piece] = []
        cursor = first
        for p in [*pieces, None]:
            gap_end = last if p is None else p.start - 1
            if _has_text(doc, cursor, gap_end):
                spans = _pack(doc, cursor, gap_end, {}, self.max_lines, self.max_chars)
                out.extend(_Piece(a, b, "block", role="block") for a, b in spans)
            if p is not None:
                out.append(p)
                cursor = max(cursor, p.end + 1)
        return out

    def _segmented_pieces(
        self, doc: _Doc, lang: tree_sitter.Language, query: tree_sitter.Query
    ) -> list[_Piece]:
        pieces: list[_Piece] = []
        parser = tree_sitter.Parser(lang)
        for first, last in _segments(doc, self.segment_bytes):
            start_byte = doc.starts[first]
            end_byte = min(doc.starts[last + 1] - 1, len(doc.data))
            segment = doc.data[start_byte:end_byte]
            tree = parser.parse(segment)
            # Parse the segment alone, then read its rows as document rows.
            sub = _Doc(segment.decode("utf-8", "surrogatepass"), segment)
            part = self._pieces_for_tree(sub, tree, query, None)
            pieces.extend(p.shifted(first) for p in part)
            del tree
        return pieces

    def _group_pieces(
        self,
        doc: _Doc,
        query: tree_sitter.Query,
        nodes: Sequence[tree_sitter.Node],
        start: int,
        end: int,
        cache: _GroupCache | None = None,
    ) -> list[_Piece]:
        """Pieces of one top-level group of nodes occupying lines start..end."""
        defs = _find_defs(doc, query, nodes)
        if not defs and all(_is_prefix(n) for n in nodes):
            return (
                [_Piece(start, end, "block", role="prefix")] if _has_text(doc, start, end) else []
            )
        root = _Def(nodes[0], "block", "", None, start, end, -1)
        root.children = _nest(defs)
        out: list[_Piece] = []
        # An explicit work stack instead of recursion (deep nesting must not hit Python's limit):
        # an entry is a finished piece or a definition to expand over lines lo..hi.
        stack: list[_Piece | _CacheMark | tuple[_Def, int, int, bool]] = [(root, start, end, True)]
        while stack:
            item = stack.pop()
            if isinstance(item, _Piece):
                out.append(item)
                continue
            if isinstance(item, _CacheMark):
                assert cache is not None
                cache.put(item.key, [p.shifted(-item.line) for p in out[item.mark :]])
                continue
            d, lo, hi, is_root = item
            if hi < lo:
                continue
            key: tuple[object, ...] | None = None
            if cache is not None and not is_root:
                key = _def_key(doc, d, lo, hi)
                hit = cache.get(key)
                if hit is not None:
                    out.extend(p.shifted(lo) for p in hit)
                    continue
                mark = len(out)
                # Pieces of this definition are complete once everything pushed after it is done.
                stack.append(_CacheMark(key, lo, mark))
            split_children = bool(d.children) and (
                is_root or d.kind in _CONTAINERS or not self._fits(doc, lo, hi)
            )
            if not split_children:
                out.extend(self._split_range(doc, d, lo, hi, primary=True, nodes=[d.node]))
                continue
            todo: list[_Piece | _CacheMark | tuple[_Def, int, int, bool]] = []
            cursor = lo
            # A member starting on its container's first line stays inside the container's text.
            min_start = lo if is_root else lo + 1
            kids = [c for c in d.children if min_start <= c.start <= hi]
            primary_used = is_root
            for i, c in enumerate(kids + [None]):
                if c is not None:
                    if c.start < cursor:
                        continue  # shares a line with an earlier sibling: stays in that text
                    c_end = min(c.end, hi)
                    nxt = next((k for k in kids[i + 1 :] if k.start > c.start), None)
                    if nxt is not None and nxt.start <= c_end:
                        c_end = nxt.start - 1  # the next member owns the line it starts on
                    if c_end < c.start:
                        continue
                    gap_end = c.start - 1
                else:
                    gap_end = hi
                if cursor <= gap_end:
                    if is_root:
                        parts = self._split_range(
                            doc,
                            None,
                            cursor,
                            gap_end,
                            primary=False,
                            nodes=[n for n in nodes if _overlaps(n, cursor, gap_end)],
                        )
                    else:
                        primary = not primary_used
                        parts = self._split_range(
                            doc, d, cursor, gap_end, primary=primary, nodes=[d.node]
                        )
                        primary_used = True
                    todo.extend(parts)
                if c is not None:
                    todo.append((c, c.start, c_end, False))
                    cursor = c_end + 1
            stack.extend(reversed(todo))
        return [p for p in out if _has_text(doc, p.start, p.end)]

    def _fits(self, doc: _Doc, start: int, end: int) -> bool:
        return end - start + 1 <= self.max_lines and doc.weight(start, end) <= self.max_chars

    def _split_range(
        self,
        doc: _Doc,
        owner: _Def | None,
        lo: int,
        hi: int,
        *,
        primary: bool,
        nodes: Sequence[tree_sitter.Node],
    ) -> list[_Piece]:
        """Pieces for lines lo..hi, split on statement boundaries when too long."""
        lo, hi = _trim(doc, lo, hi)
        if hi < lo:
            return []
        if owner is None or owner.kind == "block":
            ident = _Piece(lo, hi, "block", role="block")
            signature = ""
        else:
            ident = _Piece(lo, hi, owner.kind, owner.symbol, owner.scope, role="def")
            signature = _signature(doc, owner.node)
            if not primary:
                ident.role = "crumb"
                ident.context = signature
        if self._fits(doc, lo, hi):
            return [ident]
        bounds = _boundaries(doc, nodes, lo, hi)
        spans = _pack(doc, lo, hi, bounds, self.max_lines, self.max_chars)
        out = []
        for i, (a, b) in enumerate(spans):
            p = replace(ident, start=a, end=b)
            if i > 0 and ident.kind != "block":
                p.context = signature
                if ident.role == "def":
                    p.role = "def"
            out.append(p)
        return out

    # -- merging ---------------------------------------------------------------------------

    def _merge(self, doc: _Doc, pieces: list[_Piece]) -> list[_Piece]:
        """Attach prefixes to definitions, merge adjacent blocks, fold tiny crumbs into others."""
        # 1. Comments/attributes right above a definition join it.
        out: list[_Piece] = []
        i = 0
        while i < len(pieces):
            p = pieces[i]
            nxt = pieces[i + 1] if i + 1 < len(pieces) else None
            if (
                p.role == "prefix"
                and nxt is not None
                and nxt.role == "def"
                and nxt.start == p.end + 1
                and self._fits(doc, p.start, nxt.end)
            ):
                out.append(replace(nxt, start=p.start))
                i += 2
                continue
            out.append(p if p.role != "prefix" else replace(p, role="block"))
            i += 1
        # 2. Adjacent top-level blocks merge up to the limits.
        merged: list[_Piece] = []
        for p in out:
            last = merged[-1] if merged else None
            if (
                last is not None
                and last.role == "block"
                and p.role == "block"
                and self._fits(doc, last.start, p.end)
            ):
                last.end = p.end
            else:
                merged.append(replace(p))
        # 3. Tiny crumbs and blocks join the previous piece (or the next one at the start).
        final: list[_Piece] = []
        pending: _Piece | None = None
        for p in merged:
            tiny = (
                p.role in ("crumb", "block")
                and p.start == p.end
                and doc.weights[p.start] < TINY_CHARS
            )
            # Folded only where that keeps the piece near the limit: a stray line after a run of
            # blank lines stays a piece of its own rather than stretching the one before it.
            if tiny and final and p.end - final[-1].start < self.max_lines + CRUMB_SLACK:
                final[-1].end = p.end
                continue
            if tiny and not final:
                pending = p if pending is None else replace(pending, end=p.end)
                continue
            if pending is not None and p.end - pending.start < self.max_lines + CRUMB_SLACK:
                p = replace(p, start=pending.start)
                pending = None
            elif pending is not None:
                final.append(pending)
                pending = None
            final.append(p)
        if pending is not None:
            final.append(pending)
        return final

    # -- windows ---------------------------------------------------------------------------

    def _line_windows(self, doc: _Doc) -> list[_Piece]:
        """About `window_lines` lines each, broken after blank lines when possible."""
        bounds = {i: 0 for i in range(1, len(doc.lines)) if doc.blank(i - 1)}
        spans = _pack(doc, 0, len(doc.lines) - 1, bounds, self.window_lines, self.max_chars)
        return [_Piece(a, b, "window", role="window") for a, b in spans]

    def _byte_windows(self, text: str, path: str, language: str) -> list[Chunk]:
        """Windows of at most `max_chars` characters, cut at a line break, space or punctuation."""
        chunks: list[Chunk] = []
        n = len(text)
        pos = 0
        byte_pos = 0  # UTF-8 offset of `pos`
        line = 0  # line of `pos`
        line_start = 0  # character offset where `line` starts
        while pos < n:
            # Skip whitespace between windows, keeping the coordinates in step.
            stripped = len(text) - len(text[pos:].lstrip()) if text[pos].isspace() else pos
            if stripped >= n:
                break
            if stripped > pos:
                skipped = text[pos:stripped]
                byte_pos += len(skipped.encode("utf-8", "surrogatepass"))
                newlines = skipped.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + skipped.rfind("\n") + 1
                pos = stripped
            end = min(pos + self.max_chars, n)
            if end < n:
                floor = pos + self.max_chars // 2
                cut = text.rfind("\n", floor, end)
                if cut < 0:
                    cut = max(text.rfind(c, floor, end) for c in " \t;,})")
                    cut = cut + 1 if cut >= 0 else end
                end = cut if cut > pos else end
            piece = text[pos:end].rstrip()
            start_col = _utf16_len(text[line_start:pos])
            newlines = piece.count("\n")
            end_line = line + newlines
            end_line_start = pos + piece.rfind("\n") + 1 if newlines else line_start
            end_col = _utf16_len(text[end_line_start : pos + len(piece)])
            piece_bytes = len(piece.encode("utf-8", "surrogatepass"))
            chunks.append(
                Chunk(
                    path=path,
                    language=language,
                    text=piece,
                    start_line=line,
                    end_line=end_line,
                    start_col=start_col,
                    end_col=end_col,
                    start_byte=byte_pos,
                    end_byte=byte_pos + piece_bytes,
                    kind="window",
                )
            )
            consumed = text[pos:end]
            byte_pos += len(consumed.encode("utf-8", "surrogatepass"))
            c_newlines = consumed.count("\n")
            if c_newlines:
                line += c_newlines
                line_start = pos + consumed.rfind("\n") + 1
            pos = end
        return chunks

    # -- output ----------------------------------------------------------------------------

    def _to_chunks(
        self, doc: _Doc, pieces: Iterable[_Piece], path: str, language: str
    ) -> list[Chunk]:
        chunks: list[Chunk] = []
        for p in pieces:
            start, end = _trim(doc, p.start, p.end)
            if end < start:
                continue
            last = doc.lines[end]
            if last.endswith("\r"):
                last = last[:-1]
            end_byte = doc.starts[end] + len(last.encode("utf-8", "surrogatepass"))
            start_byte = doc.starts[start]
            text = doc.data[start_byte:end_byte].decode("utf-8", "surrogatepass")
            chunks.append(
                Chunk(
                    path=path,
                    language=language,
                    text=text,
                    start_line=start,
                    end_line=end,
                    start_col=0,
                    end_col=_utf16_len(last),
                    start_byte=start_byte,
                    end_byte=end_byte,
                    symbol=p.symbol,
                    kind=p.kind,
                    scope=p.scope,
                    context=p.context,
                )
            )
        return chunks


# ---------------------------------------------------------------------------------------------
# Incremental re-chunking of an open buffer


class ParsedDocument:
    """One open buffer: its tree, re-parsed incrementally, and its current chunks.

    `update` is safe to call from any thread but not meant to run concurrently for one buffer
    (a lock serialises it).
    """

    def __init__(self, path: str, language: str, text: str, chunker: Chunker | None = None) -> None:
        self.path = path
        self.language = language
        self._chunker = chunker or Chunker()
        self._lock = threading.Lock()
        lang = get_language(language)
        self._query = get_query(language) if lang is not None else None
        self._parser = tree_sitter.Parser(lang) if lang is not None and self._query else None
        self._cache = _GroupCache()
        self._text = ""
        self._data = b""
        self._tree: tree_sitter.Tree | None = None
        self._chunks: list[Chunk] = []
        with self._lock:
            self._reset(text)

    @property
    def text(self) -> str:
        """The buffer's current text."""
        return self._text

    @property
    def chunks(self) -> list[Chunk]:
        """The current chunks (a copy)."""
        return list(self._chunks)

    def error_lines(self, limit: int = 50) -> list[int]:
        """0-indexed lines of syntax errors (ERROR and MISSING nodes) in the current tree."""
        tree = self._tree
        if tree is None or not tree.root_node.has_error:
            return []
        lines: set[int] = set()
        cursor = tree.walk()
        # Iterative walk (deeply nested code must not hit the recursion limit), descending only
        # into subtrees that contain an error.
        while len(lines) < limit:
            node = cursor.node
            if node is not None and (node.is_error or node.is_missing):
                lines.add(node.start_point[0])
            elif node is not None and node.has_error and cursor.goto_first_child():
                continue
            while not cursor.goto_next_sibling():
                if not cursor.goto_parent():
                    return sorted(lines)
        return sorted(lines)

    def update(self, new_text: str) -> list[Chunk]:
        """Apply the buffer's new text; re-parse incrementally and re-chunk what changed."""
        with self._lock:
            if new_text == self._text:
                return list(self._chunks)
            data = new_text.encode("utf-8", "surrogatepass")
            if self._tree is None or not self._incremental(new_text, data):
                return self._reset(new_text, data)
            old = self._data
            start, old_end, new_end = _diff(old, data)
            self._tree.edit(
                start_byte=start,
                old_end_byte=old_end,
                new_end_byte=new_end,
                start_point=_point(old, start),
                old_end_point=_point(old, old_end),
                new_end_point=_point(data, new_end),
            )
            assert self._parser is not None
            tree = self._parser.parse(data, self._tree)
            if tree.root_node.has_error:
                # Error recovery after an incremental parse can differ from a fresh parse of the
                # same text (measured on TypeScript); re-parse so chunks never depend on history.
                # Chunking still reuses every unchanged region through the cache.
                tree = self._parser.parse(data)
            self._tree = tree
            self._text, self._data = new_text, data
            self._chunks = self._chunk_tree(new_text, data)
            return list(self._chunks)

    def _incremental(self, text: str, data: bytes) -> bool:
        return (
            self._parser is not None
            and bool(text.strip())
            and len(data) <= self._chunker.segment_bytes
            and not looks_generated(text)
        )

    def _reset(self, text: str, data: bytes | None = None) -> list[Chunk]:
        data = data if data is not None else text.encode("utf-8", "surrogatepass")
        self._text, self._data = text, data
        if self._incremental(text, data):
            assert self._parser is not None
            self._tree = self._parser.parse(data)
            self._chunks = self._chunk_tree(text, data)
        else:
            self._tree = None
            self._cache = _GroupCache()
            self._chunks = self._chunker.chunk(text, self.path, self.language)
        return list(self._chunks)

    def _chunk_tree(self, text: str, data: bytes) -> list[Chunk]:
        assert self._tree is not None and self._query is not None
        doc = _Doc(text, data)
        pieces = self._chunker._pieces_for_tree(doc, self._tree, self._query, self._cache)
        self._cache.rotate()
        return self._chunker._to_chunks(doc, pieces, self.path, self.language)


class _GroupCache:
    """Pieces of top-level groups keyed by their text; keeps only what the last pass used."""

    def __init__(self) -> None:
        self._old: dict[tuple[object, ...], list[_Piece]] = {}
        self._new: dict[tuple[object, ...], list[_Piece]] = {}

    def get(self, key: tuple[object, ...]) -> list[_Piece] | None:
        hit = self._new.get(key)
        if hit is None:
            hit = self._old.get(key)
            if hit is not None:
                self._new[key] = hit
        return hit

    def put(self, key: tuple[object, ...], pieces: list[_Piece]) -> None:
        self._new[key] = pieces

    def rotate(self) -> None:
        self._old, self._new = self._new, {}


def _diff(old: bytes, new: bytes) -> tuple[int, int, int]:
    """(start, old_end, new_end) of the single edit turning `old` into `new`, on char boundaries."""
    limit = min(len(old), len(new))
    block = 4096
    p = 0
    while p < limit and old[p : p + block] == new[p : p + block]:
        p += block
    p = min(p, limit)
    hi = min(p + block, limit)
    while p < hi and old[p] == new[p]:
        p += 1
    while p > 0 and (
        (p < len(new) and new[p] & 0xC0 == 0x80) or (p < len(old) and old[p] & 0xC0 == 0x80)
    ):
        p -= 1
    room = limit - p
    s = 0
    while (
        s < room
        and old[len(old) - s - block : len(old) - s] == new[len(new) - s - block : len(new) - s]
        and s + block <= room
    ):
        s += block
    while s < room and old[len(old) - s - 1] == new[len(new) - s - 1]:
        s += 1
    while s > 0 and new[len(new) - s] & 0xC0 == 0x80:
        s -= 1
    return p, len(old) - s, len(new) - s


def _point(data: bytes, offset: int) -> tuple[int, int]:
    row = data.count(b"\n", 0, offset)
    return row, offset - (data.rfind(b"\n", 0, offset) + 1)


# ---------------------------------------------------------------------------------------------
# Helpers


def _utf16_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _is_prefix(node: tree_sitter.Node) -> bool:
    """Comments and attributes: text that belongs to the definition below it."""
    return "comment" in node.type or node.type in _PREFIX_TYPES


def _has_text(doc: _Doc, start: int, end: int) -> bool:
    return start <= end and any(doc.weights[start : end + 1])


def _trim(doc: _Doc, lo: int, hi: int) -> tuple[int, int]:
    while lo <= hi and doc.blank(lo):
        lo += 1
    while hi >= lo and doc.blank(hi):
        hi -= 1
    return lo, hi


def _overlaps(node: tree_sitter.Node, start: int, end: int) -> bool:
    return node.start_point.row <= end and _last_line(node) >= start


def _groups(
    root: tree_sitter.Node, first_line: int = 0
) -> Iterable[tuple[list[tree_sitter.Node], int, int]]:
    """Top-level nodes grouped so that no two groups share a line."""
    nodes: list[tree_sitter.Node] = []
    start = end = -1
    for node in root.children:
        if node.start_byte == node.end_byte:
            continue
        s, e = node.start_point.row, _last_line(node)
        if nodes and s <= end:
            nodes.append(node)
            end = max(end, e)
            continue
        if nodes:
            yield nodes, start, end
        nodes, start, end = [node], max(s, first_line), e
    if nodes:
        yield nodes, start, end


@dataclass(slots=True)
class _CacheMark:
    key: tuple[object, ...]
    line: int
    mark: int


def _def_key(doc: _Doc, d: _Def, lo: int, hi: int) -> tuple[object, ...]:
    """What a definition's pieces depend on: its text, syntax tree, identity and line range."""
    base = doc.starts[lo]
    stop = max(doc.starts[hi + 1] - 1, d.node.end_byte)
    return (
        "def",
        doc.data[base:stop],
        d.node.start_byte - base,
        _tree_key(d.node, base),
        hi - lo,
        d.kind,
        d.symbol,
        d.scope,
        len(d.children),
    )


def _group_key(
    doc: _Doc, nodes: Sequence[tree_sitter.Node], start: int, end: int
) -> tuple[object, ...]:
    """What a group's pieces depend on: its text and its syntax trees.

    The text alone is not enough: error recovery can parse the same text differently depending on
    the text around it (a `name:` field moving to another identifier, say).
    """
    base = doc.starts[start]
    text = doc.data[base : doc.starts[end + 1] - 1]
    return (text, tuple((n.start_byte - base, _tree_key(n, base)) for n in nodes))


def _tree_key(node: tree_sitter.Node, base: int) -> object:
    """What identifies a node's tree given its text: its type and end, or its whole shape.

    An error-free tree is determined by its text; only error recovery depends on the text around
    it, so the full walk (~1 µs a node) is paid only for subtrees with errors in them.
    """
    if node.has_error:
        return _shape(node)
    return (node.type, node.end_byte - base)


def _shape(node: tree_sitter.Node) -> bytes:
    """The shape of a node's tree as position-free bytes (cheap to hash and compare).

    In pre-order, per node: its kind, field, whether it is MISSING, start offset from its parent,
    length and child count. The same text with the same shape is the same tree.
    """
    cursor = node.walk()
    rec: list[int] = []
    open_starts: list[int] = []  # start bytes of the cursor's open ancestors
    while True:
        n = cursor.node
        assert n is not None
        start = n.start_byte
        # The top node's field and offset belong to its parent, not to its tree.
        field = (cursor.field_id or 0) if open_starts else 0
        offset = start - open_starts[-1] if open_starts else 0
        rec += (n.kind_id, field, n.is_missing, offset, n.end_byte - start, n.child_count)
        if cursor.goto_first_child():
            open_starts.append(start)
            continue
        while not cursor.goto_next_sibling():
            if not open_starts:
                return array("i", rec).tobytes()
            cursor.goto_parent()
            open_starts.pop()


def _find_defs(
    doc: _Doc, query: tree_sitter.Query, nodes: Sequence[tree_sitter.Node]
) -> list[_Def]:
    group_start = nodes[0].start_point.row
    best: dict[tuple[int, int], _Def] = {}
    cursor = tree_sitter.QueryCursor(query)
    for top in nodes:
        for pattern, caps in cursor.matches(top):
            kind = next((k for k in KINDS if k in caps), None)
            if kind is None:
                continue
            node = caps[kind][0]
            key = (node.start_byte, node.end_byte)
            if key in best and best[key].pattern <= pattern:
                continue
            names = caps.get("name")
            symbol = _first_line(doc.node_text(names[0])) if names else ""
            scopes = caps.get("scope")
            scope = _first_line(doc.node_text(scopes[0])) if scopes else None
            start = max(_prefix_start(doc, node), group_start)
            best[key] = _Def(node, kind, symbol, scope, start, _last_line(node), pattern)
    return list(best.values())


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()[:120]


def _prefix_start(doc: _Doc, node: tree_sitter.Node) -> int:
    """The first line of a definition including comments/attributes right above it."""
    start = node.start_point.row
    anchor = node
    while (
        anchor.parent is not None
        and anchor.parent.parent is not None
        and anchor.parent.start_point.row == start
    ):
        anchor = anchor.parent
    sib = anchor.prev_named_sibling
    while sib is not None and _is_prefix(sib) and _last_line(sib) == start - 1:
        row = sib.start_point.row
        line = doc.lines[row]
        if sib.start_point.column != len(line) - len(line.lstrip()):
            break  # a trailing comment of the previous statement
        start = row
        sib = sib.prev_named_sibling
    return start


def _nest(defs: list[_Def]) -> list[_Def]:
    """Definitions as a forest by containment; wrapper duplicates dropped; scopes and kinds set."""
    defs.sort(key=lambda d: (d.node.start_byte, -d.node.end_byte, d.pattern))
    roots: list[_Def] = []
    stack: list[_Def] = []
    for d in defs:
        while stack and not (
            stack[-1].node.start_byte <= d.node.start_byte
            and d.node.end_byte <= stack[-1].node.end_byte
        ):
            stack.pop()
        parent = stack[-1] if stack else None
        if parent is not None and parent.symbol == d.symbol and parent.end == d.end:
            continue  # e.g. the function inside a decorated_definition or template_declaration
        if "::" in d.symbol:
            head, _, tail = d.symbol.rpartition("::")
            d.symbol = tail
            d.scope_override = d.scope_override or head.replace("::", ".")
        if parent is not None:
            parent_name = ".".join(x for x in (parent.scope, parent.symbol) if x)
            d.scope = d.scope_override or parent_name
            if d.kind == "function" and parent.kind in ("class", "interface"):
                d.kind = "method"
            parent.children.append(d)
        else:
            d.scope = d.scope_override or ""
            if d.kind == "function" and d.scope_override:
                d.kind = "method"
            roots.append(d)
        stack.append(d)
    return roots


_BODY_TYPES = frozenset(
    {
        "declaration_list",
        "field_declaration_list",
        "compound_statement",
        "statement_block",
        "enum_variant_list",
        "enumerator_list",
    }
)


def _find_body(node: tree_sitter.Node) -> tree_sitter.Node | None:
    frontier = [node]
    for _ in range(3):
        deeper: list[tree_sitter.Node] = []
        for n in frontier:
            body = n.child_by_field_name("body")
            if body is not None:
                return body
            for c in n.named_children:
                if c.type in _BODY_TYPES or c.type.endswith(("_body", "block")):
                    return c
                deeper.append(c)
        frontier = deeper[:32]
    return None


def _signature(doc: _Doc, node: tree_sitter.Node) -> str:
    """The definition's header lines (at most four), kept as context of a split body."""
    start = node.start_point.row
    body = _find_body(node)
    end = start
    if body is not None and body.start_point.row > start:
        opens = doc.data[body.start_byte : body.start_byte + 1] == b"{"
        end = body.start_point.row if opens else body.start_point.row - 1
    lines = [line.rstrip() for line in doc.lines[start : end + 1] if line.strip()][-4:]
    indent = min((len(x) - len(x.lstrip()) for x in lines), default=0)
    return "\n".join(x[indent:] for x in lines)[:300]


def _boundaries(doc: _Doc, nodes: Sequence[tree_sitter.Node], lo: int, hi: int) -> dict[int, int]:
    """Lines in (lo, hi] where a syntax node starts a line, scored (lower cuts better)."""
    bounds: dict[int, int] = {}
    end_col = len(doc.data)  # any column past the line's end clamps to it
    # Start from the smallest node spanning the range, not from the whole definition.
    frontier: list[tuple[tree_sitter.Node, int]] = []
    for n in nodes:
        if not _overlaps(n, lo, hi):
            continue
        inner = n.descendant_for_point_range((lo, 0), (hi, end_col))
        frontier.append((inner if inner is not None else n, 0))
    i = 0
    while i < len(frontier) and i < _BOUNDARY_BUDGET:
        node, depth = frontier[i]
        i += 1
        row = node.start_point.row
        if lo < row <= hi and node.is_named and row not in bounds:
            line = doc.lines[row]
            if node.start_point.column == len(line) - len(line.lstrip()):
                bounds[row] = 2 * depth - (1 if doc.blank(row - 1) else 0)
        if depth < _BOUNDARY_DEPTH and node.child_count:
            for c in node.children:
                if c.start_point.row > hi:
                    break
                if c.end_point.row >= lo:
                    frontier.append((c, depth + 1))
    return bounds


def _pack(
    doc: _Doc,
    lo: int,
    hi: int,
    bounds: dict[int, int],
    max_lines: int,
    max_chars: int,
) -> list[tuple[int, int]]:
    """Greedy spans of lo..hi within the limits, cut at the best-scored boundary of each span."""
    spans: list[tuple[int, int]] = []
    pos = lo
    while pos <= hi:
        while pos <= hi and doc.blank(pos):
            pos += 1
        if pos > hi:
            break
        end = pos
        weight = doc.weights[pos] + 1
        while (
            end < hi
            and end + 2 - pos <= max_lines
            and weight + doc.weights[end + 1] + 1 <= max_chars
        ):
            end += 1
            weight += doc.weights[end] + 1
        if end >= hi:
            spans.append(_trim(doc, pos, hi))
            break
        min_len = max(1, (end - pos + 1) // 3)
        cut = end + 1
        best: int | None = None
        for c in range(pos + min_len, end + 2):
            score = bounds.get(c)
            if score is not None and (best is None or score <= best):
                best, cut = score, c
        spans.append(_trim(doc, pos, cut - 1))
        pos = cut
    return [s for s in spans if s[0] <= s[1]]


def _segments(doc: _Doc, segment_bytes: int) -> list[tuple[int, int]]:
    """Line ranges of about `segment_bytes` each, cut before a column-0 line after a blank line."""
    import bisect

    n = len(doc.lines)
    segments: list[tuple[int, int]] = []
    first = 0
    while first < n:
        target = bisect.bisect_right(doc.starts, doc.starts[first] + segment_bytes) - 1
        if target >= n - 1 or target <= first:
            segments.append((first, n - 1))
            break
        cut = target
        for line in range(target, max(first + 1, target - 20_000), -1):
            text = doc.lines[line]
            if doc.blank(line - 1) and text[:1] and not text[:1].isspace():
                cut = line
                break
        segments.append((first, cut - 1))
        first = cut
    return segments
