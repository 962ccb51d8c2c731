"""The Anthropic client, and the one entry point that sends a task to the cloud.

``CloudClient`` wraps ``anthropic.AsyncAnthropic``: streaming and plain
answers, cancellation, and every SDK failure turned into a one-line
``CloudError``.  Retries with backoff on 429, 5xx and timeouts are the SDK's
own (``max_retries``, honouring ``retry-after``); we do not add another layer.
A 200 response that is not an answer (an HTML page from a proxy, binary
bytes, a broken or cut-off event stream) is a ``CloudError`` too, never the
parser's exception and never a half answer passed off as a whole one.

``CloudService`` is what the server holds: it refuses anything the router did
not send to the cloud, redacts the prompt, writes the audit line, streams the
answer and meters the tokens, in that order, so no caller can skip a step.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lsp_server.cloud.audit import AuditLog, AuditRecord, record_cloud_request
from lsp_server.cloud.meter import CostMeter, MeterTotals
from lsp_server.cloud.redaction import Redaction, redact
from lsp_server.cloud.router import CLOUD_NOT_CONFIGURED, RouteDecision, TaskKind, never_send_match, route
from lsp_server.errors import CloudError
from lsp_server.settings import CloudSettings

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger(__name__)


def _sdk() -> tuple[ModuleType, ModuleType]:
    """``anthropic`` and its HTTP library, imported on first use: the SDK takes seconds to import, and a
    server that never escalates should not start slower for it."""
    import anthropic

    try:  # anthropic 2.x ships on httpx2, 0.x on httpx
        http = importlib.import_module("httpx2")
    except ImportError:  # pragma: no cover
        http = importlib.import_module("httpx")
    return anthropic, http


# The SDK logs whole request bodies (our prompts) at DEBUG and HTTP libraries log headers (the key).
_CHATTY_LOGGERS = ("anthropic", "httpx2", "httpx", "httpcore", "httpcore2")


def quiet_sdk_loggers() -> None:
    """Keep SDK and HTTP loggers at WARNING unless someone set their level on purpose (e.g. ANTHROPIC_LOG)."""
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


@dataclass(frozen=True)
class CloudAnswer:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None
    """"end_turn", "max_tokens", ... as the API says, or "cancelled" when the cancel event stopped it."""
    redactions: tuple[Redaction, ...] = ()
    """What ``CloudService.ask`` redacted from the prompt before sending it."""

    @property
    def cancelled(self) -> bool:
        return self.stop_reason == "cancelled"


def resolve_api_key(settings: CloudSettings, env: Mapping[str, str] | None = None) -> str | None:
    """``gearshift.cloud.apiKey`` if set, else ANTHROPIC_API_KEY; None when neither is."""
    if settings.api_key is not None:
        key = settings.api_key.get_secret_value().strip()
        if key:
            return key
    key = (os.environ if env is None else env).get("ANTHROPIC_API_KEY", "").strip()
    return key or None


class CloudClient:
    """An ``AsyncAnthropic`` for one set of settings; make a new one when the settings change."""

    def __init__(self, settings: CloudSettings, *, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._api_key = resolve_api_key(settings, env)
        self._sdk: anthropic.AsyncAnthropic | None = None  # created on the first request
        quiet_sdk_loggers()

    @property
    def available(self) -> bool:
        """An API key is configured (whether it is valid only the API can say)."""
        return self._api_key is not None

    @property
    def model(self) -> str:
        return self.settings.model

    async def warm_up(self) -> None:
        """Import the SDK in a thread (it takes seconds) so the first escalation does not wait for it."""
        if self.available:
            await asyncio.to_thread(_sdk)

    def _client(self) -> anthropic.AsyncAnthropic:
        if self._api_key is None:
            raise CloudError(CLOUD_NOT_CONFIGURED.replace("; answered locally", ""))
        if self._sdk is None:
            anthropic, _ = _sdk()
            # An explicit api_key keeps the SDK from reading profiles or other credentials.
            self._sdk = anthropic.AsyncAnthropic(
                api_key=self._api_key,
                base_url=self.settings.base_url,
                timeout=self.settings.timeout_s,
                max_retries=self.settings.max_retries,
            )
        return self._sdk

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._sdk is not None:
            sdk, self._sdk = self._sdk, None
            await sdk.close()

    def _request(self, system: str, prompt: str, max_tokens: int | None) -> dict[str, Any]:
        return {
            "model": self.settings.model,
            "max_tokens": max_tokens or self.settings.max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": prompt}],
        }

    async def complete(self, system: str, prompt: str, *, max_tokens: int | None = None) -> CloudAnswer:
        """One non-streaming answer."""
        sdk = self._client()
        try:
            message = await sdk.messages.create(**self._request(system, prompt, max_tokens))
            # The SDK hands back the body as a str when it is not JSON (a proxy's HTML page), and builds a
            # Message without validating it, so a JSON body of another shape only fails when it is read.
            if not isinstance(message, _sdk()[0].types.Message):
                raise _BadResponse(_describe_body(message))
            return CloudAnswer(
                text="".join(block.text for block in message.content if block.type == "text"),
                model=str(message.model),
                input_tokens=int(message.usage.input_tokens),
                output_tokens=int(message.usage.output_tokens),
                stop_reason=message.stop_reason,
            )
        except Exception as exc:
            raise self._cloud_error(exc, stream=False) from exc

    async def stream(
        self,
        system: str,
        prompt: str,
        *,
        max_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
        cancel: asyncio.Event | None = None,
    ) -> CloudAnswer:
        """Stream an answer, calling ``on_text`` with each piece of text as it arrives.

        When ``cancel`` is set the request is abandoned at once (even before the
        first byte) and the text so far comes back with ``stop_reason ==
        "cancelled"``; if it is set before the call nothing is sent.
        """
        sdk = self._client()
        if cancel is not None and cancel.is_set():
            return CloudAnswer("", self.settings.model, 0, 0, "cancelled")

        parts: list[str] = []
        seen = {"input_tokens": 0, "output_tokens": 0}
        progress = _StreamProgress()

        def deliver(text: str) -> None:
            if on_text is None:
                return
            try:
                on_text(text)
            except Exception as exc:  # the caller's error, not the cloud's: re-raised as it is, below
                raise _CallbackFailed(exc) from exc

        async def consume() -> CloudAnswer:
            async with sdk.messages.stream(**self._request(system, prompt, max_tokens)) as events:
                progress.content_type = events.response.headers.get("content-type")
                async for event in events:
                    if event.type == "text":
                        parts.append(event.text)
                        deliver(event.text)
                    elif event.type == "message_start":
                        progress.started = True
                        seen["input_tokens"] = event.message.usage.input_tokens or 0
                    elif event.type == "message_delta":
                        seen["output_tokens"] = event.usage.output_tokens or 0
                    elif event.type == "message_stop":
                        progress.stopped = True
                if not progress.started:
                    raise _BadResponse(_describe_content_type(progress.content_type, stream=True))
                if not progress.stopped:  # the server closed the stream cleanly, but before the answer's end
                    raise _CutOff()
                message = await events.get_final_message()
            return CloudAnswer(
                text="".join(parts),
                model=str(message.model),
                input_tokens=int(message.usage.input_tokens),
                output_tokens=int(message.usage.output_tokens),
                stop_reason=message.stop_reason,
            )

        try:
            if cancel is None:
                return await consume()
            consuming = asyncio.ensure_future(consume())
            cancelled = asyncio.ensure_future(cancel.wait())
            try:
                await asyncio.wait({consuming, cancelled}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                consuming.cancel()
                raise
            finally:
                cancelled.cancel()
            if consuming.done():
                return consuming.result()
            consuming.cancel()
            try:
                await consuming
            except asyncio.CancelledError:
                pass
            text = "".join(parts)
            # Tokens generated before we hung up are billed; the count so far lags, so estimate from the text.
            output_tokens = max(seen["output_tokens"], math.ceil(len(text) / 4))
            return CloudAnswer(text, self.settings.model, seen["input_tokens"], output_tokens, "cancelled")
        except _CallbackFailed as failed:
            raise failed.error from None
        except Exception as exc:
            raise self._cloud_error(exc, stream=True, progress=progress) from exc

    def _cloud_error(
        self, exc: Exception, *, stream: bool, progress: _StreamProgress | None = None
    ) -> CloudError:
        """The CloudError for anything that went wrong between sending the request and reading the answer.

        SDK and HTTP failures are mapped by ``cloud_error_for``; any other exception was raised while the
        SDK parsed (or we read) a response that is not what the API sends, and says so.
        """
        anthropic, http = _sdk()
        host = self._sdk.base_url.host if self._sdk is not None else None
        started = progress is not None and progress.started
        connection_lost = isinstance(exc, (http.HTTPError, anthropic.APIConnectionError)) and not isinstance(
            exc, (http.TimeoutException, anthropic.APITimeoutError)
        )
        if isinstance(exc, _CutOff) or (started and connection_lost):
            error = CloudError(
                f"The Anthropic API at {host or 'the cloud'} cut the answer off: the connection closed "
                "before the end of the stream; try again"
            )
        elif isinstance(exc, _BadResponse):
            error = _unreadable(host, exc.what)
        elif isinstance(exc, http.DecodingError) or isinstance(exc.__cause__, http.DecodingError):
            error = _unreadable(host, "a body that does not decode (a broken content-encoding)")
        elif isinstance(exc, anthropic.APIResponseValidationError):
            error = _unreadable(host, "a message of an unexpected shape")
        elif isinstance(exc, (anthropic.AnthropicError, http.HTTPError)):
            error = cloud_error_for(exc, self.settings, host=host)
        else:
            content_type = progress.content_type if progress is not None else None
            error = _unreadable(host, _describe_parse_failure(exc, content_type, stream=stream))
            log.debug("the SDK failed to read the response", exc_info=exc)
        log.warning("cloud request failed: %s (%s)", error, type(exc).__name__)
        return error


@dataclass
class _StreamProgress:
    """How far one streamed response got, for saying what went wrong with it."""

    content_type: str | None = None
    started: bool = False
    """A ``message_start`` event arrived: the API really began an answer."""
    stopped: bool = False
    """The ``message_stop`` event arrived: the answer is whole."""


class _CallbackFailed(Exception):
    """``on_text`` raised ``error``: the caller's failure, passed through untouched."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _BadResponse(Exception):
    """A 200 response that holds no answer; ``what`` says what came instead, in words fit for the user."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _CutOff(Exception):
    """The event stream ended without ``message_stop``."""


def _unreadable(host: str | None, what: str) -> CloudError:
    return CloudError(
        f"The Anthropic API at {host or 'the cloud'} sent {what} instead of an answer; "
        "check gearshift.cloud.baseUrl and any proxy in between"
    )


def _describe_content_type(content_type: str | None, *, stream: bool) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    expected = "text/event-stream" if stream else "application/json"
    if media == "text/html":
        return "an HTML page"
    if media and media != expected:
        return f"a response of type {media}"
    return "an event stream with no message in it" if stream else "an empty response"


def _describe_body(body: object) -> str:
    if isinstance(body, str):
        return "an HTML page" if body.lstrip()[:1] == "<" else "a response that is not JSON"
    return "a message of an unexpected shape"


def _describe_parse_failure(exc: Exception, content_type: str | None, *, stream: bool) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media and media not in ("text/event-stream", "application/json"):
        return _describe_content_type(content_type, stream=stream)
    if isinstance(exc, UnicodeDecodeError):
        return "bytes that are not UTF-8 text"
    if stream:
        return "a broken event stream"
    return "a malformed message"


def _after_retries(settings: CloudSettings) -> str:
    retries = settings.max_retries
    if retries == 0:
        return ""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}"


def cloud_error_for(exc: BaseException, settings: CloudSettings, *, host: str | None = None) -> CloudError:
    """One clear line for an SDK or HTTP failure, with what to do about it (``host``: the API's host)."""
    anthropic, http = _sdk()
    after = _after_retries(settings)
    if isinstance(exc, (anthropic.APITimeoutError, http.TimeoutException)):
        return CloudError(
            f"Cloud model did not answer within {settings.timeout_s:g}s{after}; "
            "try again, or raise gearshift.cloud.timeoutS"
        )
    if isinstance(exc, (anthropic.APIConnectionError, http.HTTPError)):
        if host is None:
            host = urlparse(settings.base_url).hostname if settings.base_url else "api.anthropic.com"
        cause = exc.__cause__ or exc
        return CloudError(
            f"Cannot reach the Anthropic API at {host}{after} ({type(cause).__name__}); "
            "check the network or gearshift.cloud.baseUrl"
        )
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        error_type = getattr(exc, "type", None) or _body_error_type(exc.body)
        detail = (getattr(exc, "api_message", None) or _body_error_message(exc.body) or "")[:200]
        if status < 400:  # an `error` event in the middle of a 200 stream; the SDK does not retry those
            return CloudError(f"Anthropic stopped the answer mid-stream ({error_type or 'error'}): {detail}")
        if isinstance(exc, anthropic.AuthenticationError):
            return CloudError(
                "Anthropic rejected the API key (401); check ANTHROPIC_API_KEY or gearshift.cloud.apiKey"
            )
        if isinstance(exc, anthropic.PermissionDeniedError):
            return CloudError(f"Anthropic refused the request (403 permission denied): {detail}")
        if isinstance(exc, anthropic.NotFoundError):
            return CloudError(
                f"Anthropic API returned 404: {detail} (check gearshift.cloud.model {settings.model!r})"
            )
        if isinstance(exc, anthropic.RateLimitError):
            return CloudError(f"Anthropic rate limit reached (429){after}; wait a moment and try again")
        if status == 529 or error_type == "overloaded_error":
            return CloudError(f"Anthropic is overloaded ({status}){after}; try again shortly")
        if status >= 500:
            return CloudError(f"Anthropic server error ({status}){after}; try again later")
        return CloudError(f"Anthropic rejected the request ({status} {error_type or 'error'}): {detail}")
    return CloudError(f"Anthropic client error: {type(exc).__name__}: {exc}")


def _body_error_type(body: object) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("type") if isinstance(error, dict) else None


def _body_error_message(body: object) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("message") if isinstance(error, dict) else None


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
