"""Starting a real leo-lsp over stdio with pytest-lsp's client, as an editor would."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

CLIENTS = ["neovim", "visual_studio_code"]


async def start(
    workspace: Path,
    data_dir: Path,
    client: str = "neovim",
    options: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> LanguageClient:
    """Start the server, send initialize/initialized with a workspace folder, return the client."""
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "leo_lsp"],
        server_env=env,
    )
    lsp = await config.start()
    opts = {"dataDir": str(data_dir), **(options or {})}
    await lsp.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(client),
            root_uri=workspace.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)],
            initialization_options=opts,
        )
    )
    return lsp


async def command(
    lsp: LanguageClient, name: str, args: dict[str, Any] | None = None, timeout: float = 300
) -> Any:
    """workspace/executeCommand with one argument object."""
    return await asyncio.wait_for(
        lsp.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=[args or {}])
        ),
        timeout,
    )


async def open_buffer(
    lsp: LanguageClient, path: Path, text: str, language_id: str, version: int = 1
) -> Any:
    """didOpen a buffer and wait until leo says that version is searchable."""
    waiter = lsp.protocol.wait_for_notification_async("leo/indexed")
    lsp.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=path.as_uri(), language_id=language_id, version=version, text=text
            )
        )
    )
    return await asyncio.wait_for(waiter, 120)
