"""`gearshift.status`: the guard's state, loaded tiers, the cloud meter, and the last completion's figures."""

from __future__ import annotations

from typing import Any

STATUS_COMMAND = "gearshift.status"


def status_report(ls) -> dict[str, Any]:
    from lsp_server.inference.remote import RemoteEngine  # httpx: not at start-up

    guard = ls.guard
    report: dict[str, Any] = {
        **ls.last_status,
        "tier": guard.current.name if guard else ls.last_status.get("tier"),
        "loadedModels": ls.tiers.loaded(),
        "guard": guard.state() if guard else None,
        "modelError": ls.model_error,
    }
    engine = ls.tiers.get_loaded(guard.current.model) if guard else None
    if isinstance(engine, RemoteEngine):  # a team endpoint rung
        report["tierLabel"] = engine.label  # "team · gpu-box:8080 · qwen2.5-coder-1.5b"
        report["team"] = {"requests": engine.requests_sent, "bytesSent": engine.bytes_sent}
    report["cloud"] = ls.cloud.status()
    return report


def register(server) -> None:
    @server.command(STATUS_COMMAND)
    def show_status(ls, *args) -> dict[str, Any]:
        return status_report(ls)
