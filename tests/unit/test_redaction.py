"""Secrets are replaced by ``[REDACTED:<kind>]``; code that merely mentions secrets is left alone.

Fake secrets are assembled at run time so secret scanners do not flag this file.
"""

from __future__ import annotations

import pytest

from lsp_server.cloud.redaction import Redaction, redact

AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a1B2c3D4" * 4 + "e5F6"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" * 3 + "_" + "xyz" * 8
ANTHROPIC = "sk-ant-" + "api03-" + "Zx9" * 12
OPENAI = "sk-" + "proj-" + "Q7w" * 10
SLACK = "xoxb-" + "1234567890-" + "abcdefghij"
STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
JWT = (
    "eyJ"
    + "hbGciOiJIUzI1NiJ9"
    + ".eyJ"
    + "zdWIiOiIxMjM0NTY3ODkwIn0"
    + "."
    + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7bq98Vz7VhyQhmHMTMaFYmWbQhkGyuPK3CE+dA0lp6pIuPnm\n"
    "Q0RpJJaNBDVnzrMoV4S2pHuE84ALq3e8c2i1FqLYbdA5==\n"
    "-----END RSA " + "PRIVATE KEY-----"
)

PEM_LINES = [  # a PEM body as it is wrapped: 64 characters a line, the last one shorter
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu",
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ",
    "Q0RpJJaNBDVnzrMoV4S2pHuE84ALq3e8c2i1FqLYbdA5==",
]


def R(kind: str) -> str:  # noqa: N802 - reads like the placeholder it builds
    return f"[REDACTED:{kind}]"


