"""workspace/symbol answered by leo's hybrid search, so generic pickers get semantic search."""

from __future__ import annotations

from lsprotocol import types

from leo_lsp.errors import LeoError
from leo_lsp.features.commands import to_range, wrap_errors
from leo_lsp.features.uris import path_to_uri
from leo_lsp.search import SearchQuery
from leo_lsp.server import LeoServer

_KINDS = {
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "class": types.SymbolKind.Class,
    "interface": types.SymbolKind.Interface,
    "module": types.SymbolKind.Module,
    "section": types.SymbolKind.String,
    "struct": types.SymbolKind.Struct,
    "enum": types.SymbolKind.Enum,
}


@wrap_errors
async def workspace_symbol(
    ls: LeoServer, params: types.WorkspaceSymbolParams
) -> list[types.SymbolInformation]:
    """The query's best matches as symbols (name, kind, location, container)."""
    if not params.query.strip():
        return []  # pickers ask with "" when they open; an empty search has no ranking
    try:
        result = await ls.services.search.search(SearchQuery(query=params.query, limit=50))
    except LeoError:
        return []
    out: list[types.SymbolInformation] = []
    for hit in result.hits:
        first = next((ln.strip() for ln in hit.snippet.splitlines() if ln.strip()), "")
        out.append(
            types.SymbolInformation(
                name=hit.symbol or first[:80] or hit.path.rsplit("/", 1)[-1],
                kind=_KINDS.get(hit.kind, types.SymbolKind.Namespace),
                location=types.Location(uri=path_to_uri(hit.path), range=to_range(hit)),
                container_name=hit.scope or hit.path.rsplit("/", 1)[-1],
            )
        )
    return out


def register(server: LeoServer) -> None:
    """Register workspace/symbol."""
    server.feature(types.WORKSPACE_SYMBOL)(workspace_symbol)
