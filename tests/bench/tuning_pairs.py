"""Docstring→chunk pairs for fine-tuning the embedded model, from code no benchmark reads.

The pairs are built the way the quality task is (the shared kit's make_corpus.py: docstrings
blanked, the first sentence of a function's docstring is the query), but from sources disjoint
from both the quality benchmark (bench_quality.py) and the ranker's training task
(fit_ranker.py): the rest of the standard library and the third-party packages installed beside
leo. The positive of each query is the text leo embeds for the chunk holding the function
(`embed_text(chunk.text, chunk.context)`), so the model is tuned on exactly what it will read.

    python tests/bench/tuning_pairs.py /tmp/leo-tune/pairs.jsonl \
        --site /tmp/tune-venv/lib/python3.11/site-packages
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import STDLIB_MODULES, STDLIB_PACKAGES, eval_dir  # noqa: E402
from fit_ranker import TRAIN_MODULES, TRAIN_PACKAGES  # noqa: E402

from leo_lsp.indexing.chunker import Chunker  # noqa: E402
from leo_lsp.store.project_store import embed_text  # noqa: E402

# Never tuned on: the two stdlib slices above, tests, and what only exists to be tested.
EXCLUDED_STDLIB = {"test", "site-packages", "idlelib", "turtledemo", "lib2to3", "__phello__"}
THIRD_PARTY = (
    "numpy", "hypothesis", "_pytest", "pygls", "lsprotocol", "attr", "httpx", "httpcore",
    "firebase_admin", "google", "pip", "setuptools", "pathspec", "platformdirs", "cattrs",
    "mypy", "pluggy", "anyio", "jinja2", "markupsafe", "cachetools", "requests", "urllib3",
    "idna", "certifi", "charset_normalizer", "rsa", "pyasn1", "pyasn1_modules", "grpc",
    "proto", "jwt", "cryptography", "msgpack", "sortedcontainers", "pytest_lsp", "coverage",
    "ruff", "packaging", "typing_extensions", "cffi", "pycparser", "websockets", "h11",
    # Installed beside the fine-tuning tools (--site): large, well-documented code bases.
    "torch", "transformers", "sympy", "networkx", "huggingface_hub", "onnx", "onnxscript",
    "fsspec", "scipy", "sklearn", "pydantic", "rich", "pygments", "click", "typer", "mpmath",
    "joblib", "markdown_it", "yaml", "filelock", "sentence_transformers",
)  # fmt: skip


def _load_make_corpus() -> Any:
    spec = importlib.util.spec_from_file_location("make_corpus", eval_dir() / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_files(extra_sites: Sequence[Path] = ()) -> Iterator[tuple[str, Path]]:
    """(group, file) for every tuning source; the group keeps a package's pairs together."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    held = set(STDLIB_PACKAGES) | set(TRAIN_PACKAGES) | EXCLUDED_STDLIB
    held_modules = set(STDLIB_MODULES) | set(TRAIN_MODULES)
    for entry in sorted(stdlib.iterdir()):
        if entry.is_dir() and entry.name not in held and not entry.name.startswith("config-"):
            for f in sorted(entry.rglob("*.py")):
                yield f"stdlib/{entry.name}", f
        elif entry.suffix == ".py" and entry.name not in held_modules:
            yield f"stdlib/{entry.stem}", entry
    seen: set[str] = set()
    for site in (Path(sysconfig.get_paths()["purelib"]), *extra_sites):
        for name in THIRD_PARTY:
            root = site / name
            if root.is_dir() and name not in seen:
                seen.add(name)
                for f in sorted(root.rglob("*.py")):
                    yield name, f


def pairs(max_per_group: int = 1500, extra_sites: Sequence[Path] = ()) -> Iterator[dict[str, Any]]:
    """Every usable (query, positive) pair: the kit's filters, one chunk that is a hit."""
    kit = _load_make_corpus()
    chunker = Chunker()
    per_group: dict[str, int] = {}
    for group, f in source_files(extra_sites):
        if any(p in ("tests", "test", "testing") for p in f.parts[-4:-1]):
            continue
        try:
            text, funcs = kit.strip_docstrings(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        funcs = [fn for fn in funcs if _usable(kit, fn)]
        if not funcs or per_group.get(group, 0) >= max_per_group:
            continue
        chunks = chunker.chunk(text, str(f), "python")
        for fn in funcs:
            hit = _chunk_of(chunks, fn["start"], fn["end"])
            if hit is None:
                continue
            per_group[group] = per_group.get(group, 0) + 1
            yield {
                "group": group,
                "query": kit.first_sentence(fn["doc"]),
                "doc": embed_text(hit.text, hit.context),
                "path": str(f),
                "start": fn["start"],
            }


def _usable(kit: Any, fn: dict[str, Any]) -> bool:
    q = kit.first_sentence(fn["doc"])
    return (
        len(re.findall(r"[A-Za-z]+", q)) >= 4
        and len(q) <= 200
        and not fn["name"].startswith("__")
        and fn["end"] - fn["start"] >= 3
    )


def _chunk_of(chunks: list[Any], start: int, end: int) -> Any:
    """The chunk run_quality.py would count as the answer, the largest overlap first."""
    span = end - start + 1
    best, best_overlap = None, 0
    for c in chunks:
        s, e = c.start_line + 1, c.end_line + 1
        overlap = min(e, end) - max(s, start) + 1
        if overlap > best_overlap and (e - s + 1) <= max(3 * span, span + 30):
            best, best_overlap = c, overlap
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--max-per-group", type=int, default=1500)
    ap.add_argument("--site", type=Path, action="append", default=[], help="more site-packages")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    n, groups = 0, set()
    with args.out.open("w", encoding="utf-8") as fh:
        for p in pairs(args.max_per_group, args.site):
            fh.write(json.dumps(p) + "\n")
            n += 1
            groups.add(p["group"])
    print(f"{n} pairs from {len(groups)} groups -> {args.out}")


if __name__ == "__main__":
    main()
