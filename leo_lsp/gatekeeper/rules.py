"""Deterministic, cheap rules deciding whether a file may be indexed: allow, deny or doubtful.

Order of the checks (first match wins):

1. vendored / tool directories anywhere on the path (`node_modules`, `.git`, `.venv`, ...) → deny
2. `index.exclude` globs → deny; `index.include` (when non-empty) not matched → deny
3. `.leoignore` (always) and `.gitignore` + `.git/info/exclude` (when `respect_gitignore`), nested
   files honoured with git's semantics (deeper files win, a file under an ignored directory cannot
   be re-included) → deny
4. file names: `.env*` (except the templates `.env.example`, `.env.sample`, `.env.template`,
   `.env.dist`, which are doubtful: they are meant to be committed but sometimes hold real values),
   private keys, credential files, known binary extensions, lock files and minified/source-map
   files (generated noise whose integrity hashes look like secrets) → deny
5. content, when given: larger than `index.max_file_bytes` → deny; a NUL byte in the first 8 KB
   (binary) → deny; a generated-file marker in the first lines or a minified first line → deny
6. known source / documentation extensions and build-file names → allow; config-like files
   (`*.yaml`, `*.toml`, `*.json`, ...), templates of `.env` and any other text file → doubtful.

`include` / `exclude` globs use gitignore syntax relative to the root (`*.py`, `docs/`,
`src/**/*.ts`). The secret scanner is not run here: the `Gatekeeper` scans what the rules did not
deny and escalates weakly flagged files to doubtful.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pathspec import GitIgnoreSpec

from leo_lsp.settings import IndexSettings

logger = logging.getLogger(__name__)

Verdict = Literal["allow", "deny", "doubtful"]

# Bump when a rule changes meaning: cached decisions made under an older policy are not reused.
RULES_VERSION = 1

BINARY_SNIFF_BYTES = 8192

VENDORED_DIRS = frozenset(
    {
        "node_modules",
        "bower_components",
        "vendor",
        "dist",
        "build",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "target",
        ".tox",
        ".nox",
        ".eggs",
        ".gradle",
        ".idea",
        ".next",
        ".terraform",
        "site-packages",
    }
)

ENV_TEMPLATES = frozenset({".env.example", ".env.sample", ".env.template", ".env.dist"})

PRIVATE_KEY_SUFFIXES = frozenset(
    {".pem", ".key", ".p12", ".pfx", ".keystore", ".jks", ".ppk", ".p8", ".kdbx", ".gpg", ".asc"}
)
PRIVATE_KEY_PREFIXES = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519")

CREDENTIAL_NAMES = frozenset(
    {
        "credentials",
        "credentials.json",
        "credentials.yaml",
        "credentials.yml",
        "client_secret.json",
        ".npmrc",
        ".pypirc",
        ".netrc",
        "_netrc",
        ".htpasswd",
        ".git-credentials",
        ".dockercfg",
        ".boto",
        ".s3cfg",
        ".pgpass",
        "terraform.tfstate",
        "terraform.tfstate.backup",
        "known_hosts",
        "authorized_keys",
    }
)

# `secrets.*` is denied unless it is source code: `secrets.py` is an ordinary module name
# (Python's stdlib has one), while secrets.json / secrets.yaml / secrets.env hold the secrets.
LOCK_FILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lockb",
        "poetry.lock",
        "pdm.lock",
        "uv.lock",
        "Pipfile.lock",
        "Cargo.lock",
        "Gemfile.lock",
        "composer.lock",
        "go.sum",
        "flake.lock",
        "packages.lock.json",
        "mix.lock",
        "pubspec.lock",
        "Podfile.lock",
    }
)
GENERATED_SUFFIXES = (".min.js", ".min.css", ".min.mjs", ".js.map", ".css.map", ".map", ".lock")

BINARY_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .bmp .ico .icns .webp .tif .tiff .psd .pdf .zip .gz .tgz .bz2 .xz .zst "
    ".7z .rar .tar .jar .war .ear .class .so .dylib .dll .exe .o .obj .a .lib .pyc .pyo .pyd "
    ".whl .egg .woff .woff2 .ttf .otf .eot .mp3 .mp4 .m4a .wav .flac .ogg .mov .avi .mkv .webm "
    ".sqlite .sqlite3 .db .bin .dat .npy .npz .pkl .pickle .onnx .gguf .pt .pth .safetensors "
    ".h5 .parquet .arrow .iso .dmg .img .deb .rpm .apk .ipa .wasm .DS_Store".split()
)

SOURCE_SUFFIXES = frozenset(
    ".py .pyi .pyx .pxd .js .jsx .mjs .cjs .ts .tsx .mts .cts .go .rs .java .kt .kts .scala .sc "
    ".groovy .gradle .c .h .cc .cpp .cxx .hpp .hh .hxx .ino .cs .fs .fsx .vb .rb .rake .php .swift "
    ".m .mm .sh .bash .zsh .fish .ps1 .psm1 .bat .cmd .lua .pl .pm .r .jl .dart .ex .exs .erl .hrl "
    ".hs .lhs .ml .mli .clj .cljs .cljc .edn .el .lisp .scm .rkt .vim .nim .zig .v .sv .vhd .vhdl "
    ".sql .graphql .gql .proto .thrift .vue .svelte .astro .html .htm .css .scss .sass .less .styl "
    ".md .markdown .mdx .rst .txt .adoc .org .tex .bib .ipynb .cmake .mk .dockerfile .tf .hcl "
    ".nix .sol .cu .cuh .glsl .hlsl .wgsl .f90 .f .for .pas .d .cr .elm .purs .re .res .jsonnet "
    ".liquid .jinja .j2 .ejs .hbs .mustache .twig .erb .haml .pug .csv .tsv".split()
)
SOURCE_NAMES = frozenset(
    {
        "Makefile",
        "GNUmakefile",
        "Dockerfile",
        "Containerfile",
        "CMakeLists.txt",
        "Rakefile",
        "Gemfile",
        "Podfile",
        "Vagrantfile",
        "Jenkinsfile",
        "Justfile",
        "justfile",
        "Procfile",
        "BUILD",
        "BUILD.bazel",
        "WORKSPACE",
        "README",
        "LICENSE",
        "LICENCE",
        "COPYING",
        "NOTICE",
        "AUTHORS",
        "CHANGELOG",
        "CHANGES",
        "CONTRIBUTING",
        ".gitignore",
        ".leoignore",
        ".gitattributes",
        ".editorconfig",
        ".dockerignore",
    }
)
CONFIG_SUFFIXES = frozenset(
    ".yaml .yml .toml .ini .cfg .conf .config .json .json5 .jsonc .xml .properties .plist .env "
    ".tfvars .rc".split()
)

# Only unambiguous markers: "auto-generated by" headers are common on files people do read
# (Python's own token.py has one), so they stay indexable.
_GENERATED_MARKER = re.compile(
    rb"@generated\b|Code generated .{0,80}DO NOT EDIT|Generated by the protocol buffer compiler"
)
# A first line this long without a break is minified output, not something a person reads.
MINIFIED_LINE_BYTES = 2000


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """What the rules say about one file, and why."""

    verdict: Verdict
    reason: str
    rule: str = ""  # short machine-readable name of the rule that decided

    @property
    def hard_deny(self) -> bool:
        """A deny that no mode (not even `off`) lifts."""
        return self.verdict == "deny"


def _allow(reason: str, rule: str) -> RuleVerdict:
    return RuleVerdict("allow", reason, rule)


def _deny(reason: str, rule: str) -> RuleVerdict:
    return RuleVerdict("deny", reason, rule)


def _doubt(reason: str, rule: str) -> RuleVerdict:
    return RuleVerdict("doubtful", reason, rule)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


class Rules:
    """The deterministic policy for one workspace root (or for loose files when `root` is None)."""

    def __init__(self, root: Path | None, settings: IndexSettings) -> None:
        self.root = root.resolve() if root is not None else None
        self._root_prefix = str(self.root).rstrip("/") + "/" if self.root is not None else ""
        self.settings = settings
        self._include = GitIgnoreSpec.from_lines(settings.include) if settings.include else None
        self._exclude = GitIgnoreSpec.from_lines(settings.exclude) if settings.exclude else None
        # rel dir ("" for the root) → its ignore spec, or None when it has no ignore file
        self._specs: dict[str, Any] = {}
        self._dir_ignored: dict[str, str | None] = {}

    @property
    def fingerprint(self) -> str:
        """What a cached decision depends on besides the file: rules version and index settings."""
        s = self.settings
        return (
            f"r{RULES_VERSION}:{s.max_file_bytes}:{int(s.respect_gitignore)}:"
            f"{','.join(s.include)}:{','.join(s.exclude)}"
        )

    def invalidate(self, rel_dir: str | None = None) -> None:
        """Forget cached ignore files (all, or one directory's after its .gitignore changed)."""
        if rel_dir is None:
            self._specs.clear()
        else:
            self._specs.pop(rel_dir.strip("/"), None)
        # a changed ignore file can flip the status of any directory below it
        self._dir_ignored.clear()

    # -- paths -------------------------------------------------------------------------------

    def relative(self, path: Path) -> PurePosixPath | None:
        """`path` relative to the root in posix form, or None when it lies outside the root."""
        if self.root is None:
            return None
        if path.is_absolute():
            # fast path for the crawler's absolute paths under the root (no normalisation needed)
            raw, prefix = str(path), self._root_prefix
            if raw.startswith(prefix) and "/.." not in raw and os.sep == "/":
                return PurePosixPath(raw[len(prefix) :])
        p = path if path.is_absolute() else self.root / path
        try:
            rel = os.path.relpath(p, self.root)
        except ValueError:  # another drive on Windows
            return None
        if rel == ".." or rel.startswith(".." + os.sep):
            return None
        return PurePosixPath(Path(rel).as_posix())

    def _spec_for(self, rel_dir: str) -> Any:
        if rel_dir in self._specs:
            return self._specs[rel_dir]
        assert self.root is not None
        d = self.root / rel_dir if rel_dir else self.root
        lines: list[str] = []
        if self.settings.respect_gitignore:
            if not rel_dir:
                lines += _read_lines(self.root / ".git" / "info" / "exclude")
            lines += _read_lines(d / ".gitignore")
        # .leoignore comes last so that it can override .gitignore in the same directory
        lines += _read_lines(d / ".leoignore")
        spec = GitIgnoreSpec.from_lines(lines) if any(s.strip() for s in lines) else None
        self._specs[rel_dir] = spec
        return spec

    def _ignored_by_files(self, parts: tuple[str, ...], is_dir: bool) -> str | None:
        """Which ignore file ignores the path `parts` (relative to root), if any (git semantics)."""
        # deeper ignore files win; within one file the last matching pattern wins (pathspec)
        for depth in range(len(parts) - 1, -1, -1):
            spec = self._spec_for("/".join(parts[:depth]))
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            result = spec.check_file(sub)
            if result.include is not None:
                if result.include:
                    where = "/".join(parts[:depth]) or "."
                    return f"ignored by an ignore file in {where}"
                return None
        return None

    def _dir_reason(self, parts: tuple[str, ...]) -> str | None:
        """Why the directory `parts` (relative to root) is skipped, or None; memoised."""
        key = "/".join(parts)
        if key in self._dir_ignored:
            return self._dir_ignored[key]
        reason: str | None = None
        if parts:
            reason = self._dir_reason(parts[:-1])
            if reason is None and parts[-1] in VENDORED_DIRS:
                reason = f"vendored or tool directory {parts[-1]}/"
            if reason is None and self._exclude is not None:
                if self._exclude.match_file(key + "/"):
                    reason = "excluded by index.exclude"
            if reason is None and self.root is not None:
                reason = self._ignored_by_files(parts, is_dir=True)
        self._dir_ignored[key] = reason
        return reason

    def is_ignored_dir(self, rel_dir: str | Path) -> bool:
        """True when the crawler should not descend into `rel_dir` (relative to the root)."""
        parts = tuple(
            p for p in PurePosixPath(Path(rel_dir).as_posix()).parts if p not in (".", "")
        )
        return self._dir_reason(parts) is not None

    # -- the check ---------------------------------------------------------------------------

    def check(self, path: Path, data: bytes | None = None) -> RuleVerdict:
        """Decide on `path` (absolute, or relative to the root) and, when given, its content."""
        rel = self.relative(path)
        name = path.name
        if rel is not None:
            parts = rel.parts
            dir_reason = self._dir_reason(parts[:-1])
            if dir_reason is not None:
                return _deny(dir_reason, "directory")
            rel_s = str(rel)
            if self._exclude is not None and self._exclude.match_file(rel_s):
                return _deny("excluded by index.exclude", "exclude")
            if self._include is not None and not self._include.match_file(rel_s):
                return _deny("not matched by index.include", "include")
            ignored = self._ignored_by_files(parts, is_dir=False)
            if ignored is not None:
                return _deny(ignored, "ignore-file")
        else:
            if any(part in VENDORED_DIRS for part in path.parent.parts):
                return _deny("inside a vendored or tool directory", "directory")
            if self._exclude is not None and self._exclude.match_file(path.as_posix()):
                return _deny("excluded by index.exclude", "exclude")

        by_name = self._check_name(name)
        if by_name is not None and by_name.verdict == "deny":
            return by_name

        if data is None:
            target = path if path.is_absolute() or self.root is None else self.root / path
            try:
                size = target.stat().st_size
            except OSError:
                size = 0
            if size > self.settings.max_file_bytes:
                return _deny(
                    f"larger than index.maxFileBytes ({size} > {self.settings.max_file_bytes})",
                    "size",
                )
        else:
            by_content = self._check_content(data)
            if by_content is not None:
                return by_content
        if by_name is not None:
            return by_name
        return _doubt("text file of an unknown kind", "unknown")

    def _check_name(self, name: str) -> RuleVerdict | None:
        lower = name.lower()
        suffix = os.path.splitext(lower)[1]
        if lower.startswith(".env"):
            if lower in ENV_TEMPLATES:
                return _doubt("environment template (may hold real values)", "env-template")
            return _deny("environment file (.env*)", "env")
        if lower.endswith(".env") and suffix == ".env":
            return _deny("environment file (*.env)", "env")
        if suffix in PRIVATE_KEY_SUFFIXES or lower.startswith(PRIVATE_KEY_PREFIXES):
            return _deny("private key or key store", "private-key")
        if lower in CREDENTIAL_NAMES or name in CREDENTIAL_NAMES:
            return _deny("credential file", "credentials")
        if lower.startswith("service-account") and suffix == ".json":
            return _deny("cloud service-account credentials", "credentials")
        if lower.startswith("secrets.") and suffix not in SOURCE_SUFFIXES:
            return _deny("secrets file", "credentials")
        if suffix in BINARY_SUFFIXES or lower in (".ds_store",):
            return _deny("binary file type", "binary")
        if name in LOCK_FILES:
            return _deny("dependency lock file (generated)", "generated")
        if lower.endswith(GENERATED_SUFFIXES):
            return _deny("minified or generated file", "generated")
        if name in SOURCE_NAMES:
            return _allow("build or project file", "source")
        if suffix in SOURCE_SUFFIXES:
            return _allow("source or documentation", "source")
        if suffix in CONFIG_SUFFIXES:
            return _doubt("configuration file (may hold settings or secrets)", "config")
        return None

    def _check_content(self, data: bytes) -> RuleVerdict | None:
        if len(data) > self.settings.max_file_bytes:
            return _deny(
                f"larger than index.maxFileBytes ({len(data)} > {self.settings.max_file_bytes})",
                "size",
            )
        head = data[:BINARY_SNIFF_BYTES]
        if b"\x00" in head:
            return _deny("binary content (NUL byte)", "binary")
        first_lines = head.split(b"\n", 5)
        if _GENERATED_MARKER.search(b"\n".join(first_lines[:5])):
            return _deny("generated file (marker in the header)", "generated")
        if len(first_lines[0]) > MINIFIED_LINE_BYTES and len(first_lines) < 3:
            return _deny("minified file (one very long line)", "generated")
        return None


__all__ = ["RULES_VERSION", "RuleVerdict", "Rules", "VENDORED_DIRS", "Verdict"]