REDACTED = [
    # token shapes, wherever they appear
    pytest.param(f'key = "{AWS}"', f'key = "{R("aws_access_key")}"', id="aws-access-key"),
    pytest.param(f"aws_access_key_id={AWS}", f"aws_access_key_id={R('aws_access_key')}", id="aws-in-ini"),
    pytest.param(
        f"gh auth login --with-token {GITHUB}",
        f"gh auth login --with-token {R('github_token')}",
        id="github-ghp",
    ),
    pytest.param(f"x = '{GITHUB_PAT}'", f"x = '{R('github_token')}'", id="github-pat"),
    pytest.param(
        f'client = Anthropic(api_key="{ANTHROPIC}")',
        f'client = Anthropic(api_key="{R("anthropic_key")}")',
        id="anthropic-key-kwarg",
    ),
    pytest.param(f"OPENAI = '{OPENAI}'", f"OPENAI = '{R('openai_key')}'", id="openai-key"),
    pytest.param(f"# slack: {SLACK}", f"# slack: {R('slack_token')}", id="slack-token-in-comment"),
    pytest.param(f"stripe.api = '{STRIPE}'", f"stripe.api = '{R('stripe_key')}'", id="stripe-key"),
    pytest.param(f"maps({GOOGLE})", f"maps({R('google_api_key')})", id="google-api-key"),
    pytest.param(f"cookie = {JWT};", f"cookie = {R('jwt')};", id="jwt"),
    pytest.param(f"key = '''\n{PEM}\n'''", f"key = '''\n{R('private_key')}\n'''", id="pem-block"),
    pytest.param(
        "-----BEGIN OPENSSH "
        + "PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n",
        R("private_key") + "\n",
        id="pem-block-cut-short",
    ),
    pytest.param(
        'headers = {"Authorization": "Bearer abcDEF123456ghiJKL789"}',
        'headers = {"Authorization": "Bearer ' + R("bearer_token") + '"}',
        id="bearer-header-in-dict",
    ),
    pytest.param(
        "curl -H 'Authorization: Bearer 9f8e7d6c5b4a39281706' https://x",
        "curl -H 'Authorization: Bearer " + R("bearer_token") + "' https://x",
        id="bearer-header-curl",
    ),
    pytest.param(
        "Authorization: Basic dXNlcjpodW50ZXIy", "Authorization: Basic " + R("basic_auth"), id="basic-auth"
    ),
    pytest.param(
        'DB = "postgres://admin:s3cr3t-pw@db.internal:5432/app"',
        f'DB = "postgres://admin:{R("url_password")}@db.internal:5432/app"',
        id="postgres-url",
    ),
    pytest.param(
        "redis://:hunter2hunter2@cache:6379/0",
        f"redis://:{R('url_password')}@cache:6379/0",
        id="redis-url-no-user",
    ),
    # assignments of literals to secret-sounding names, in many languages
    pytest.param('PASSWORD = "hunter2!"', f'PASSWORD = "{R("password")}"', id="python-constant"),
    pytest.param(
        "db_password: str = 'correct horse'", f"db_password: str = '{R('password')}'", id="python-annotated"
    ),
    pytest.param(
        'connect(user="bob", password="pa55word")',
        f'connect(user="bob", password="{R("password")}")',
        id="python-kwarg",
    ),
    pytest.param(
        'self.api_key = b"0123456789abcdef"', f'self.api_key = b"{R("api_key")}"', id="python-bytes-attr"
    ),
    pytest.param(
        'if password == "letmein":', f'if password == "{R("password")}":', id="hardcoded-comparison"
    ),
    pytest.param('const apiKey = "abcd-1234-efgh";', f'const apiKey = "{R("api_key")}";', id="js-const"),
    pytest.param("let secret = `s3cr3t-value`;", f"let secret = `{R('secret')}`;", id="js-template-literal"),
    pytest.param('{ "apiKey": "0f1e2d3c4b5a" }', f'{{ "apiKey": "{R("api_key")}" }}', id="json"),
    pytest.param(
        "opts = { accessKey: 'xyz-987-abc' }", f"opts = {{ accessKey: '{R('api_key')}' }}", id="js-object"
    ),
    pytest.param('apiToken := "tok_live_12345"', f'apiToken := "{R("token")}"', id="go-short-assign"),
    pytest.param(
        'var clientSecret string = "abcdef123"', f'var clientSecret string = "{R("secret")}"', id="go-var"
    ),
    pytest.param(
        "os.environ['GITHUB_TOKEN'] = 'plain-text-token'",
        f"os.environ['GITHUB_TOKEN'] = '{R('token')}'",
        id="environ-item",
    ),
    pytest.param("export TOKEN=abc123def456", f"export TOKEN={R('token')}", id="shell-export"),
    pytest.param("DB_PASSWORD=hunter2 # prod", f"DB_PASSWORD={R('password')} # prod", id="dotenv"),
    pytest.param(
        "spring.datasource.password=Pr0d!pw", f"spring.datasource.password={R('password')}", id="properties"
    ),
    pytest.param("db:\n  password: hunter2\n", f"db:\n  password: {R('password')}\n", id="yaml-bare"),
    pytest.param("  private_key: 'abc/def+ghi='", f"  private_key: '{R('private_key')}'", id="yaml-quoted"),
    pytest.param("X-Api-Key: 7c9e6679f4", f"X-Api-Key: {R('api_key')}", id="http-header"),
    pytest.param(
        'SECRET_KEY = "django-insecure-(x)$%"', f'SECRET_KEY = "{R("secret")}"', id="django-secret-key"
    ),
    pytest.param("DB_PASS=hunter22", f"DB_PASS={R('password')}", id="dotenv-pass-suffix"),
    pytest.param('SMTP_PWD: "abc123"', f'SMTP_PWD: "{R("password")}"', id="upper-pwd"),
    pytest.param(
        'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY"',
        f'aws_secret_access_key = "{R("api_key")}"',
        id="aws-secret-access-key",
    ),
    pytest.param(
        "secret_key_base: 'a1b2c3d4e5f6'", f"secret_key_base: '{R('secret')}'", id="rails-secret-key-base"
    ),
    pytest.param("'access_token': 'sdlfkj452',", f"'access_token': '{R('token')}',", id="qualified-token"),
    pytest.param(
        'token = "a1B2c3D4e5F6g7H8i9"', f'token = "{R("token")}"', id="plain-token-with-credential-value"
    ),
    pytest.param(
        "export HF_TOKEN=hf_" + "AbCdEf1234" * 3 + "xyz",
        f"export HF_TOKEN={R('huggingface_token')}",
        id="huggingface-token",
    ),
    pytest.param('API_KEY_2 = "0123abcd"', f'API_KEY_2 = "{R("api_key")}"', id="numbered-suffix"),
    # found by the privacy audit (tests/unit/test_privacy_audit.py)
    pytest.param('password = f"hunter2-pw"', f'password = f"{R("password")}"', id="python-f-string"),
    pytest.param(
        'cs = "Server=db;User Id=sa;Password=Hunter2pw;"',
        f'cs = "Server=db;User Id=sa;Password={R("password")};"',
        id="dotnet-connection-string",
    ),
    pytest.param(
        'url = "jdbc:mysql://db/app?user=sa&password=hunter2pw"',
        f'url = "jdbc:mysql://db/app?user=sa&password={R("password")}"',
        id="jdbc-query-parameter",
    ),
    pytest.param(
        "curl 'https://api.example.com/v1?access_token=a1b2c3d4e5'",
        f"curl 'https://api.example.com/v1?access_token={R('token')}'",
        id="query-string-token",
    ),
    pytest.param(
        'run("mysql -u root --password=hunter2pw app")',
        f'run("mysql -u root --password={R("password")} app")',
        id="command-line-flag",
    ),
    pytest.param(
        "<password>hunter2pw</password>", f"<password>{R('password')}</password>", id="xml-element"
    ),
    pytest.param(
        'pw = os.getenv("DB_PASSWORD", "hunter2pw")',
        f'pw = os.getenv("DB_PASSWORD", "{R("password")}")',
        id="getenv-default",
    ),
    pytest.param(
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        f"aws_secret_access_key = {R('api_key')}",
        id="ini-unquoted-credential",
    ),
    pytest.param(
        "aws_secret_access_key = Y97XEuw8cpVvcsHuYrXqcHjmGL7i0azEN3QRiqRx",
        f"aws_secret_access_key = {R('api_key')}",
        id="ini-unquoted-credential-without-symbols",
    ),
    pytest.param(
        'SLACK_WEBHOOK = "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefghijklmnopqrstuvwx"',
        f'SLACK_WEBHOOK = "https://hooks.slack.com/services/{R("slack_webhook")}"',
        id="slack-webhook-url",
    ),
    pytest.param(
        PEM.split("\n", 1)[1] + "\n\ndef load():\n    return KEY\n",
        R("private_key") + "\n\ndef load():\n    return KEY\n",
        id="pem-selection-starting-inside-the-block",
    ),
    pytest.param(
        '"' + PEM.split("\n", 1)[1].replace("\n", "\\n") + '\\n",\n  "client_email": "x@y.iam"',
        '"' + R("private_key") + '\\n",\n  "client_email": "x@y.iam"',
        id="pem-escaped-selection-starting-inside-the-block",
    ),
    pytest.param(
        "".join(line + "\n" for line in PEM_LINES) + "x = 1\n",
        R("private_key") + "\nx = 1\n",
        id="pem-lines-without-begin-or-end",
    ),
    pytest.param(
        "KEY_TAIL = (\n    'cGxhbnRlZC1rZXktdGFpbA4+Zx9Q=='\n)\n",
        f"KEY_TAIL = (\n    '{R('private_key')}'\n)\n",
        id="lone-line-of-random-base64",
    ),
]

