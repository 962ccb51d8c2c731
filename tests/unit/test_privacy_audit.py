"""Privacy audit: what reaches the cloud, byte for byte.

A loopback stand-in for the Anthropic API (``tests/support/loopback_cloud.py``) records every byte it
receives, request lines and headers included.  Review and escalation requests go through the real request
path, as ``lsp_server.features.actions`` drives it: ``CloudService.route`` (the router, with the whole
document), ``build_prompt``, then ``CloudService.ask`` (never_send re-check, redaction, audit line, the
real ``anthropic`` SDK over HTTP, the meter).  The audit fails if the cloud ever receives

* any line of a file that matches ``never_send`` (each line of those files is unique), or
* any 16 characters in a row of a planted secret: AWS access key ids and secret keys, GitHub tokens,
  Slack tokens and webhooks, JWTs, private key blocks, passwords, each in the forms code holds them,

for the whole file and for every selection of one to six lines of it, so a selection that cuts a key
block or starts in the middle of a config file is covered too.  The same holds for the log.

Fake secrets are assembled at run time so secret scanners do not flag this file.
"""

from __future__ import annotations

import base64
import json
import logging
import random
from collections.abc import Iterator

import pytest

from lsp_server.cloud.prompts import build_prompt
from lsp_server.cloud.router import RouteDecision
from lsp_server.cloud.service import CloudService
from lsp_server.errors import CloudError
from lsp_server.settings import CloudSettings
from tests.support.loopback_cloud import LoopbackCloud

WINDOW = 16
"""A run of this many characters of a secret on the wire is a leak."""

_rng = random.Random(1729)


