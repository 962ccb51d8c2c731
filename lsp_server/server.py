"""The Gearshift language server: shared state and wiring, nothing else.

Features live in ``lsp_server/features/`` and register themselves on this
server; this module builds the shared pieces they use (settings, loaded
tiers, the latency guard, the completion service, the cloud client).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcParseError
from pygls.lsp.server import LanguageServer

from lsp_server import __version__
from lsp_server.completion.service import CompletionService
from lsp_server.errors import GearshiftError
from lsp_server.inference.guard import LatencyGuard
from lsp_server.inference.tiers import TierManager, starting_guard
from lsp_server.protocol import GearshiftProtocol
from lsp_server.settings import GearshiftSettings, SettingsError, parse_settings

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "gearshift/status"


class GearshiftServer(LanguageServer):
    """A LanguageServer holding Gearshift's shared state; features read it through ``server``."""

    def __init__(self, settings: GearshiftSettings | None = None) -> None:
        super().__init__(name="gearshift", version=__version__, protocol_cls=GearshiftProtocol)
        self.settings = settings or GearshiftSettings()
        self.tiers = TierManager(self.settings)
        self.guard: LatencyGuard | None = None
        self.completions: CompletionService | None = None
        self.model_error: str | None = None
        self.last_status: dict[str, Any] = {"state": "loading", "tier": self.settings.models.default_model}
        self._startup: asyncio.Task | None = None
        self.background_tasks: set[asyncio.Task] = set()
        self._errors_shown: set[str] = set()
        self.settings_listeners: list = []
        """Callbacks run with the server after every accepted settings change."""

    # -- settings ---------------------------------------------------------------------------------

    def apply_settings(self, raw: Any) -> bool:
        """Merge editor settings over the current ones; on error show one message and keep the old ones."""
        try:
            new = parse_settings(raw, self.settings)
        except SettingsError as exc:
            self.show_error(str(exc))
            return False
        if new == self.settings:
            return True
        reload = new.models != self.settings.models or new.engine != self.settings.engine
        self.settings = new
        self.tiers.update_settings(new)
        if self.completions is not None:
            self.completions.update_settings(new)
        for listener in self.settings_listeners:
            listener(self)
        if reload and self._startup is not None:
            self.start_models()  # also after a failed load: the change may be the fix (a new path, a repaired file)
        elif self.guard is not None:
            self.guard.update_settings(new.guard, target_tok_s=new.guard.inline_target_tok_s)
        return True

    # -- models -----------------------------------------------------------------------------------

    def start_models(self) -> None:
        """Build the ladder and load the starting tier in the background; errors become status, not crashes."""
        self._startup = self.spawn(self._load_models())

    async def _load_models(self) -> None:
        self.guard = None
        self.completions = None
        self.model_error = None
        self.send_status({"state": "loading", "tier": self.settings.models.default_model})
        try:
            guard = starting_guard(self.settings, self.tiers)
            await self.tiers.get(guard.current.model)
        except GearshiftError as exc:
            self.model_error = str(exc)
            self.send_status({"state": "error", "tier": self.settings.models.default_model, "message": str(exc)})
            self.show_error(f"Gearshift: {exc}")
            return
        self.guard = guard
        self._errors_shown.clear()  # working again: a new failure is news even if it reads the same
        self.completions = CompletionService(self.settings, self.tiers, guard)
        self.send_status({"state": "ready", "tier": guard.current.name})
        self.spawn(self._keep_next_tier_loaded())

    async def _keep_next_tier_loaded(self) -> None:
        guard = self.guard
        if guard is None or not self.settings.guard.keep_next_tier_loaded:
            return
        below = guard.next_model_below()
        if below and self.tiers.fits_alongside(below):
            try:
                await self.tiers.get(below)
            except GearshiftError as exc:
                log.warning("could not preload %s: %s", below, exc)

    async def ready_completions(self) -> CompletionService:
        """The completion service once models are loaded; raises a clear error if they could not be."""
        if self._startup is not None and not self._startup.done():
            await asyncio.shield(self._startup)
        if self.completions is None:
            raise GearshiftError(self.model_error or "Gearshift has no model loaded")
        return self.completions

    # -- client messages --------------------------------------------------------------------------

    def send_status(self, status: dict[str, Any]) -> None:
        self.last_status = {**self.last_status, **status}
        try:
            self.protocol.notify(STATUS_NOTIFICATION, status)
        except Exception:  # no transport yet (e.g. during tests of the service) must not fail the request
            log.debug("status notification not sent", exc_info=True)

    def notify_client(self, method: str, params: dict[str, Any]) -> None:
        """A notification of our own; a missing transport (tests of a service alone) is not an error."""
        try:
            self.protocol.notify(method, params)
        except Exception:
            log.debug("%s not sent", method, exc_info=True)

    def show_error(self, message: str) -> None:
        """A pop-up for what the user must act on, once per message; repeats go to the client's log only."""
        log.error("%s", message)
        try:
            if message not in self._errors_shown:
                self._errors_shown.add(message)
                self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=message))
            self.window_log_message(types.LogMessageParams(type=types.MessageType.Error, message=message))
        except Exception:
            log.debug("message not sent", exc_info=True)

    def report_server_error(self, error: Exception, source) -> None:
        """Errors outside a request's answer: logged, never a pop-up (the user has nothing to act on).

        A body that is not JSON gets the ``-32700`` answer JSON-RPC asks for. pygls would show every malformed
        notification and every notification handler's exception as "Error in server" pop-ups.
        """
        if isinstance(error, json.JSONDecodeError):
            self.protocol.send_error_without_id(JsonRpcParseError(f"Parse error: {error}"))
            return
        cause = error.__cause__ or error
        log.warning("ignored a message the server could not use: %s", str(cause).splitlines()[0] if str(cause) else type(cause).__name__)

    def log_to_client(self, message: str, level: types.MessageType = types.MessageType.Info) -> None:
        try:
            self.window_log_message(types.LogMessageParams(type=level, message=message))
        except Exception:
            log.debug("log message not sent", exc_info=True)

    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro`` in the background, keeping a reference so it is not garbage-collected mid-way."""
        task = asyncio.ensure_future(coro)
        self.background_tasks.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task) -> None:
        self.background_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def shutdown_models(self) -> None:
        self.tiers.close()


def create_server(settings: GearshiftSettings | None = None) -> GearshiftServer:
    """A server with every feature registered."""
    from lsp_server.features import actions, inline_completion, lifecycle, status

    server = GearshiftServer(settings)
    lifecycle.register(server)
    inline_completion.register(server)
    status.register(server)
    actions.register(server)
    return server
