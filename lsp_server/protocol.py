"""JSON-RPC and LSP lifecycle conformance on top of pygls' protocol: every request gets exactly one answer.

pygls drops or mis-answers a few kinds of message; an editor waiting on such a request hangs, and a fuzzer or a
buggy client finds them within seconds. This class closes those gaps, one rule per method below:

- a request whose params do not deserialize gets ``-32602`` naming the method (pygls drops it);
- a request to an unknown method gets ``-32601`` even without ``params`` (pygls said ``-32602`` with a
  Python ``TypeError``), an unknown notification is dropped quietly;
- a request id that is not an integer or a string is answered with id ``null`` and ``-32600``;
- before ``initialize``: requests get ``-32002``, notifications other than ``exit`` are dropped;
- after ``shutdown``: requests get ``-32600`` (pygls never answered them);
- a handler's ``GearshiftError`` becomes a one-sentence message, never a Python exception name;
- ``exit`` records the exit code the specification asks for (0 after ``shutdown``, else 1);
- a client that closed its end (an editor quitting while an answer is on its way) is noted once at INFO and
  nothing more is written (pygls logged a traceback at ERROR for every message after it).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import RPCRequest
from pygls.protocol.language_server import lsp_method

from lsp_server.errors import GearshiftError, RequestRefused
from lsp_server.text_sync import LspWorkspace

log = logging.getLogger(__name__)

_ALWAYS_ALLOWED = {types.INITIALIZE, types.EXIT}


def _valid_id(msg_id: Any) -> bool:
    # LSP ids are integer | string; JSON booleans are ints to Python and floats are not LSP integers.
    return isinstance(msg_id, str) or (isinstance(msg_id, int) and not isinstance(msg_id, bool))


class GearshiftProtocol(LanguageServerProtocol):
    """pygls' LanguageServerProtocol with the JSON-RPC and lifecycle rules in the module docstring."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exit_code: int | None = None
        """The process exit code ``exit`` asked for; None until ``exit`` arrives."""

    def set_writer(self, writer: Any, include_headers: bool = True) -> None:
        super().set_writer(_ClientGoneWriter(writer), include_headers)

    def send_error_without_id(self, error: JsonRpcException) -> None:
        """An error answer with ``"id": null``, as JSON-RPC asks when the id is missing or unusable."""
        # lsprotocol's ResponseErrorMessage drops a None id from the JSON; the spec wants it present.
        self._send_data({"jsonrpc": self.VERSION, "id": None, "error": {"code": error.code, "message": error.message}})

    # -- decoding ---------------------------------------------------------------------------------

    def _known_method(self, method: Any) -> bool:
        return isinstance(method, str) and (method in self.fm.features or method in self.fm.builtin_features)

    def structure_message(self, data: dict[str, Any]):
        if not isinstance(data, dict) or "jsonrpc" not in data:
            return data  # a nested object, decoded bottom-up by json.loads' object_hook
        is_request = "id" in data and "method" in data
        if is_request and not _valid_id(data["id"]):
            self.send_error_without_id(JsonRpcInvalidRequest("Invalid request: id must be an integer or a string"))
            raise JsonRpcInvalidRequest("request id is not an integer or a string")
        if "method" in data and "params" not in data and not self._known_method(data["method"]):
            # pygls' fallback message types require params; without them an unknown method read as bad params.
            data = {**data, "params": None}
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if is_request:
                detail = exc.__cause__ or exc
                first_line = str(detail).splitlines()[0] if str(detail) else type(detail).__name__
                error = JsonRpcInvalidParams(f"Invalid params for {data['method']}: {first_line}")
                self._send_response(data["id"], error=error.to_response_error())
            raise

    # -- lifecycle --------------------------------------------------------------------------------

    def handle_message(self, message) -> None:
        if not hasattr(message, "jsonrpc") or message.jsonrpc != self.VERSION:
            # Not a JSON-RPC 2.0 message (an array, a number, a missing or wrong "jsonrpc"): no id can be trusted.
            if isinstance(message, RPCRequest) or isinstance(message, (dict, list, str, int, float)) or message is None:
                self.send_error_without_id(
                    JsonRpcInvalidRequest('Invalid request: not a JSON-RPC 2.0 message (jsonrpc must be "2.0")')
                )
            return
        method = getattr(message, "method", None)
        if self._workspace is None and method not in _ALWAYS_ALLOWED and method is not None:
            if isinstance(message, RPCRequest):
                error = JsonRpcServerNotInitialized(f"Server not initialized: send initialize before {method}")
                self._send_response(message.id, error=error.to_response_error())
            else:
                log.warning("dropped notification %r received before initialize", method)
            return
        if self._shutdown and method != types.EXIT and isinstance(message, RPCRequest):
            error = JsonRpcInvalidRequest(f"Invalid request: the server is shut down ({method} after shutdown)")
            self._send_response(message.id, error=error.to_response_error())
            return
        super().handle_message(message)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):
        if self._workspace is not None:
            raise JsonRpcInvalidRequest("Invalid request: initialize was already sent")
        result = yield from super().lsp_initialize(params)
        # Same workspace, but documents split lines only where LSP does (pygls uses str.splitlines).
        self._workspace = LspWorkspace.like(self._workspace)
        return result

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args):
        self.exit_code = 0 if self._shutdown else 1
        yield from super().lsp_exit(*args)

    # -- answers ----------------------------------------------------------------------------------

    def _send_handler_result(self, future: Future[Any], *, msg_id) -> None:
        if future.done() and not future.cancelled():
            exc = future.exception()
            if exc is not None and not isinstance(exc, JsonRpcException):
                self._request_futures.pop(msg_id, None)
                self._send_response(msg_id, error=_user_facing(exc).to_response_error())
                return
        super()._send_handler_result(future, msg_id=msg_id)


class _ClientGoneWriter:
    """A writer that stops writing, quietly, once the client has closed its end of the connection."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self.gone = False

    def write(self, data: bytes) -> Any:
        if self.gone:
            return None
        try:
            return self._writer.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.gone = True
            log.info("the client closed the connection: nothing more is sent")
            return None

    def close(self) -> Any:
        try:
            return self._writer.close()
        except (BrokenPipeError, ConnectionResetError):
            return None


def _user_facing(exc: BaseException) -> JsonRpcException:
    """The answer to a request whose handler raised: its sentence for Gearshift's own errors, a pointer to the log else."""
    if isinstance(exc, RequestRefused):
        return JsonRpcInvalidParams(str(exc))
    if isinstance(exc, GearshiftError):
        return JsonRpcInternalError(str(exc))
    log.error("request failed", exc_info=exc)
    return JsonRpcInternalError("Gearshift hit an internal error answering this request; the server log has the details")
