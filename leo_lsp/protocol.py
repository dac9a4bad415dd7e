"""The LSP protocol with JSON-RPC's promise kept: every request with an id gets an answer.

pygls drops a request whose params do not structure, whose `jsonrpc` is not "2.0", which lacks
`jsonrpc`, or which arrives after `shutdown`: it logs and the client waits forever. Here messages
are decoded as plain JSON first and checked before pygls structures them, so each of those is
answered with the JSON-RPC error it deserves (InvalidRequest, InvalidParams).
"""

from __future__ import annotations

import logging
from typing import Any

from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol

logger = logging.getLogger(__name__)

INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
PARSE_ERROR = -32700
EXIT = "exit"


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class LeoProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that answers malformed and late requests instead of dropping them."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        # Used as json.loads' object_hook for every nested object: keep them all plain here and
        # structure only the top-level message, in handle_message.
        return data

    def handle_message(self, message: Any) -> None:
        """Check a decoded JSON value, then let pygls structure and dispatch it."""
        if not isinstance(message, dict):
            self.send_error(None, INVALID_REQUEST, "Invalid Request: a message must be an object")
            return
        has_id = "id" in message
        msg_id = message.get("id")
        method = message.get("method")
        is_request = has_id and "method" in message
        if is_request and not _valid_id(msg_id):
            self.send_error(None, INVALID_REQUEST, "Invalid Request: id must be a string or number")
            return
        if message.get("jsonrpc") != "2.0":
            if is_request:
                self.send_error(msg_id, INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"')
            else:
                logger.warning("ignoring a message without jsonrpc 2.0")
            return
        if "method" in message and not isinstance(method, str):
            if is_request:
                self.send_error(msg_id, INVALID_REQUEST, "Invalid Request: method must be a string")
            return
        if self._shutdown and is_request and method != EXIT:
            self.send_error(msg_id, INVALID_REQUEST, "Invalid Request: the server is shutting down")
            return
        if is_request and "params" in message and not isinstance(message["params"], dict | list):
            if message["params"] is None:
                message = {k: v for k, v in message.items() if k != "params"}
            else:
                self.send_error(msg_id, INVALID_PARAMS, "Invalid Params: params must be structured")
                return
        if not has_id and "method" not in message:
            logger.warning("ignoring a message that is no request, response or notification")
            return
        if has_id and "method" not in message and not _valid_id(msg_id):
            logger.warning("ignoring a response with an invalid id")
            return
        try:
            structured = super().structure_message(message)
        except JsonRpcException as exc:
            if is_request:
                known = method in self.fm.features or method in self.fm.builtin_features
                code, text = (exc.code, exc.message) if known else (-32601, "Method Not Found")
                self.send_error(msg_id, code, f"{text}: {str(method)[:100]}")
            else:
                logger.warning("ignoring a malformed %s notification", str(method)[:100])
            return
        super().handle_message(structured)

    def send_error(self, msg_id: Any, code: int, message: str) -> None:
        """Answer a request (or, with id None, an unidentifiable one) with a JSON-RPC error."""
        self._send_data(
            {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
        )


__all__ = ["PARSE_ERROR", "LeoProtocol"]
