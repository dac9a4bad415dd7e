"""Which language a file is in, and the tree-sitter grammar that parses it.

One table, `LANGUAGES`: a language name → its file extensions, LSP languageIds, the wheel module
and function returning its grammar, and the `grammars/<folder>/chunks.scm` query folder. Adding a
language is adding a `grammars/<lang>/` folder and one line here. Anything not in the table is
"text" and gets line-window chunks.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from dataclasses import dataclass

import tree_sitter

logger = logging.getLogger(__name__)

TEXT = "text"


@dataclass(frozen=True, slots=True)
class LanguageSpec:
    """How to recognise one language and where its grammar comes from."""

    name: str
    extensions: tuple[str, ...]
    language_ids: tuple[str, ...]
    module: str  # the official tree-sitter-<language> wheel's module
    function: str  # the module's function returning the grammar's language pointer
    grammar_dir: str = ""  # folder under grammars/ with chunks.scm; defaults to `name`

    @property
    def query_dir(self) -> str:
        """The folder under grammars/ holding this language's chunks.scm."""
        return self.grammar_dir or self.name


def _spec(
    name: str, exts: str, ids: str, module: str, function: str = "language", grammar_dir: str = ""
) -> LanguageSpec:
    return LanguageSpec(
        name, tuple(exts.split()), tuple(ids.split()), module, function, grammar_dir
    )


# name, extensions, LSP languageIds, wheel module, grammar function[, query folder]
_TABLE: tuple[LanguageSpec, ...] = (
    _spec("python", ".py .pyi .pyw", "python", "tree_sitter_python"),
    _spec("javascript", ".js .mjs .cjs", "javascript", "tree_sitter_javascript"),
    _spec("jsx", ".jsx", "javascriptreact", "tree_sitter_javascript", "language", "javascript"),
    _spec(
        "typescript", ".ts .mts .cts", "typescript", "tree_sitter_typescript", "language_typescript"
    ),
    _spec("tsx", ".tsx", "typescriptreact", "tree_sitter_typescript", "language_tsx"),
    _spec("go", ".go", "go", "tree_sitter_go"),
    _spec("rust", ".rs", "rust", "tree_sitter_rust"),
    _spec("java", ".java", "java", "tree_sitter_java"),
    _spec("c", ".c .h", "c", "tree_sitter_c"),
    _spec("cpp", ".cc .cpp .cxx .c++ .hh .hpp .hxx .h++ .ipp", "cpp", "tree_sitter_cpp"),
    _spec("c_sharp", ".cs", "csharp", "tree_sitter_c_sharp"),
    _spec("ruby", ".rb .rake .gemspec", "ruby", "tree_sitter_ruby"),
    _spec("php", ".php .phtml", "php", "tree_sitter_php", "language_php"),
    _spec("kotlin", ".kt .kts", "kotlin", "tree_sitter_kotlin"),
    _spec("swift", ".swift", "swift", "tree_sitter_swift"),
    _spec("bash", ".sh .bash .zsh", "shellscript sh bash zsh", "tree_sitter_bash"),
    _spec("markdown", ".md .markdown .mdx", "markdown", "tree_sitter_markdown"),
)

LANGUAGES: dict[str, LanguageSpec] = {spec.name: spec for spec in _TABLE}
_BY_EXTENSION: dict[str, str] = {ext: s.name for s in _TABLE for ext in s.extensions}
_BY_LANGUAGE_ID: dict[str, str] = {lid: s.name for s in _TABLE for lid in s.language_ids}
# Extension-less files recognised by name.
_BY_FILENAME: dict[str, str] = {
    "rakefile": "ruby",
    "gemfile": "ruby",
    ".bashrc": "bash",
    ".bash_profile": "bash",
    ".profile": "bash",
    ".zshrc": "bash",
}

_cache: dict[str, tree_sitter.Language | None] = {}
_lock = threading.Lock()


def detect_language(path: str, language_id: str | None = None) -> str:
    """The language name for a file: the LSP languageId wins, then the extension, else "text"."""
    if language_id:
        name = _BY_LANGUAGE_ID.get(language_id.lower()) or (
            language_id if language_id in LANGUAGES else None
        )
        if name:
            return name
    base = os.path.basename(path).lower()
    if base in _BY_FILENAME:
        return _BY_FILENAME[base]
    _, ext = os.path.splitext(base)
    return _BY_EXTENSION.get(ext, TEXT)


def get_language(name: str) -> tree_sitter.Language | None:
    """The tree-sitter Language for `name` (cached); None for text or a grammar that won't load."""
    if name in _cache:
        return _cache[name]
    with _lock:
        if name not in _cache:
            _cache[name] = _load(name)
        return _cache[name]


def _load(name: str) -> tree_sitter.Language | None:
    spec = LANGUAGES.get(name)
    if spec is None:
        return None
    try:
        module = importlib.import_module(spec.module)
        return tree_sitter.Language(getattr(module, spec.function)())
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        # A missing wheel or an ABI the installed tree-sitter cannot load: fall back to windows.
        logger.warning("grammar for %s unavailable (%s): using line windows", name, exc)
        return None
