"""Benchmark: parse+chunk throughput per language, incremental re-chunk latency, a 10 MB file.

Run: /work/venv/bin/python tests/bench/bench_chunking.py [--no-npm]

Sources are real code found on the machine (the Python standard library, C headers under
/usr/include, Markdown and shell scripts shipped with packages) plus npm packages the benchmark
installs into a temporary directory (lodash-es for JavaScript, rxjs for TypeScript). Numbers are
wall-clock on whatever the machine is doing; run it twice. Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from leo_lsp.indexing.chunker import Chunker, ParsedDocument
from leo_lsp.indexing.languages import detect_language

CAP_BYTES = 4_000_000  # per language, so a run stays within a minute or two


def _collect(roots: Iterable[Path], suffixes: tuple[str, ...], cap: int = CAP_BYTES) -> list[Path]:
    files: list[Path] = []
    total = 0
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix in suffixes and path.is_file() and "node_modules/.bin" not in str(path):
                size = path.stat().st_size
                if 0 < size < 1_000_000:
                    files.append(path)
                    total += size
                    if total >= cap:
                        return files
    return files


def _npm_sources(workdir: Path) -> Path | None:
    if shutil.which("npm") is None:
        return None
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--silent", "lodash-es@4", "rxjs@7"]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        sys.stderr.write(f"npm install failed: {result.stderr[:500]}\n")
        return None
    return workdir / "node_modules"


def _throughput(files: list[Path]) -> tuple[int, float, int]:
    chunker = Chunker()
    texts: list[tuple[str, str, str]] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append((str(path), detect_language(str(path)), text))
    size = sum(len(t.encode()) for _, _, t in texts)
    start = time.perf_counter()
    chunks = 0
    for name, language, text in texts:
        chunks += len(chunker.chunk(text, name, language))
    return size, time.perf_counter() - start, chunks


def bench_languages(use_npm: bool) -> None:
    stdlib = Path(os.__file__).parent
    tmp = Path(tempfile.mkdtemp(prefix="leo-bench-"))
    try:
        node_modules = _npm_sources(tmp) if use_npm else None
        sets: dict[str, list[Path]] = {
            "python": _collect([stdlib], (".py",)),
            "c": _collect([Path("/usr/include")], (".h",)),
            "markdown": _collect(
                [stdlib.parent, Path(sys.prefix), *([node_modules] if node_modules else [])],
                (".md",),
                1_000_000,
            ),
            "bash": _collect([Path("/usr/bin"), Path("/etc"), Path(sys.prefix)], (".sh",), 500_000),
        }
        if node_modules is not None:
            sets["javascript"] = _collect([node_modules / "lodash-es"], (".js",))
            sets["typescript"] = _collect([node_modules / "rxjs" / "src"], (".ts",))
        print(f"{'language':<12}{'files':>7}{'MB':>8}{'seconds':>9}{'MB/s':>8}{'chunks':>8}")
        for language, files in sets.items():
            if not files:
                print(f"{language:<12} no sources found")
                continue
            size, seconds, chunks = _throughput(files)
            mbps = size / 1e6 / seconds
            row = f"{language:<12}{len(files):>7}{size / 1e6:>8.2f}{seconds:>9.2f}"
            print(f"{row}{mbps:>8.2f}{chunks:>8}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_incremental() -> None:
    stdlib = Path(os.__file__).parent
    # Whole files (so the text parses without errors) until there are at least 5,000 lines.
    lines: list[str] = []
    for name in ("argparse.py", "typing.py", "ast.py", "inspect.py"):
        lines += (stdlib / name).read_text(encoding="utf-8").split("\n")
        if len(lines) >= 5000:
            break
    text = "\n".join(lines)
    doc = ParsedDocument("bench.py", "python", text)
    times = []
    for k in range(40):
        i = 1000 + 97 * k
        lines[i] = lines[i] + f"  # edit {k}"
        text = "\n".join(lines)
        start = time.perf_counter()
        doc.update(text)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    full = Chunker().chunk(text, "bench.py", "python")
    full_s = time.perf_counter() - start
    assert doc.chunks == full
    print(
        f"{len(lines):,}-line file, one-line edit: incremental re-chunk median "
        f"{statistics.median(times) * 1000:.1f} ms, p90 "
        f"{sorted(times)[int(len(times) * 0.9)] * 1000:.1f} ms; full chunk {full_s * 1000:.1f} ms"
    )


def _big_file_child() -> None:
    stdlib = Path(os.__file__).parent
    parts = []
    size = 0
    for path in sorted(stdlib.glob("*.py")) * 3:
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text.encode())
        if size >= 10_000_000:
            break
    text = "\n".join(parts)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    chunks = Chunker().chunk(text, "big.py", "python")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"{len(text.encode()) / 1e6:.1f} MB Python file: {seconds:.2f} s, {len(chunks)} chunks, "
        f"peak RSS {peak / 1024:.0f} MB (before chunking {before / 1024:.0f} MB, "
        f"text alone ~{len(text) / 1e6 * 2:.0f} MB incl. copies)"
    )


def bench_big_file() -> None:
    # A fresh process so the peak RSS is this measurement's alone.
    subprocess.run([sys.executable, __file__, "--big-file-child"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-npm", action="store_true")
    parser.add_argument("--big-file-child", action="store_true")
    args = parser.parse_args()
    if args.big_file_child:
        _big_file_child()
        return
    bench_languages(not args.no_npm)
    bench_incremental()
    bench_big_file()


if __name__ == "__main__":
    main()
