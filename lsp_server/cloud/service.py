"""``CloudService``, what the server holds: the one entry point that sends a task to the cloud.

It refuses anything the router did not send to the cloud, redacts the prompt, writes the audit line, streams the
answer and meters the tokens, in that order, so no caller can skip a step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from lsp_server.cloud.audit import AuditLog, AuditRecord, record_cloud_request
from lsp_server.cloud.client import CloudAnswer, CloudClient
from lsp_server.cloud.meter import CostMeter, MeterTotals
from lsp_server.cloud.redaction import redact
from lsp_server.cloud.router import RouteDecision, TaskKind, never_send_match, route
from lsp_server.errors import CloudError
from lsp_server.settings import CloudSettings


class CloudStatus(MeterTotals):
    """The ``cloud`` part of ``gearshift.status``."""

    available: bool
    """An API key is configured."""
    model: str
    recent: list[AuditRecord]
    """The last cloud requests, oldest first."""


class CloudService:
    """Router + redaction + audit + client + meter: the server's ``ls.cloud``.

    ``route()`` decides; ``ask()`` sends only what ``route()`` sent to the cloud.
    """

    def __init__(
        self,
        settings: CloudSettings,
        *,
        env: Mapping[str, str] | None = None,
        logger: logging.Logger | None = None,
        history_size: int = 20,
    ) -> None:
        self._env = env
        self._logger = logger
        self.client = CloudClient(settings, env=env)
        self.meter = CostMeter(settings)
        self.audit = AuditLog(history_size)
        self._retired: set[asyncio.Task[None]] = set()

    @property
    def settings(self) -> CloudSettings:
        return self.client.settings

    @property
    def available(self) -> bool:
        return self.client.available

    def update_settings(self, settings: CloudSettings) -> None:
        """Use new settings from the next request on (a new SDK client if the connection settings changed)."""
        self.meter.update_settings(settings)
        if settings == self.client.settings:
            return
        old, self.client = self.client, CloudClient(settings, env=self._env)
        try:
            task = asyncio.get_running_loop().create_task(old.aclose())
        except RuntimeError:  # no loop running: nothing was ever opened on one
            return
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def route(
        self,
        task: TaskKind,
        *,
        file_path: str | None,
        text: str,
        explicit_escalation: bool = False,
        local_model: str = "local model",
    ) -> RouteDecision:
        """``router.route`` with this service's settings and key."""
        return route(
            task,
            file_path=file_path,
            text=text,
            settings=self.settings,
            explicit_escalation=explicit_escalation,
            cloud_available=self.available,
            local_model=local_model,
        )

    async def ask(
        self,
        decision: RouteDecision,
        *,
        task: TaskKind,
        system: str,
        prompt: str,
        file_name: str | None,
        max_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
        cancel: asyncio.Event | None = None,
    ) -> CloudAnswer:
        """Redact ``system`` and ``prompt``, log the audit line, stream the answer and meter it.

        Raises CloudError, with nothing sent, when ``decision`` is not a cloud
        decision or the current settings forbid it (they may have changed since
        ``route()``: local_only, disabled, ``file_name`` matching never_send);
        and when the request fails.
        """
        settings = self.settings
        refusal = None
        if not decision.is_cloud:
            refusal = decision.reason
        elif settings.local_only:
            refusal = "local_only is set"
        elif not settings.enabled:
            refusal = "cloud disabled (gearshift.cloud.enabled is false)"
        elif file_name and (glob := never_send_match(file_name, settings)):
            refusal = f"never_send matched {glob}"
        if refusal is not None:
            raise CloudError(f"not sent to the cloud: {refusal}")

        system_redaction, prompt_redaction = redact(system), redact(prompt)
        redactions = (*system_redaction.redactions, *prompt_redaction.redactions)
        record_cloud_request(
            self._logger,
            task=task,
            file_name=file_name,
            sent_chars=len(system_redaction.text) + len(prompt_redaction.text),
            redactions=redactions,
            model=self.client.model,
            history=self.audit,
        )
        answer = await self.client.stream(
            system_redaction.text,
            prompt_redaction.text,
            max_tokens=max_tokens,
            on_text=on_text,
            cancel=cancel,
        )
        if answer.input_tokens or answer.output_tokens:
            self.meter.record(input_tokens=answer.input_tokens, output_tokens=answer.output_tokens)
        return replace(answer, redactions=redactions)

    def status(self) -> dict[str, Any]:
        """The ``cloud`` part of ``gearshift.status``: the meter, plus availability and recent requests."""
        return CloudStatus(
            **dict(self.meter.totals()), available=self.available, model=self.settings.model,
            recent=self.audit.records(),
        ).to_json()

    async def aclose(self) -> None:
        await self.client.aclose()
