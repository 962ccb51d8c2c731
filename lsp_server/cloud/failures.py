"""Every way a cloud request can fail, as one line for the user with what to do about it.

SDK and HTTP failures map to their cause (timeout, no connection, a status code); a 200 response that is not
an answer (an HTML page from a proxy, binary bytes, a broken or cut-off event stream) says what came instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlparse

from lsp_server.cloud.sdk import load_sdk
from lsp_server.errors import CloudError
from lsp_server.settings import CloudSettings

log = logging.getLogger(__name__)


def request_failure(
    exc: Exception, settings: CloudSettings, *, host: str | None, stream: bool, progress: StreamProgress | None = None
) -> CloudError:
    """The CloudError for anything that went wrong between sending the request and reading the answer.

    SDK and HTTP failures are mapped by ``cloud_error_for``; any other exception was raised while the
    SDK parsed (or we read) a response that is not what the API sends, and says so.
    """
    anthropic, http = load_sdk()
    started = progress is not None and progress.started
    connection_lost = isinstance(exc, (http.HTTPError, anthropic.APIConnectionError)) and not isinstance(
        exc, (http.TimeoutException, anthropic.APITimeoutError)
    )
    if isinstance(exc, CutOff) or (started and connection_lost):
        error = CloudError(
            f"The Anthropic API at {host or 'the cloud'} cut the answer off: the connection closed "
            "before the end of the stream; try again"
        )
    elif isinstance(exc, BadResponse):
        error = _unreadable(host, exc.what)
    elif isinstance(exc, http.DecodingError) or isinstance(exc.__cause__, http.DecodingError):
        error = _unreadable(host, "a body that does not decode (a broken content-encoding)")
    elif isinstance(exc, anthropic.APIResponseValidationError):
        error = _unreadable(host, "a message of an unexpected shape")
    elif isinstance(exc, (anthropic.AnthropicError, http.HTTPError)):
        error = cloud_error_for(exc, settings, host=host)
    else:
        content_type = progress.content_type if progress is not None else None
        error = _unreadable(host, _describe_parse_failure(exc, content_type, stream=stream))
        log.debug("the SDK failed to read the response", exc_info=exc)
    log.warning("cloud request failed: %s (%s)", error, type(exc).__name__)
    return error


@dataclass
class StreamProgress:
    """How far one streamed response got, for saying what went wrong with it."""

    content_type: str | None = None
    started: bool = False
    """A ``message_start`` event arrived: the API really began an answer."""
    stopped: bool = False
    """The ``message_stop`` event arrived: the answer is whole."""


class CallbackFailed(Exception):
    """``on_text`` raised ``error``: the caller's failure, passed through untouched."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class BadResponse(Exception):
    """A 200 response that holds no answer; ``what`` says what came instead, in words fit for the user."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class CutOff(Exception):
    """The event stream ended without ``message_stop``."""


def _unreadable(host: str | None, what: str) -> CloudError:
    return CloudError(
        f"The Anthropic API at {host or 'the cloud'} sent {what} instead of an answer; "
        "check gearshift.cloud.baseUrl and any proxy in between"
    )


def describe_content_type(content_type: str | None, *, stream: bool) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    expected = "text/event-stream" if stream else "application/json"
    if media == "text/html":
        return "an HTML page"
    if media and media != expected:
        return f"a response of type {media}"
    return "an event stream with no message in it" if stream else "an empty response"


def describe_body(body: object) -> str:
    if isinstance(body, str):
        return "an HTML page" if body.lstrip()[:1] == "<" else "a response that is not JSON"
    return "a message of an unexpected shape"


def _describe_parse_failure(exc: Exception, content_type: str | None, *, stream: bool) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media and media not in ("text/event-stream", "application/json"):
        return describe_content_type(content_type, stream=stream)
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
    anthropic, http = load_sdk()
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
