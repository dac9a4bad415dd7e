"""Account commands: sign-in, profile and projects (with collaborators and linked folders).

Thin handlers over `CloudService`: with Firebase off they act as the local user on the local
repository; with Firebase on, as the verified user (and their writes sync in the background).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from leo_lsp.cloud.profiles import Actor, ProfileRepository
from leo_lsp.cloud.service import CloudService
from leo_lsp.errors import LeoError
from leo_lsp.features.arguments import NoArgs, parse
from leo_lsp.features.commands import wrap_errors
from leo_lsp.features.uris import path_to_uri, uri_to_path
from leo_lsp.server import LeoServer


@attrs.define
class SignInArgs:
    id_token: str


@attrs.define
class ProfileSetArgs:
    display_name: str | None = None
    email: str | None = None
    preferences: dict[str, Any] | None = None


@attrs.define
class ProjectCreateArgs:
    name: str
    description: str = ""
    folder_uri: str | None = None


@attrs.define
class ProjectIdArgs:
    project_id: str


@attrs.define
class CollaboratorArgs:
    project_id: str
    uid: str | None = None
    email: str | None = None


@attrs.define
class LinkFolderArgs:
    project_id: str
    folder_uri: str | None = None


for _cls in (
    SignInArgs,
    ProfileSetArgs,
    ProjectCreateArgs,
    ProjectIdArgs,
    CollaboratorArgs,
    LinkFolderArgs,
):
    attrs.resolve_types(_cls)


def _cloud(ls: LeoServer) -> CloudService:
    cloud = ls.services.cloud
    if not isinstance(cloud, CloudService):
        raise LeoError("the account service is not available in this session")
    return cloud


def _folder(uri: str | None) -> str | None:
    """A folder URI in the one spelling the server uses for workspace roots."""
    return None if uri is None else path_to_uri(uri_to_path(uri, "folderUri"))


async def sign_in(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.auth.signIn {idToken}: verify a token and act as its user from now on."""
    a = parse(SignInArgs, args)
    return await _cloud(ls).sign_in(a.id_token)


async def profile_get(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.profile.get: the current user's profile."""
    parse(NoArgs, args)
    return await _cloud(ls).call(lambda repo, actor: repo.get_profile(actor).to_dict())


async def profile_set(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.profile.set {displayName?, email?, preferences?}: update the given fields."""
    a = parse(ProfileSetArgs, args)

    def op(repo: ProfileRepository, actor: Actor) -> dict[str, Any]:
        return repo.set_profile(
            actor, display_name=a.display_name, email=a.email, preferences=a.preferences
        ).to_dict()

    return await _cloud(ls).call(op)


async def projects_create(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.projects.create {name, description?, folderUri?}: a project owned by the user."""
    a = parse(ProjectCreateArgs, args)
    folder = _folder(a.folder_uri)
    return await _cloud(ls).call(
        lambda repo, actor: repo.create_project(
            actor, a.name, a.description, folder_uri=folder
        ).to_dict()
    )


async def projects_list(ls: LeoServer, *args: Any) -> list[dict[str, Any]]:
    """leo.projects.list: projects the user owns or collaborates on, newest first."""
    parse(NoArgs, args)
    return await _cloud(ls).call(
        lambda repo, actor: [p.to_dict() for p in repo.list_projects(actor)]
    )


async def projects_get(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.projects.get {projectId}: one project, if the user is its owner or a collaborator."""
    a = parse(ProjectIdArgs, args)
    return await _cloud(ls).call(
        lambda repo, actor: repo.get_project(actor, a.project_id).to_dict()
    )


async def add_collaborator(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.projects.addCollaborator {projectId, uid | email}: owner only."""
    a = parse(CollaboratorArgs, args)
    return await _cloud(ls).call(
        lambda repo, actor: repo.add_collaborator(
            actor, a.project_id, uid=a.uid, email=a.email
        ).to_dict()
    )


async def remove_collaborator(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.projects.removeCollaborator {projectId, uid | email}: owner only."""
    a = parse(CollaboratorArgs, args)
    return await _cloud(ls).call(
        lambda repo, actor: repo.remove_collaborator(
            actor, a.project_id, uid=a.uid, email=a.email
        ).to_dict()
    )


async def link_folder(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.projects.linkFolder {projectId, folderUri}: its stats then follow that folder."""
    a = parse(LinkFolderArgs, args)
    folder = _folder(a.folder_uri)
    return await _cloud(ls).call(
        lambda repo, actor: repo.link_folder(actor, a.project_id, folder).to_dict()
    )


COMMANDS: dict[str, Callable[..., Awaitable[Any]]] = {
    "leo.auth.signIn": sign_in,
    "leo.profile.get": profile_get,
    "leo.profile.set": profile_set,
    "leo.projects.create": projects_create,
    "leo.projects.list": projects_list,
    "leo.projects.get": projects_get,
    "leo.projects.addCollaborator": add_collaborator,
    "leo.projects.removeCollaborator": remove_collaborator,
    "leo.projects.linkFolder": link_folder,
}


def register(server: LeoServer) -> None:
    """Register the account commands."""
    for name, handler in COMMANDS.items():
        server.command(name)(wrap_errors(handler))
