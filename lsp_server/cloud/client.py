"""The Anthropic client: ``CloudClient`` wraps ``anthropic.AsyncAnthropic``.

Streaming and plain answers, cancellation, and every SDK failure turned into a one-line
``CloudError`` (``failures``).  Retries with backoff on 429, 5xx and timeouts are the SDK's
own (``max_retries``, honouring ``retry-after``); we do not add another layer.
A 200 response that is not an answer (an HTML page from a proxy, binary
bytes, a broken or cut-off event stream) is a ``CloudError`` too, never the
parser's exception and never a half answer passed off as a whole one.

What the server holds is ``service.CloudService``, the one entry point that sends a task to the cloud.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsp_server.cloud.failures import (
    BadResponse,
    CallbackFailed,
    CutOff,
    StreamProgress,
    describe_body,
    describe_content_type,
    request_failure,
)
from lsp_server.cloud.redaction import Redaction
from lsp_server.cloud.router import CLOUD_NOT_CONFIGURED
from lsp_server.cloud.sdk import load_sdk, quiet_sdk_loggers
from lsp_server.errors import CloudError
from lsp_server.settings import CloudSettings

if TYPE_CHECKING:
    import anthropic

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
            await asyncio.to_thread(load_sdk)

    def _client(self) -> anthropic.AsyncAnthropic:
        if self._api_key is None:
            raise CloudError(CLOUD_NOT_CONFIGURED.replace("; answered locally", ""))
        if self._sdk is None:
            anthropic, _ = load_sdk()
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
            if not isinstance(message, load_sdk()[0].types.Message):
                raise BadResponse(describe_body(message))
            return CloudAnswer(
                text="".join(block.text for block in message.content if block.type == "text"),
                model=str(message.model),
                input_tokens=int(message.usage.input_tokens),
                output_tokens=int(message.usage.output_tokens),
                stop_reason=message.stop_reason,
            )
        except Exception as exc:
            raise self._failure(exc, stream=False) from exc

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
        progress = StreamProgress()

        def deliver(text: str) -> None:
            if on_text is None:
                return
            try:
                on_text(text)
            except Exception as exc:  # the caller's error, not the cloud's: re-raised as it is, below
                raise CallbackFailed(exc) from exc

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
                    raise BadResponse(describe_content_type(progress.content_type, stream=True))
                if not progress.stopped:  # the server closed the stream cleanly, but before the answer's end
                    raise CutOff()
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
        except CallbackFailed as failed:
            raise failed.error from None
        except Exception as exc:
            raise self._failure(exc, stream=True, progress=progress) from exc

    def _failure(self, exc: Exception, *, stream: bool, progress: StreamProgress | None = None) -> CloudError:
        host = self._sdk.base_url.host if self._sdk is not None else None
        return request_failure(exc, self.settings, host=host, stream=stream, progress=progress)
