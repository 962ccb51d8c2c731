"""Whether a document may go to a team endpoint: the same privacy rules as the cloud, in one place.

A remote engine is a place code goes. ``cloud.neverSend`` files never go to any endpoint; ``cloud.localOnly``
forbids endpoints unless one is explicitly allowed (a server the user controls).
"""

from __future__ import annotations

from lsp_server.cloud.router import never_send_match
from lsp_server.settings import EndpointSettings, GearshiftSettings


def remote_refusal(endpoint: EndpointSettings | None, path: str | None, settings: GearshiftSettings) -> str | None:
    """Why the document at ``path`` must not be sent to ``endpoint``, or None when it may."""
    if endpoint is None:
        return "no such endpoint"
    if settings.cloud.local_only and not endpoint.allow_when_local_only:
        return f"cloud.localOnly is on and endpoint {endpoint.name} is not allowed (allowWhenLocalOnly)"
    if path and (glob := never_send_match(path, settings.cloud)) is not None:
        return f"{path} matches cloud.neverSend {glob!r}"
    return None