NOT_REDACTED = [
    pytest.param("token_count = len(tokens)", id="token-count-expression"),
    pytest.param("password_field = form.password", id="password-field-attribute"),
    pytest.param("password = form.password", id="password-from-attribute"),
    pytest.param("password = get_password()", id="password-from-call"),
    pytest.param("token = next(tokens)", id="token-from-call"),
    pytest.param("api_key = os.environ['ANTHROPIC_API_KEY']", id="key-from-environ"),
    pytest.param('api_key = os.environ.get("ANTHROPIC_API_KEY")', id="key-from-environ-get"),
    pytest.param("api_key: SecretStr | None = None", id="pydantic-field"),
    pytest.param("password: str", id="dataclass-field"),
    pytest.param("  token: Token", id="annotation-with-class"),
    pytest.param("interface Login { password: string; }", id="ts-interface"),
    pytest.param('max_tokens = "1024"', id="max-tokens"),
    pytest.param('tokenizer = "qwen2"', id="tokenizer-name"),
    pytest.param('eos_token = "<|endoftext|>"', id="special-token"),
    pytest.param('TOKEN_TYPE = "bearer"', id="token-type"),
    pytest.param('password_prompt = "Enter password: "', id="password-prompt"),
    pytest.param('password = ""', id="empty-string"),
    pytest.param('token = "ab"', id="too-short"),
    pytest.param('password = "${DB_PASSWORD}"', id="template-placeholder"),
    pytest.param("export TOKEN=$GITHUB_TOKEN", id="shell-variable-reference"),
    pytest.param('log("password=" + pw + "!")', id="string-concatenation"),
    pytest.param("Authorization uses a bearer token, see the docs.", id="prose-bearer"),
    pytest.param("Bearer authentication is required", id="prose-bearer-word"),
    pytest.param("https://example.com:8080/path@v2", id="url-without-credentials"),
    pytest.param("git@github.com:org/repo.git", id="git-ssh-url"),
    pytest.param("skip-navigation-link-class", id="sk-prefixed-word"),
    pytest.param("def check(password: str) -> bool:", id="signature"),
    pytest.param(f"password = '{R('password')}'", id="already-redacted"),
    # seen in real code bases
    pytest.param('"@secretlint/secretlint-rule-no-dotenv": "^10.1.2",', id="package-name-containing-secret"),
    pytest.param('"secretlint": "^10.1.2",', id="word-containing-secret"),
    pytest.param('TOKEN_COMMENT: "begin of comment",', id="token-constant-describing-a-token"),
    pytest.param('apiKeyLocation: "query" | "header"', id="secret-word-not-last"),
    pytest.param('readonly password: "password";', id="enum-value-equal-to-name"),
    pytest.param('private_key: "_RSAPrivateKey",', id="forward-reference-annotation"),
    pytest.param('GRANT_TYPE_REFRESH_TOKEN = "refresh_token"', id="constant-holding-a-key-name"),
    pytest.param('ENV_API_KEY = "ANTHROPIC_API_KEY"', id="constant-holding-an-env-var-name"),
    pytest.param("  refresh_token: refreshToken", id="js-shorthand-identifier"),
    pytest.param('Token: "#cccccc",', id="pygments-style"),
    pytest.param('Token.Keyword: "bold",', id="attribute-path"),
    pytest.param('elif token == "with":', id="token-comparison"),
    pytest.param('_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"', id="pem-header-constant"),
    pytest.param('"browser.proxy.password": "string",', id="schema-type"),
    pytest.param('token = r"[-!#$%&\'*+.^_`|~0-9a-zA-Z]+"', id="regex-for-tokens"),
    pytest.param('IDTOKEN_TOKEN: "id_token token",', id="token-with-spaces"),
    pytest.param('CacheManagerGetRefreshToken = "cacheManagerGetRefreshToken";', id="event-name"),
    pytest.param('first_pass = "parse"', id="lowercase-pass"),
    pytest.param('SIGNIN_TOKEN = "/oauth2/v2.0/token";', id="url-path-value"),
    pytest.param(
        "contain -----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY----- )", id="pem-markers-in-prose"
    ),
    pytest.param('password = f"{password}"', id="f-string-of-the-variable"),
    pytest.param("connect(host=host, password=password)", id="keyword-argument"),
    pytest.param('url = base + "?access_token=" + token', id="query-string-concatenation"),
    pytest.param('url = f"{base}?access_token={token}"', id="query-string-interpolation"),
    pytest.param('cmd = "mysql --password=%s" % pw', id="command-line-format"),
    pytest.param('cmd = "mysql --password=$DB_PASSWORD"', id="command-line-variable"),
    pytest.param('cmd = "login --token=#{token}"', id="ruby-interpolation"),
    pytest.param("<password>${db.password}</password>", id="xml-placeholder"),
    pytest.param('os.getenv("DB_PASSWORD", "")', id="getenv-empty-default"),
    pytest.param("api_key = settings.cloud.api_key_value", id="ini-shaped-attribute-path"),
    pytest.param("token = tokens.next_token", id="ini-shaped-code"),
    pytest.param("EST_CHARS_PER_TOKEN = 3.5", id="ini-shaped-number"),
    pytest.param("api_key = DefaultApiKeyProvider2", id="ini-shaped-class-name"),
    pytest.param("MAX_TOKEN = 0x7fff", id="ini-shaped-hex-number"),
    pytest.param("  SomeEnumMember\n  OtherEnumMember\n", id="identifier-lines-are-not-key-lines"),
    pytest.param("    PydanticDeprecatedSince20,\n    PydanticDeprecatedSince211,\n", id="identifiers-with-digits"),
    pytest.param("    'AnalyzeSheafOnP1',\n    'SetVariantPosVector3D',\n", id="short-camel-case-names"),
    pytest.param("".join(f"{n:064x}\n" for n in range(3)), id="hex-digest-lines"),
    pytest.param("x = 1\n-----END PRIVATE KEY-----\n", id="end-marker-after-code"),
]


