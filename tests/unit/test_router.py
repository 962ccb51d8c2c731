"""The router: the single auditable decision of what may leave the machine."""

from __future__ import annotations

import pytest

from lsp_server.cloud.router import CLOUD_NOT_CONFIGURED, glob_match, normalize_path, route
from lsp_server.settings import CloudSettings

DEFAULTS = CloudSettings()


def decide(
    task: str,
    *,
    file_path: str | None = "/home/dev/app/src/service.py",
    text: str = "def f():\n    return 1\n",
    settings: CloudSettings = DEFAULTS,
    explicit: bool = False,
    available: bool = True,
):
    return route(
        task,  # type: ignore[arg-type]
        file_path=file_path,
        text=text,
        settings=settings,
        explicit_escalation=explicit,
        cloud_available=available,
        local_model="qwen2.5-coder-0.5b",
    )


ROUTES = [
    # (task, kwargs, destination, critical, reason must contain)
    pytest.param("completion", {}, "local", False, "always runs locally", id="completion-local"),
    pytest.param(
        "completion",
        {"explicit": True, "text": "# gearshift: critical"},
        "local",
        False,
        "always runs locally",
        id="completion-local-even-if-critical",
    ),
    pytest.param("explain", {}, "local", False, "explain runs locally by default", id="explain-local"),
    pytest.param("refactor", {}, "local", False, "refactor runs locally by default", id="refactor-local"),
    pytest.param(
        "review_data_race", {}, "cloud", True, "critical data-race review", id="data-race-review-cloud"
    ),
    pytest.param(
        "review_security", {}, "cloud", True, "critical security review", id="security-review-cloud"
    ),
    pytest.param(
        "explain", {"explicit": True}, "cloud", True, "explicit escalation of explain", id="escalated-explain"
    ),
    pytest.param(
        "refactor",
        {"explicit": True},
        "cloud",
        True,
        "explicit escalation of refactor",
        id="escalated-refactor",
    ),
    pytest.param(
        "explain",
        {"text": "x = 1  # gearshift: critical\n"},
        "cloud",
        True,
        "marked gearshift: critical",
        id="marker-hash-comment",
    ),
    pytest.param(
        "refactor",
        {"text": "// Gearshift: Critical\nint x;"},
        "cloud",
        True,
        "gearshift: critical",
        id="marker-slash-comment-any-case",
    ),
    pytest.param(
        "explain",
        {"text": "/* gearshift:critical */"},
        "cloud",
        True,
        "gearshift: critical",
        id="marker-block-comment-no-space",
    ),
    pytest.param(
        "explain",
        {"text": "-- gearshift : critical\nSELECT 1;"},
        "cloud",
        True,
        "gearshift: critical",
        id="marker-sql-comment",
    ),
    pytest.param(
        "explain",
        {"text": "<!-- gearshift: critical -->"},
        "cloud",
        True,
        "gearshift: critical",
        id="marker-html-comment",
    ),
    pytest.param(
        "explain",
        {"text": "# gearshift: critically important"},
        "local",
        False,
        "by default",
        id="marker-must-stand-alone",
    ),
    pytest.param(
        "explain",
        {"text": "# my-gearshift: critical"},
        "local",
        False,
        "by default",
        id="marker-must-not-be-part-of-a-word",
    ),
    pytest.param(
        "explain",
        {
            "file_path": "/home/dev/app/src/payments/charge.py",
            "settings": CloudSettings(critical_globs=["**/payments/**"]),
        },
        "cloud",
        True,
        "critical_globs **/payments/**",
        id="critical-glob",
    ),
    pytest.param(
        "explain",
        {
            "file_path": "/home/dev/app/src/Payments/charge.py",
            "settings": CloudSettings(critical_globs=["**/payments/**"]),
        },
        "local",
        False,
        "by default",
        id="critical-glob-case-sensitive",
    ),
    # always-wins rules
    pytest.param(
        "review_security",
        {"settings": CloudSettings(local_only=True)},
        "local",
        True,
        "local_only is set; critical security review answered locally",
        id="local-only-wins",
    ),
    pytest.param(
        "explain",
        {"explicit": True, "settings": CloudSettings(local_only=True)},
        "local",
        True,
        "local_only is set",
        id="local-only-beats-escalation",
    ),
    pytest.param(
        "review_data_race",
        {"settings": CloudSettings(enabled=False)},
        "local",
        True,
        "cloud disabled (gearshift.cloud.enabled is false)",
        id="disabled-wins",
    ),
    pytest.param(
        "review_security",
        {"file_path": "/home/dev/app/.env"},
        "local",
        True,
        "never_send matched **/.env",
        id="never-send-dotenv",
    ),
    pytest.param(
        "review_security",
        {"file_path": "config/.env.production"},
        "local",
        True,
        "never_send matched **/.env.*",
        id="never-send-dotenv-variant-relative",
    ),
    pytest.param(
        "explain",
        {"explicit": True, "file_path": "/home/dev/.ssh/id_ed25519"},
        "local",
        True,
        "never_send matched **/id_ed25519*",
        id="never-send-beats-escalation",
    ),
    pytest.param(
        "review_security",
        {"file_path": "/srv/app/deploy/AWS_Credentials.json"},
        "local",
        True,
        "never_send matched **/*credentials*",
        id="never-send-case-insensitive",
    ),
    pytest.param(
        "review_security",
        {"file_path": "file:///home/dev/app/certs/server.pem"},
        "local",
        True,
        "never_send matched **/*.pem",
        id="never-send-file-uri",
    ),
    pytest.param(
        "review_security",
        {"file_path": "C:\\Users\\dev\\app\\secrets.yaml"},
        "local",
        True,
        "never_send matched **/*secret*",
        id="never-send-windows-path",
    ),
    pytest.param(
        "explain",
        {
            "file_path": "/home/dev/app/src/payments/.env",
            "settings": CloudSettings(critical_globs=["**/payments/**"]),
        },
        "local",
        True,
        "never_send matched **/.env",
        id="never-send-beats-critical-glob",
    ),
    pytest.param(
        "review_security", {"available": False}, "local", True, CLOUD_NOT_CONFIGURED, id="no-key-stays-local"
    ),
    pytest.param(
        "explain",
        {"explicit": True, "available": False},
        "local",
        True,
        CLOUD_NOT_CONFIGURED,
        id="no-key-escalation-stays-local",
    ),
    pytest.param(
        "review_security",
        {"available": False, "settings": CloudSettings(local_only=True)},
        "local",
        True,
        "local_only is set",
        id="local-only-reason-before-no-key",
    ),
    pytest.param(
        "review_security", {"file_path": None}, "cloud", True, "critical security review", id="unsaved-buffer"
    ),
]


