"""Edit-to-searchable latency through a real LSP session on a 5,000-line file.

For each of N edits (a new function typed into the middle of the buffer), measures the time from the
last keystroke's didChange to the moment `leo.search` returns the new function first — the
debounce (index.debounceMs, default 300 ms) included. Prints p50/p90/max.

    python tests/bench/bench_freshness.py [--edits 15] [--debounce 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

NAMES = [
    "parse",
    "render",
    "merge",
    "score",
    "encode",
    "filter",
    "split",
    "rotate",
    "hash",
    "clamp",
    "pad",
    "strip",
    "count",
    "group",
    "fold",
    "scan",
    "pick",
    "shift",
    "trim",
    "zip",
]


def big_file(lines: int = 5000) -> str:
    out = []
    i = 0
    while len(out) < lines:
        out += [
            f"def helper_{i}(value, factor={i % 7}):",
            f"    '''Helper number {i}.'''",
            f"    total = value * factor + {i}",
            "    return total",
            "",
        ]
        i += 1
    return "\n".join(out[:lines]) + "\n"


async def main(edits: int, debounce: int) -> None:
    ws = Path(tempfile.mkdtemp(prefix="leo-fresh-"))
    path = ws / "big_module.py"
    text = big_file()
    path.write_text(text)
    config = ClientServerConfig(server_command=[sys.executable, "-m", "leo_lsp"])
    lsp = await config.start()
    await lsp.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            workspace_folders=[types.WorkspaceFolder(uri=ws.as_uri(), name="ws")],
            initialization_options={
                "dataDir": str(ws / ".leo-data"),
                "index": {"debounceMs": debounce},
            },
        )
    )
    t0 = time.perf_counter()
    await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(command="leo.indexWorkspace", arguments=[{}])
    )
    print(f"initial index of {len(text.splitlines())} lines: {time.perf_counter() - t0:.1f} s")
    uri = path.as_uri()
    lsp.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    lat: list[float] = []
    version = 1
    for n in range(edits):
        name = f"{NAMES[n % len(NAMES)]}_widget_{n}"
        snippet = f"def {name}(items):\n    return sorted(items)[:{n + 1}]\n\n"
        line, char = 2500 + 5 * n, 0
        # type it in a few keystroke-sized changes, like an editor would send them
        for part in (snippet[:10], snippet[10:30], snippet[30:]):
            version += 1
            lsp.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[
                        types.TextDocumentContentChangePartial(
                            range=types.Range(
                                start=types.Position(line=line, character=char),
                                end=types.Position(line=line, character=char),
                            ),
                            text=part,
                        )
                    ],
                )
            )
            if "\n" in part:
                line += part.count("\n")
                char = len(part.rsplit("\n", 1)[1])
            else:
                char += len(part)
        last_key = time.perf_counter()
        while True:  # leo says which buffer version is searchable; wait for the last one
            note = await lsp.protocol.wait_for_notification_async("leo/indexed")
            if getattr(note, "version", None) == version:
                break
        res = await lsp.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="leo.search", arguments=[{"query": name, "limit": 1}]
            )
        )
        assert res["results"] and res["results"][0]["symbol"] == name, res
        lat.append((time.perf_counter() - last_key) * 1000)
    await lsp.shutdown_session()
    lat.sort()
    print(
        f"edit-to-searchable over {edits} edits (debounce {debounce} ms): "
        f"p50 {statistics.median(lat):.0f} ms, p90 {lat[int(0.9 * (len(lat) - 1))]:.0f} ms, "
        f"max {lat[-1]:.0f} ms (target ≤ 500 ms)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=15)
    ap.add_argument("--debounce", type=int, default=300)
    a = ap.parse_args()
    asyncio.run(main(a.edits, a.debounce))