@pytest.mark.parametrize(("source", "expected"), REDACTED)
def test_redacts_secret_values(source: str, expected: str) -> None:
    result = redact(source)
    assert result.text == expected
    assert result.count == 1


@pytest.mark.parametrize("source", NOT_REDACTED)
def test_leaves_code_without_literal_secrets_alone(source: str) -> None:
    result = redact(source)
    assert result.text == source
    assert result.redactions == []


def test_reports_kind_line_and_length_but_not_the_secret() -> None:
    source = f'import os\n\nKEY = "{AWS}"\npassword = "hunter22"\n'
    result = redact(source)
    assert result.redactions == [Redaction("aws_access_key", 3, len(AWS)), Redaction("password", 4, 8)]
    assert result.counts() == {"aws_access_key": 1, "password": 1}
    assert AWS not in repr(result.redactions) and "hunter22" not in repr(result.redactions)


def test_several_secrets_keep_everything_else_intact() -> None:
    source = (
        "def connect():\n"
        f"    # token {GITHUB}\n"
        f"    url = 'mysql://root:toor-pw@localhost/db'\n"
        f"    return Client(key='{ANTHROPIC}', retries=3)\n"
    )
    result = redact(source)
    assert result.text == (
        "def connect():\n"
        f"    # token {R('github_token')}\n"
        f"    url = 'mysql://root:{R('url_password')}@localhost/db'\n"
        f"    return Client(key='{R('anthropic_key')}', retries=3)\n"
    )
    assert [r.line for r in result.redactions] == [2, 3, 4]