def _random(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


_UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_B64 = _ALNUM + "+/"


def _jwt() -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    header = part({"alg": "HS256", "typ": "JWT"})
    payload = part({"sub": "planted-user-" + _random(_ALNUM, 12), "admin": True})
    return f"{header}.{payload}.{_random(_ALNUM + '-_', 43)}"


# A PKCS#8 RSA-2048 key is about 1,217 bytes of DER: 26 lines of base64, the last one padded.
_KEY_LINES = [
    line
    for line in (lambda b64: [b64[i : i + 64] for i in range(0, len(b64), 64)])(
        base64.b64encode(bytes(_rng.randrange(256) for _ in range(1217))).decode()
    )
]
PRIVATE_KEY = "-----BEGIN " + "PRIVATE KEY-----\n" + "\n".join(_KEY_LINES) + "\n-----END " + "PRIVATE KEY-----"

SECRETS: dict[str, str] = {
    "aws_access_key": "AKIA" + _random(_UPPER_DIGITS, 16),
    "aws_access_key_2": "AKIA" + _random(_UPPER_DIGITS, 16),
    "aws_secret_key": _random(_B64, 40),
    "aws_secret_key_2": _random(_B64, 40),
    "github_token": "ghp_" + _random(_ALNUM, 36),
    "github_token_2": "ghp_" + _random(_ALNUM, 36),
    "github_pat": "github_pat_" + _random(_ALNUM, 22) + "_" + _random(_ALNUM, 59),
    "slack_bot_token": "xoxb-" + _random("0123456789", 12) + "-" + _random("0123456789", 13) + "-" + _random(_ALNUM, 24),
    "slack_webhook": "T" + _random(_UPPER_DIGITS, 8) + "/B" + _random(_UPPER_DIGITS, 8) + "/" + _random(_ALNUM, 24),
    "jwt": _jwt(),
    "jwt_2": _jwt(),
    "password": "Pl4nted-" + _random(_ALNUM, 10) + "!",
    "password_2": "Pl4nted-" + _random(_ALNUM, 10),
    "password_3": "Pl4nted-" + _random(_ALNUM, 10),
    "password_4": "Pl4nted-" + _random(_ALNUM, 10),
    "password_5": "Pl4nted-" + _random(_ALNUM, 10),
    "password_6": "Pl4nted-" + _random(_ALNUM, 10),
    "password_7": "Pl4nted-" + _random(_ALNUM, 10),
    "db_url_password": "Pl4nted-" + _random(_ALNUM, 10),
}
S = SECRETS

# -- files that may be sent (redacted) ----------------------------------------------------------------

HANDLER_PY = f'''"""Order webhooks."""
import os
import sqlite3
import threading

import boto3
import requests

AWS_ACCESS_KEY_ID = "{S["aws_access_key"]}"
AWS_SECRET_ACCESS_KEY = "{S["aws_secret_key"]}"
GITHUB_TOKEN = "{S["github_token"]}"
SLACK_BOT_TOKEN = '{S["slack_bot_token"]}'
SLACK_WEBHOOK = "https://hooks.slack.com/services/{S["slack_webhook"]}"
password = "{S["password"]}"
ADMIN_PASSWORD = f"{S["password_2"]}"
DATABASE_URL = "postgres://orders:{S["db_url_password"]}@db.internal:5432/orders"
MSSQL = "Server=db.internal;Database=orders;User Id=sa;Password={S["password_3"]};"
SMTP_PASSWORD = os.getenv("SMTP_PASSWORD", "{S["password_4"]}")

SIGNING_KEY = """
{PRIVATE_KEY}
"""

_counter = 0
_lock = threading.Lock()


def session():
    return boto3.session.Session(aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET_ACCESS_KEY)


def handle(event, db: sqlite3.Connection):
    global _counter
    _counter += 1  # not under _lock
    headers = {{"Authorization": "Bearer {S["jwt"]}"}}
    requests.post("https://api.github.com/repos/acme/orders/dispatches", headers=headers)
    return db.execute("SELECT * FROM orders WHERE id = '%s'" % event["id"]).fetchall()
'''

SERVICE_ACCOUNT_JSON = json.dumps(
    {
        "type": "service_account",
        "project_id": "acme-orders",
        "private_key_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "private_key": PRIVATE_KEY + "\n",
        "client_email": "orders@acme-orders.iam.gserviceaccount.com",
    },
    indent=2,
)

DEPLOY_INI = f"""[default]
region = eu-west-1
aws_access_key_id = {S["aws_access_key_2"]}
aws_secret_access_key = {S["aws_secret_key_2"]}

[database]
host = db.internal
password = {S["password_5"]}
"""

CLIENT_TS = f"""import {{ WebClient }} from "@slack/web-api";

const githubToken = "{S["github_token_2"]}";
const pat = `{S["github_pat"]}`;
export const session = {{ token: "{S["jwt_2"]}" }};

export async function notify(text: string): Promise<void> {{
  const client = new WebClient(process.env.SLACK_TOKEN);
  await client.chat.postMessage({{ channel: "#orders", text }});
}}
"""

COMPOSE_YML = f"""services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: {S["password_6"]}
  worker:
    command: ["worker", "--password={S["password_7"]}"]
"""

SENDABLE = [
    ("/home/dev/orders/app/handler.py", "python", HANDLER_PY),
    ("/home/dev/orders/deploy/service-account.json", "json", SERVICE_ACCOUNT_JSON),
    ("/home/dev/orders/deploy/aws.ini", "ini", DEPLOY_INI),
    ("/home/dev/orders/web/client.ts", "typescript", CLIENT_TS),
    ("/home/dev/orders/docker-compose.yml", "yaml", COMPOSE_YML),
]


# -- files that must never be sent --------------------------------------------------------------------


def _never_send_text(name: str) -> str:
    """Code whose every line is unique to this file, so any line of it on the wire is a leak."""
    tag = name.replace("/", "_").replace(".", "_").strip("_")
    return "".join(
        f"{tag}_setting_{i} = '{_random(_ALNUM, 20)}'  # {tag} line {i}\n" for i in range(12)
    ) + f"def {tag}_load():\n    return {tag}_setting_0\n"


NEVER_SEND_PATHS = [
    "/home/dev/orders/secrets/settings.py",
    "/home/dev/orders/config/secrets/prod.py",
    "/home/dev/orders/.secrets/token.py",
    "/home/dev/orders/credentials/gcp.py",
    "/home/dev/orders/private/signing.py",
    "/home/dev/orders/keys/deploy.py",
    "/home/dev/.ssh/config",
    "/home/dev/.aws/credentials",
    "/home/dev/.gnupg/gpg.conf",
    "/home/dev/orders/.env",
    "/home/dev/orders/.env.production",
    "/home/dev/orders/certs/server.pem",
    "/home/dev/orders/certs/server.key",
    "/home/dev/orders/app/db_secret.py",
    "/home/dev/orders/deploy/aws_credentials.py",
    "/home/dev/orders/internal/pricing/rules.py",  # the user's own glob, below
    "file:///home/dev/orders/secrets/uri_form.py",
    "C:\\Users\\dev\\orders\\secrets\\windows_form.py",
]
NEVER_SEND = {path: _never_send_text(path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1] + str(i)) for i, path in enumerate(NEVER_SEND_PATHS)}

# The defaults, plus a glob of the user's own (setting never_send replaces the list, so keep the defaults).
SETTINGS_OVERRIDES = {"never_send": [*CloudSettings().never_send, "internal/**"]}

TASKS = [
    # (task, explicit escalation, instruction)
    ("review_security", False, None),
    ("review_data_race", False, None),
    ("explain", True, None),
    ("refactor", True, f"Read the token from the environment instead of {S['github_token']}."),
]


# -- the leak check -----------------------------------------------------------------------------------


def _needles() -> Iterator[tuple[str, str]]:
    """(what, text): every WINDOW-character run of every planted secret, every line of never-send files."""
    secrets = {**SECRETS, **{f"private_key line {i}": line for i, line in enumerate(_KEY_LINES)}}
    for name, secret in secrets.items():
        if len(secret) <= WINDOW:
            yield name, secret
        for start in range(len(secret) - WINDOW + 1):
            yield name, secret[start : start + WINDOW]
    for path, text in NEVER_SEND.items():
        for line in text.splitlines():
            if line.strip():
                yield f"never-send file {path}", line.strip()


