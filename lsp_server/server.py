"""The Gearshift language server: shared state and wiring, nothing else.

Features live in ``lsp_server/features/`` and register themselves on this
server; this module declares and builds every piece of state they share (settings, loaded
tiers, the latency guard, the completion service, the cloud service, the last code action).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcParseError
from pygls.lsp.server import LanguageServer

from lsp_server import __version__
from lsp_server.cloud.service import CloudService
from lsp_server.completion.service import CompletionOutcome, CompletionService
from lsp_server.errors import GearshiftError
from lsp_server.features import command_arguments
from lsp_server.inference.guard import LatencyGuard
from lsp_server.inference.tiers import TierManager
from lsp_server.protocol import GearshiftProtocol
from lsp_server.settings import GearshiftSettings, SettingsError, parse_settings
from lsp_server.wire import CompletionStatus
from lsp_server.wiring import new_service

if TYPE_CHECKING:  # the feature modules register on the server; the server does not load them at import
    from lsp_server.features.actions import ActionRequest

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "gearshift/status"


class GearshiftServer(LanguageServer):
    """A LanguageServer holding Gearshift's shared state; features read it through ``server``."""

    protocol: GearshiftProtocol

    def __init__(self, settings: GearshiftSettings | None = None) -> None:
        converter = command_arguments.converter()
        super().__init__(
            name="gearshift", version=__version__, protocol_cls=GearshiftProtocol, converter_factory=lambda: converter
        )
        self.converter = converter
        """pygls' converter with the command argument types (docs/protocol.md), as typed handlers receive them."""
        self.settings = settings or GearshiftSettings()
        self.tiers = TierManager(self.settings)
        self.guard: LatencyGuard | None = None
        self.completions: CompletionService | None = None
        """Inline completion, once the starting tier has loaded."""
        self.model_error: str | None = None
        self.cloud = CloudService(self.settings.cloud, logger=logging.getLogger("gearshift.cloud"))
        """The router's decisions, cloud requests, the cost meter and the audit log."""
        self.last_action: ActionRequest | None = None
        """The last explain, refactor or review asked: what `gearshift.escalate` without arguments re-runs."""
        self.last_local_answer: tuple[ActionRequest, dict[str, Any]] | None = None
        """The last request the local model answered, and its answer: escalating that request where the router
        keeps it local returns this answer instead of asking the local model again."""
        self.last_status: dict[str, Any] = {"state": "loading", "tier": self.settings.models.default_model}
        self._startup: asyncio.Task | None = None
        self.background_tasks: set[asyncio.Task] = set()
        self._errors_shown: set[str] = set()

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
        self.cloud.update_settings(new.cloud)
        if self.completions is not None:
            self.completions.update_settings(new)
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
            root = self.workspace.root_path  # its `gearshift eval` report, if any, sets the guard's quality floor
            service = new_service(self.settings, self.tiers, Path(root) if root else None)
            await self.tiers.get(service.guard.current.model)
        except GearshiftError as exc:
            self.model_error = str(exc)
            self.send_status({"state": "error", "tier": self.settings.models.default_model, "message": str(exc)})
            self.show_error(f"Gearshift: {exc}")
            return
        # The rest of a suggestion answered early: its figures (and any guard shift) reach the status too.
        service.on_background_outcome = self.report_completion
        self.guard = service.guard
        self._errors_shown.clear()  # working again: a new failure is news even if it reads the same
        self.completions = service
        self.send_status({"state": "ready", "tier": service.guard.current.name})
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

    def report_completion(self, outcome: CompletionOutcome) -> None:
        """The status after a completion: its tier and figures, the pipeline's own facts (prompt and reused tokens,
        ...) and the guard's shift if it made one."""
        self.send_status({**CompletionStatus.of(outcome).to_json(), **(outcome.shift or {})})

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
