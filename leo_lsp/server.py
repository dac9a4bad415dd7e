"""LeoServer and create_server(): the protocol shell around leo's services."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from leo_lsp import __version__
from leo_lsp.services import Services
from leo_lsp.settings import Settings

logger = logging.getLogger(__name__)


class LeoServer(LanguageServer):
    """The language server; `services` exists once `initialize` has built it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("leo-lsp", __version__, **kwargs)
        self._services: Services | None = None
        self.settings: Settings | None = None
        self.crawls: dict[str, Any] = {}  # project id → running Crawl
        self.progress_cancels: dict[str, Any] = {}  # progress token → asyncio.Event

    @property
    def services(self) -> Services:
        """The services; raises a clear error before initialize."""
        if self._services is None:
            from leo_lsp.errors import LeoError

            raise LeoError("leo is not initialized yet")
        return self._services

    @services.setter
    def services(self, value: Services) -> None:
        self._services = value

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Log out-of-band errors instead of popping a message box for each one."""
        logger.error("server error (%s): %s", getattr(source, "__name__", source), error)
        if source is JsonRpcException and isinstance(error, ValueError | RecursionError):
            # The body was not JSON (or nested too deep to decode): JSON-RPC's parse error.
            from leo_lsp.protocol import PARSE_ERROR, LeoProtocol

            if isinstance(self.protocol, LeoProtocol):
                self.protocol.send_error(None, PARSE_ERROR, f"Parse error: {str(error)[:200]}")

    def tell(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """Show a message to the user (window/showMessage)."""
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))


def create_server() -> LeoServer:
    """Build the server and let each feature module register its handlers, in order."""
    from leo_lsp.features import FEATURES
    from leo_lsp.protocol import LeoProtocol

    server = LeoServer(protocol_cls=LeoProtocol)
    for feature in FEATURES:
        feature.register(server)
    return server
