"""Walking a workspace folder: prunes vendored and ignored directories before descending."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A regular file under the root, with what `stat` said of it."""

    path: Path
    rel: str  # POSIX path relative to the root
    size: int
    mtime_ns: int


def walk(
    root: Path,
    is_ignored_dir: Callable[[str], bool],
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[FoundFile]:
    """Yield the files under `root` in a stable order, never entering ignored directories.

    Symlinks are not followed (a link loop or a link out of the workspace must not be crawled);
    unreadable directories and files that vanish mid-walk are logged and skipped.
    """
    stack = [root]
    while stack:
        if should_stop():
            return
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            logger.warning("cannot list %s: %s", current, exc)
            continue
        subdirs: list[Path] = []
        for entry in entries:
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    rel_dir = Path(entry.path).relative_to(root).as_posix()
                    if not is_ignored_dir(rel_dir):
                        subdirs.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    p = Path(entry.path)
                    yield FoundFile(p, p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns)
            except OSError as exc:  # deleted or permission denied mid-walk
                logger.info("skipping %s: %s", entry.path, exc)
        stack.extend(reversed(subdirs))
