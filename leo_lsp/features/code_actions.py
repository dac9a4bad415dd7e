"""Code actions on struggle hints: jump to similar code, or dismiss the hint."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from leo_lsp.server import LeoServer


def code_actions(ls: LeoServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """For each leo hint in range: "show similar code" per related location, and "dismiss"."""
    actions: list[types.CodeAction] = []
    for diag in params.context.diagnostics:
        if diag.source != "leo":
            continue
        data: Any = diag.data if isinstance(diag.data, dict) else {}
        for info in (diag.related_information or [])[:3]:
            actions.append(
                types.CodeAction(
                    title=f"leo: show similar code — {info.message[:60]}",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    command=types.Command(
                        title="Show similar code",
                        command="leo.showLocation",
                        arguments=[
                            {"uri": info.location.uri, "line": info.location.range.start.line}
                        ],
                    ),
                )
            )
        if data.get("signature"):
            actions.append(
                types.CodeAction(
                    title="leo: dismiss this hint",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    command=types.Command(
                        title="Dismiss hint",
                        command="leo.dismissHint",
                        arguments=[
                            {"uri": params.text_document.uri, "signature": data["signature"]}
                        ],
                    ),
                )
            )
    return actions


async def show_location(ls: LeoServer, *args: Any) -> dict[str, Any]:
    """leo.showLocation {uri, line}: ask the editor to open it (window/showDocument)."""
    from leo_lsp.errors import InvalidArguments

    raw = args[0] if args and isinstance(args[0], dict) else None
    if raw is None or not isinstance(raw.get("uri"), str) or not isinstance(raw.get("line"), int):
        raise InvalidArguments("expected {uri: string, line: integer}", field="uri")
    pos = types.Position(line=raw["line"], character=0)
    result = await ls.window_show_document_async(
        types.ShowDocumentParams(
            uri=raw["uri"], take_focus=True, selection=types.Range(start=pos, end=pos)
        )
    )
    return {"success": bool(result and result.success)}


def register(server: LeoServer) -> None:
    """Register code actions on leo's hints."""
    from leo_lsp.features.commands import wrap_errors

    server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
    )(code_actions)
    server.command("leo.showLocation")(wrap_errors(show_location))
