"""Converting between LSP URIs and paths, refusing what is not a local file."""

from __future__ import annotations

from pathlib import Path

from pygls.uris import from_fs_path, to_fs_path

from leo_lsp.errors import InvalidArguments


def uri_to_path(uri: str, field: str = "uri") -> Path:
    """A file:// URI as an absolute path; InvalidArguments for anything else."""
    if not isinstance(uri, str) or not uri.startswith("file:"):
        raise InvalidArguments(
            f"{field}: expected a file:// URI, got {str(uri)[:100]!r}", field=field
        )
    path = to_fs_path(uri)
    if not path:
        raise InvalidArguments(f"{field}: cannot read a path from {uri[:100]!r}", field=field)
    return Path(path).resolve()


def path_to_uri(path: str | Path) -> str:
    """An absolute path as a file:// URI."""
    uri: str | None = from_fs_path(str(path))
    assert uri is not None
    return uri