@pytest.mark.parametrize(("task", "kwargs", "destination", "critical", "reason"), ROUTES)
def test_route(task: str, kwargs: dict, destination: str, critical: bool, reason: str) -> None:
    decision = decide(task, **kwargs)
    assert decision.destination == destination
    assert decision.critical is critical
    assert reason in decision.reason
    assert decision.is_cloud is (destination == "cloud")


def test_labels_name_the_model_and_the_reason() -> None:
    cloud = decide("review_data_race", settings=CloudSettings(model="claude-sonnet-4-6"))
    assert cloud.label == "☁ cloud (claude-sonnet-4-6): critical data-race review"
    local = decide("explain")
    assert local.label == "local (qwen2.5-coder-0.5b): explain runs locally by default"
    kept = decide("review_security", available=False)
    assert kept.label == f"local (qwen2.5-coder-0.5b): {CLOUD_NOT_CONFIGURED}"


def test_reason_never_contains_the_text() -> None:
    text = "password = 'hunter2'  # gearshift: critical"
    decision = decide("explain", text=text)
    assert "hunter2" not in decision.reason and "hunter2" not in decision.label


def test_route_is_pure() -> None:
    settings = CloudSettings(critical_globs=["src/**"])
    before = settings.model_dump()
    first = decide("explain", file_path="/w/src/a.py", settings=settings)
    assert decide("explain", file_path="/w/src/a.py", settings=settings) == first
    assert settings.model_dump() == before


def test_unknown_task_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        decide("summarize")


