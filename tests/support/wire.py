"""The real Gearshift server in this process, fed raw JSON-RPC bodies exactly as pygls' stdio loop feeds them.

For protocol tests that send thousands of messages: no subprocess, no framing, but the same decoding
(``json.loads`` with the protocol's ``structure_message``), the same dispatch and the same handlers.
Models are pointed at a file that does not exist, so nothing is loaded and every model request fails fast.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pygls.exceptions import JsonRpcException

from lsp_server.server import GearshiftServer, create_server


class Wire:
    """A server plus everything it wrote, decoded."""

    def __init__(self, missing_model: str) -> None:
        self.server: GearshiftServer = create_server()
        self.sent: list[dict[str, Any]] = []
        self.exited: int | None = None
        self.server.protocol.set_writer(self, include_headers=False)
        self.initialize_options = {
            "models": {"modelPath": missing_model, "ladder": ["qwen2.5-coder-0.5b"]},
            "completion": {"prewarm": False},
            "cloud": {"localOnly": True},
        }

    # pygls' writer interface
    def write(self, data: bytes) -> None:
        self.sent.append(json.loads(data))

    def close(self) -> None:
        pass

    def feed(self, body: bytes | str | dict | list) -> None:
        """One message body, handled as pygls' ``run_async`` handles it."""
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        protocol = self.server.protocol
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
            protocol.handle_message(message)
        except SystemExit as stop:  # `exit`: pygls ends the process this way
            self.exited = int(stop.code or 0)
        except Exception as exc:
            self.server.report_server_error(exc, JsonRpcException)

    async def settle(self, rounds: int = 200) -> None:
        """Wait until every running request handler has finished and answered."""
        for _ in range(rounds):
            await asyncio.sleep(0)
            pending = [f for f in self.server.protocol._request_futures.values() if not f.done()]
            if not pending:
                await asyncio.sleep(0)
                return
            await asyncio.wait([asyncio.wrap_future(f) if not isinstance(f, asyncio.Future) else f for f in pending],
                               timeout=5)
        raise AssertionError("request handlers still running")

    def initialize(self, request_id: int = 0) -> None:
        self.feed({"jsonrpc": "2.0", "id": request_id, "method": "initialize",
                   "params": {"capabilities": {}, "initializationOptions": self.initialize_options}})

    def answers(self, request_id: Any) -> list[dict[str, Any]]:
        return [m for m in self.sent if "method" not in m and m.get("id") == request_id]

    def pop_ups(self) -> list[str]:
        return [m["params"]["message"] for m in self.sent if m.get("method") == "window/showMessage"]