NEEDLES = list(_needles())


def leaks(wire: bytes) -> list[str]:
    """What of the needles the wire holds, as raw bytes or JSON-escaped (the SDK sends JSON)."""
    haystacks = [wire.decode("utf-8", "replace")]
    for body in wire.split(b"\r\n\r\n"):
        try:
            haystacks.append(json.dumps(json.loads(body[body.find(b"{") :]), ensure_ascii=False))
        except ValueError:
            continue
    found = []
    for what, needle in NEEDLES:
        forms = {needle, json.dumps(needle)[1:-1], json.dumps(needle, ensure_ascii=False)[1:-1]}
        if any(form in haystack for form in forms for haystack in haystacks):
            found.append(f"{what}: {needle!r}")
    return found


def selections(text: str) -> Iterator[str]:
    """The whole text, then every run of one to six whole lines of it."""
    yield text
    lines = text.splitlines(keepends=True)
    for size in range(1, 7):
        for start in range(len(lines) - size + 1):
            selection = "".join(lines[start : start + size])
            if selection.strip():
                yield selection


# -- the audit ----------------------------------------------------------------------------------------


@pytest.fixture(name="cloud")
def cloud_fixture() -> Iterator[LoopbackCloud]:
    with LoopbackCloud() as cloud:
        yield cloud


def service_for(cloud: LoopbackCloud) -> CloudService:
    settings = CloudSettings(
        api_key="test-key-not-a-secret", base_url=cloud.url, max_retries=0, **SETTINGS_OVERRIDES
    )
    return CloudService(settings, env={}, logger=logging.getLogger("gearshift.cloud"))


async def review(service: CloudService, task: str, escalate: bool, instruction, path: str, language: str,
                 document: str, selection: str) -> bool:
    """One request as the code actions make it; whether it went to the cloud."""
    decision = service.route(task, file_path=path, text=document, explicit_escalation=escalate)  # type: ignore[arg-type]
    if not decision.is_cloud:
        return False
    prompt = build_prompt(task, selection, language=language, instruction=instruction)  # type: ignore[arg-type]
    await service.ask(decision, task=task, system=prompt.system, prompt=prompt.user, file_name=path)  # type: ignore[arg-type]
    return True


def test_the_audit_sees_a_leak() -> None:
    """The check itself: every kind of needle is found on a wire that carries it, raw or JSON-escaped."""
    assert leaks(f"POST /v1/messages\r\n\r\n{{\"x\": \"{S['password']}\"}}".encode())
    assert leaks(json.dumps({"content": PRIVATE_KEY}).encode())
    never_send_line = next(iter(NEVER_SEND.values())).splitlines()[3]
    assert leaks(json.dumps({"content": f"x\n{never_send_line}\ny"}).encode())
    assert leaks(S["aws_secret_key"][5 : 5 + WINDOW].encode())
    code_without_secrets = HANDLER_PY.split("_counter = 0")[1].split("def handle")[0]
    assert "def session" in code_without_secrets
    assert not leaks(json.dumps({"content": code_without_secrets}).encode())


async def test_nothing_planted_or_never_send_reaches_the_cloud(
    cloud: LoopbackCloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service = service_for(cloud)
    sent = 0
    for path, language, document in SENDABLE:
        for task, escalate, instruction in TASKS:
            sent += await review(service, task, escalate, instruction, path, language, document, document)
        for selection in selections(document):
            sent += await review(service, "review_security", False, None, path, language, document, selection)
    for path, document in NEVER_SEND.items():
        for task, escalate, instruction in TASKS:
            assert not await review(service, task, escalate, instruction, path, "python", document, document)
    await service.aclose()

    wire = cloud.received
    assert leaks(wire) == []
    assert leaks(caplog.text.encode()) == []
    # Not vacuous: every request arrived, and the code went, redacted.
    assert len(cloud.bodies) == sent == service.meter.snapshot()["requests"]
    assert sent > 400  # the whole files and every small selection of them
    assert b"SELECT * FROM orders WHERE id" in wire
    for kind in ("aws_access_key", "github_token", "slack_token", "slack_webhook", "jwt", "password", "private_key"):
        assert f"[REDACTED:{kind}]".encode() in wire, kind


async def test_ask_refuses_never_send_files_even_when_told_to_send(cloud: LoopbackCloud) -> None:
    """A caller that ignores the router (or routed before the settings changed) still sends nothing."""
    service = service_for(cloud)
    forged = RouteDecision("cloud", True, "critical security review", "☁ cloud: critical security review")
    for path, document in NEVER_SEND.items():
        prompt = build_prompt("review_security", document, language="python")
        with pytest.raises(CloudError, match="not sent to the cloud: never_send matched"):
            await service.ask(
                forged, task="review_security", system=prompt.system, prompt=prompt.user, file_name=path
            )
    await service.aclose()
    assert cloud.received == b""
    assert service.audit.records() == []