GLOBS = [
    # (path, pattern, matches)
    pytest.param("/home/u/p/.env", "**/.env", True, id="doublestar-absolute"),
    pytest.param(".env", "**/.env", True, id="doublestar-zero-dirs"),
    pytest.param("a/b/c/.env", "**/.env", True, id="doublestar-relative"),
    pytest.param("/home/u/p/.env.local", "**/.env", False, id="doublestar-exact-name"),
    pytest.param("/home/u/p/.envrc", "**/.env.*", False, id="dot-star-needs-dot"),
    pytest.param("/home/u/p/.env.local", "**/.env.*", True, id="dot-star"),
    pytest.param("/k/server.pem", "*.pem", True, id="no-slash-matches-basename-anywhere"),
    pytest.param("/k/server.pem.txt", "*.pem", False, id="star-anchored-at-end"),
    pytest.param(
        "/w/src/payments/charge.py", "src/payments/*.py", True, id="relative-pattern-on-absolute-path"
    ),
    pytest.param("/w/src/payments/deep/charge.py", "src/payments/*.py", False, id="star-stays-in-segment"),
    pytest.param("/w/src/payments/deep/charge.py", "src/payments/**", True, id="trailing-doublestar"),
    pytest.param("/w/src/payments/deep/charge.py", "src/**/charge.py", True, id="middle-doublestar"),
    pytest.param("/w/src/charge.py", "src/**/charge.py", True, id="middle-doublestar-zero-dirs"),
    pytest.param("/w/mysrc/charge.py", "src/**/charge.py", False, id="segment-boundary"),
    pytest.param("/w/src/charge.py", "/w/src/*.py", True, id="absolute-pattern"),
    pytest.param("/x/w/src/charge.py", "/w/src/*.py", False, id="absolute-pattern-is-anchored"),
    pytest.param("/home/u/.ssh/id_rsa.pub", "**/id_rsa*", True, id="prefix-star"),
    pytest.param("/w/a.key", "**/*.{pem,key}", True, id="braces"),
    pytest.param("/w/a.crt", "**/*.{pem,key}", False, id="braces-no-match"),
    pytest.param("/w/a1.py", "**/a[0-9].py", True, id="char-class"),
    pytest.param("/w/ab.py", "**/a[!0-9].py", True, id="negated-char-class"),
    pytest.param("/w/a/b.py", "**/a?b.py", False, id="question-mark-not-slash"),
    pytest.param("/w/secret_project/main.py", "**/*secret*", False, id="matches-files-not-parent-dirs"),
    pytest.param("/w/secret_project/main.py", "**/*secret*/**", True, id="directory-glob"),
    pytest.param("/w/src/payments/deep/charge.py", "src/payments/", True, id="trailing-slash-is-a-folder"),
    pytest.param("/w/src/payments", "src/payments/", False, id="trailing-slash-is-not-a-file"),
    pytest.param("/w/a+b (1).py", "**/a+b (1).py", True, id="regex-metacharacters-are-literal"),
]


@pytest.mark.parametrize(("path", "pattern", "matches"), GLOBS)
def test_glob_match(path: str, pattern: str, matches: bool) -> None:
    assert glob_match(path, pattern) is matches


def test_folder_matching_is_a_choice() -> None:
    # critical_globs match files (a folder glob must say dir/**); never_send also covers folders on the path.
    assert not glob_match("/w/secrets/settings.py", "**/*secret*")
    assert glob_match("/w/secrets/settings.py", "**/*secret*", folders=True)
    assert glob_match("/w/secrets/settings.py", "secrets", folders=True)
    assert not glob_match("/w/secretsauce.py", "secrets", folders=True)


def test_glob_case_sensitivity_is_a_choice() -> None:
    assert not glob_match("/w/Secrets.yaml", "**/*secret*")
    assert glob_match("/w/Secrets.yaml", "**/*secret*", case_sensitive=False)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("file:///home/u/my%20app/x.py", "/home/u/my app/x.py", id="file-uri"),
        pytest.param("file:///C:/Users/u/x.py", "C:/Users/u/x.py", id="windows-file-uri"),
        pytest.param("C:\\Users\\u\\x.py", "C:/Users/u/x.py", id="windows-path"),
        pytest.param("src/x.py", "src/x.py", id="relative"),
    ],
)
def test_normalize_path(path: str, expected: str) -> None:
    assert normalize_path(path) == expected


def test_default_never_send_covers_common_secret_files() -> None:
    for path in [
        "/p/.env",
        "/p/.env.local",
        "/p/tls/key.pem",
        "/p/server.key",
        "/home/u/.ssh/id_rsa",
        "/home/u/.netrc",
        "/home/u/.npmrc",
        "/home/u/.pypirc",
        "/p/config/credentials.json",
        "/p/k8s/db-secret.yaml",
    ]:
        assert decide("review_security", file_path=path).destination == "local", path
    for path in ["/p/src/main.py", "/p/README.md", "/p/src/keyboard.py", "/p/environment.py"]:
        assert decide("review_security", file_path=path).destination == "cloud", path