def test_specific_kind_wins_over_generic_assignment() -> None:
    result = redact(f'ANTHROPIC_API_KEY = "{ANTHROPIC}"')
    assert result.text == f'ANTHROPIC_API_KEY = "{R("anthropic_key")}"'


def test_pem_block_with_escaped_newlines_in_a_string() -> None:
    escaped = PEM.replace("\n", "\\n")
    result = redact(f'KEY = "{escaped}"\nnext_line = 1\n')
    assert result.text == f'KEY = "{R("private_key")}"\nnext_line = 1\n'


def test_redaction_is_idempotent() -> None:
    source = f'PASSWORD = "hunter2!"\nexport TOKEN={GITHUB}\nurl = "postgres://u:pw1234@h/db"\n'
    once = redact(source).text
    assert redact(once).text == once
    assert redact(once).redactions == []


def test_redaction_of_pairs_elements_and_key_lines_is_idempotent() -> None:
    source = (
        'cs = "Server=db;Password=Hunter2pw;"\n<password>hunter2pw</password>\n'
        'os.getenv("API_TOKEN", "a1b2c3d4e5f6")\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n'
        "hook = 'https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefghijklmnopqrstuvwx'\n"
        + "".join(line + "\n" for line in PEM_LINES)
        + "-----END PRIVATE KEY-----\n"
    )
    once = redact(source)
    assert once.count == 6 and "Hunter2pw" not in once.text and PEM_LINES[1] not in once.text
    assert redact(once.text).text == once.text
    assert redact(once.text).redactions == []


def test_empty_text() -> None:
    assert redact("").text == ""
