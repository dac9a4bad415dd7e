"""Projects: each workspace folder (or a loose file) with its own database, rules and gate."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from leo_lsp.errors import NotFound
from leo_lsp.records import Decision
from leo_lsp.store.project_store import ProjectStore

logger = logging.getLogger(__name__)


class Gate(Protocol):
    """What the pipeline needs of the gatekeeper."""

    async def decide(self, path: Path, data: bytes, content_hash: str) -> Decision: ...

    def redact(self, text: str) -> tuple[str, int]: ...


class DirFilter(Protocol):
    """What the crawler needs of the rules."""

    def is_ignored_dir(self, rel_dir: str | Path) -> bool: ...


@dataclass
class Project:
    """One indexed root: a workspace folder, or the folder of a file opened outside all of them."""

    id: str
    name: str
    root: Path
    store: ProjectStore
    rules: DirFilter
    gate: Gate
    single_file: Path | None = None  # set for a loose file's project: only that file is indexed
    crawled: bool = False
    open_paths: set[str] = field(default_factory=set)

    def rel(self, path: Path) -> str | None:
        """POSIX path relative to the root, or None if `path` is outside it."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    def abs(self, rel: str) -> Path:
        """Absolute path of a stored relative path."""
        return self.root / rel


def project_id_for(root: Path, single_file: Path | None = None) -> str:
    """Stable id: folder name + a short hash of the absolute path."""
    key = str(single_file or root)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", (single_file or root).name or "root").strip("-")
    return f"{name or 'root'}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


ProjectFactory = Callable[[Path, str, Path | None], Project]


class ProjectRegistry:
    """The open projects, and which one a path belongs to."""

    def __init__(self, factory: ProjectFactory) -> None:
        self._factory = factory
        self._projects: dict[str, Project] = {}

    def add_folder(self, root: Path, name: str | None = None) -> Project:
        """Open (or return) the project of a workspace folder."""
        root = root.resolve()
        pid = project_id_for(root)
        if pid not in self._projects:
            self._projects[pid] = self._factory(root, name or root.name, None)
            logger.info("project %s opened at %s", pid, root)
        return self._projects[pid]

    def remove(self, project_id: str) -> Project | None:
        """Drop a project (closing its database); return it if it was open."""
        project = self._projects.pop(project_id, None)
        if project is not None:
            project.store.close()
        return project

    def remove_folder(self, root: Path) -> Project | None:
        """Drop the project of a removed workspace folder."""
        return self.remove(project_id_for(root.resolve()))

    def folders(self) -> list[Project]:
        """Workspace-folder projects (not loose files)."""
        return [p for p in self._projects.values() if p.single_file is None]

    def all(self) -> list[Project]:
        """Every open project."""
        return list(self._projects.values())

    def get(self, project_id: str) -> Project:
        """A project by id, or NotFound naming the known ones."""
        try:
            return self._projects[project_id]
        except KeyError:
            known = ", ".join(sorted(self._projects)) or "none"
            raise NotFound(f"unknown projectId {project_id!r} (known: {known})") from None

    def for_path(self, path: Path, *, create: bool = True) -> Project | None:
        """The deepest folder project containing `path`, else the file's own project."""
        path = path.resolve()
        best: Project | None = None
        for p in self.folders():
            if path.is_relative_to(p.root) and (
                best is None or len(p.root.parts) > len(best.root.parts)
            ):
                best = p
        if best is not None or not create:
            return best
        pid = project_id_for(path.parent, path)
        if pid not in self._projects:
            self._projects[pid] = self._factory(path.parent, path.name, path)
        return self._projects[pid]

    def close(self) -> None:
        """Close every database."""
        for pid in list(self._projects):
            self.remove(pid)