@pytest.mark.parametrize(
    "path",
    [
        "/home/dev/app/secrets/settings.py",
        "secrets/settings.py",
        "/home/dev/app/config/secrets/prod/db.py",
        "/home/dev/app/.secrets/token.txt",
        "/home/dev/app/credentials/service.py",
        "/home/dev/app/Credentials/gcp/service.json",
        "/home/dev/app/private/signing.py",
        "/home/dev/app/keys/deploy.txt",
        "/home/dev/app/private_keys/deploy",
        "/home/dev/.ssh/config",
        "/home/dev/.aws/config",
        "/home/dev/.gnupg/gpg.conf",
        "/home/dev/.kube/config",
        "/home/dev/.docker/config.json",
        "/home/dev/app/k8s/db-secrets/values.yaml",
        "/home/dev/app/aws-credentials/main.tf",
        "file:///home/dev/app/secrets/settings.py",
        "C:\\Users\\dev\\app\\secrets\\settings.py",
        "/home/dev/app/certs/client.p12",
    ],
)
def test_default_never_send_covers_secret_folders(path: str) -> None:
    decision = decide("review_security", file_path=path, explicit=True)
    assert decision.destination == "local", decision
    assert "never_send matched" in decision.reason


@pytest.mark.parametrize(
    "path",
    ["/home/dev/app/src/keyboard/layout.py", "/home/dev/app/privacy/policy.py", "/home/dev/app/src/monkeys/a.py"],
)
def test_default_never_send_leaves_ordinary_folders_alone(path: str) -> None:
    assert decide("review_security", file_path=path).destination == "cloud", path


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        pytest.param("config/**", "/home/dev/app/config/prod/db.yaml", id="doublestar-subfolder"),
        pytest.param("config/**", "config/prod/eu/db.yaml", id="doublestar-relative-deep"),
        pytest.param("config/*", "/home/dev/app/config/prod/db.yaml", id="star-matches-the-subfolder"),
        pytest.param("config/", "/home/dev/app/config/prod/db.yaml", id="trailing-slash-names-a-folder"),
        pytest.param("config", "/home/dev/app/config/db.yaml", id="bare-folder-name"),
        pytest.param("**/vault", "/home/dev/app/ops/vault/policy.hcl", id="doublestar-folder"),
        pytest.param("/home/dev/app/ops", "/home/dev/app/ops/deploy/run.sh", id="absolute-folder"),
        pytest.param("Config/**", "/home/dev/app/config/db.yaml", id="case-insensitive"),
    ],
)
def test_user_never_send_globs_cover_files_in_subfolders(pattern: str, path: str) -> None:
    settings = CloudSettings(never_send=[pattern])
    decision = decide("review_security", file_path=path, settings=settings, explicit=True)
    assert decision.destination == "local"
    assert decision.reason.startswith(f"never_send matched {pattern};")


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        pytest.param("config/**", "/home/dev/app/configs/db.yaml", id="segment-boundary"),
        pytest.param("config/", "/home/dev/app/config", id="a-folder-glob-is-not-a-file"),
        pytest.param("config", "/home/dev/app/myconfig/db.yaml", id="bare-name-is-a-whole-segment"),
        pytest.param("/home/dev/app/ops", "/srv/home/dev/app/ops/run.sh", id="absolute-is-anchored"),
    ],
)
def test_user_never_send_globs_do_not_overreach(pattern: str, path: str) -> None:
    settings = CloudSettings(never_send=[pattern])
    assert decide("review_security", file_path=path, settings=settings).destination == "cloud"


async def test_ask_refuses_a_file_in_a_secret_folder_too() -> None:
    from lsp_server.cloud.service import CloudService
    from lsp_server.errors import CloudError

    service = CloudService(CloudSettings(api_key="k", base_url="http://127.0.0.1:9"), env={})
    decision = service.route("review_security", file_path="/w/app.py", text="x = 1")
    assert decision.is_cloud
    with pytest.raises(CloudError, match=r"not sent to the cloud: never_send matched \*\*/"):
        await service.ask(
            decision, task="review_security", system="s", prompt="x", file_name="/w/secrets/settings.py"
        )
    assert service.audit.records() == []
