"""`leo-lsp`: serve LSP (stdio by default, --tcp HOST:PORT), or index/search/health from a shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from leo_lsp import __version__
from leo_lsp.log import configure

logger = logging.getLogger(__name__)


def _parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {number}")
    return host or "127.0.0.1", number


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="leo-lsp",
        description="leo: semantic code search and struggle hints as a language server.",
    )
    p.add_argument("--version", action="version", version=f"leo-lsp {__version__}")
    p.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        type=_parse_hostport,
        help="serve over TCP (debugging; binds 127.0.0.1 unless a host is given)",
    )
    p.add_argument("--log-file", metavar="PATH", help="write JSON-lines logs here, not stderr")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv debug)")
    p.add_argument("--data-dir", metavar="DIR", help="index location (overrides LEO_DATA_DIR)")
    sub = p.add_subparsers(dest="cmd")
    i = sub.add_parser("index", help="index a folder (no editor needed)")
    i.add_argument("root", type=Path)
    i.add_argument("--force", action="store_true", help="re-index unchanged files too")
    s = sub.add_parser("search", help="search an indexed folder (indexes it first if needed)")
    s.add_argument("root", type=Path)
    s.add_argument("query")
    s.add_argument("-n", "--limit", type=int, default=10)
    s.add_argument("--mode", choices=["hybrid", "vector", "lexical"], default="hybrid")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub.add_parser("health", help="check that the model, sqlite-vec and grammars load")
    return p


def _bar(message: str, pct: int) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = int(width * pct / 100)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {pct:3d}% {message[:50]:<50}")
    sys.stderr.flush()
    if pct >= 100:
        sys.stderr.write("\n")


def _services(data_dir: str | None) -> Any:
    from leo_lsp.services import build_services
    from leo_lsp.settings import build_settings

    options = {"dataDir": data_dir} if data_dir else {}
    settings = build_settings(options)
    for problem in settings.problems:
        print(f"leo: invalid option {problem}", file=sys.stderr)
    return build_services(settings)


async def _index(root: Path, data_dir: str | None, force: bool, quiet: bool = False) -> Any:
    services = _services(data_dir)
    try:
        if not root.is_dir():
            raise SystemExit(f"leo-lsp: {root} is not a directory")
        project = services.registry.add_folder(root)
        report = await services.indexer.crawl(
            project, force=force, progress=None if quiet else _bar
        )
        return services, project, report
    except BaseException:
        await services.close()
        raise


async def _cmd_index(args: argparse.Namespace) -> int:
    services, project, report = await _index(args.root, args.data_dir, args.force)
    await services.close()
    print(json.dumps({"projectId": project.id, **report.to_json()}, indent=2))
    return 0


async def _cmd_search(args: argparse.Namespace) -> int:
    from leo_lsp.search import SearchQuery

    services, project, _ = await _index(args.root, args.data_dir, False, quiet=True)
    try:
        result = await services.search.search(
            SearchQuery(args.query, args.limit, args.mode, project_id=project.id)
        )
    finally:
        await services.close()
    if args.json:
        from leo_lsp.features.commands import hit_json

        print(
            json.dumps(
                {"results": [hit_json(h) for h in result.hits], "tookMs": round(result.took_ms, 1)},
                indent=2,
            )
        )
        return 0
    root = project.root
    for rank, hit in enumerate(result.hits, 1):
        rel = Path(hit.path).relative_to(root) if Path(hit.path).is_relative_to(root) else hit.path
        name = f"{hit.scope}.{hit.symbol}" if hit.scope and hit.symbol else hit.symbol or hit.kind
        print(
            f"{rank:2d}. {rel}:{hit.start_line + 1}-{hit.end_line + 1}  {name}  "
            f"({hit.kind}, score {hit.score:.3f})"
        )
    print(f"-- {len(result.hits)} results in {result.took_ms:.1f} ms ({result.mode})")
    return 0


async def _cmd_health(args: argparse.Namespace) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        services = _services(args.data_dir or tmp)
        t0 = time.perf_counter()
        vec = await services.embedder.embed_query("health check")
        project = services.registry.add_folder(Path(tmp))
        out = {
            "version": __version__,
            "embedding": {
                "model": services.embedder.model_id,
                "dim": int(vec.shape[0]),
                "ms": round((time.perf_counter() - t0) * 1000, 1),
            },
            "vectorDb": project.store.backend,
            "dataDir": str(services.settings.data_path),
        }
        await services.close()
    print(json.dumps(out, indent=2))
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of `leo-lsp`."""
    args = _parser().parse_args(argv)
    # In a shell the progress bar and the answer are the output; logs only on -v.
    quiet = args.cmd is not None and not args.verbose and not args.log_file
    configure(args.verbose, args.log_file, quiet=quiet)
    if args.data_dir:
        import os

        os.environ["LEO_DATA_DIR"] = args.data_dir
    if args.cmd == "index":
        raise SystemExit(asyncio.run(_cmd_index(args)))
    if args.cmd == "search":
        raise SystemExit(asyncio.run(_cmd_search(args)))
    if args.cmd == "health":
        raise SystemExit(asyncio.run(_cmd_health(args)))
    from leo_lsp.server import create_server

    server = create_server()
    if args.tcp:
        host, port = args.tcp
        logger.info("serving LSP on tcp %s:%d", host, port)
        server.start_tcp(host, port)
    else:
        server.start_io()
