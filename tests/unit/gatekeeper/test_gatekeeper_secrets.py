"""Secret scanner: every kind is found, redaction removes values and keeps names, no false alarms.

Fake secrets are assembled at run time so that this file itself carries none a scanner would flag.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest

from leo_lsp.gatekeeper.secrets import MOSTLY_SECRETS, redact, scan, secret_share

AWS_ID = "AKIA" + "Z3MSJV4WQ7PLX2RT"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG" + "+bPxRfiCYzq4HkQx9Tb"
GH_CLASSIC = "ghp" + "_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
GH_OAUTH = "gho" + "_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"
GH_FINE = "github" + "_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
GITLAB = "glpat" + "-x9K2mQ7vB4nR8tW1zY5c"
SLACK = "xoxb" + "-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
STRIPE_R = "rk_" + "live_" + "9fG2hJ4kL6mN8pQ0rS2tU4vW"
GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
JWT = (
    "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
KEY_BODY = (
    "MIIEowIBAAKCAQEAzX9q3vR7tY2u5w8x1b4n6m0k3j5h7g9f2d4s6a8p0o1i3u5y\n"
    "Q2w4e6r8t0y1u3i5o7p9a2s4d6f8g0h1j3k5l7z9x2c4v6b8n0m1q3w5e7r9t2y4"
)
PEM = "-----BEGIN RSA " + "PRIVATE KEY-----\n" + KEY_BODY + "\n-----END RSA " + "PRIVATE KEY-----"
PASSWORD = "Xk9#mP2$vL8qR4wZ"

CASES = [
    ("aws_access_key_id", f'AWS_ACCESS_KEY_ID = "{AWS_ID}"\n', AWS_ID),
    ("aws_secret_key", f'aws_secret_access_key = "{AWS_SECRET}"\n', AWS_SECRET),
    ("aws_secret_key", f"aws_secret_access_key={AWS_SECRET}\n", AWS_SECRET),
    ("github_token", f"token = '{GH_CLASSIC}'\n", GH_CLASSIC),
    ("github_token", f"GH={GH_OAUTH}\n", GH_OAUTH),
    ("github_token", f'auth: "{GH_FINE}"\n', GH_FINE),
    ("gitlab_token", f'GITLAB = "{GITLAB}"\n', GITLAB),
    ("slack_token", f"slack_client = WebClient('{SLACK}')\n", SLACK),
    ("stripe_key", f'stripe.api_key = "{STRIPE}"\n', STRIPE),
    ("stripe_key", f'key = "{STRIPE_R}"\n', STRIPE_R),
    ("google_api_key", f'const maps = "{GOOGLE}";\n', GOOGLE),
    ("private_key", f'KEY = """{PEM}"""\n', KEY_BODY.splitlines()[1]),
    ("jwt", f'headers = {{"Authorization": "Bearer {JWT}"}}\n', JWT),
    ("password", f'DB_PASSWORD = "{PASSWORD}"\n', PASSWORD),
    ("password", f'  "password": "{PASSWORD}",\n', PASSWORD),
    ("secret", f"client_secret: {PASSWORD}\n", PASSWORD),
    ("api_key", f'OPENWEATHER_API_KEY = "{PASSWORD}"\n', PASSWORD),
    ("token", f'$token = "{PASSWORD}";\n', PASSWORD),
    ("url_password", f'DB = "postgres://admin:{PASSWORD}@db.internal/app"\n', PASSWORD),
]


@pytest.mark.parametrize(("kind", "text", "secret"), CASES)
def test_each_secret_kind_is_found_and_redacted(kind: str, text: str, secret: str) -> None:
    findings = scan(text)
    assert [f.kind for f in findings] == [kind]
    assert findings[0].strength == "strong"
    redacted, n = redact(text)
    assert n == 1
    assert secret not in redacted
    assert f"«redacted:{kind}»" in redacted


def test_redaction_keeps_the_variable_names_and_the_code_around() -> None:
    text = (
        "import os\n"
        f'DB_PASSWORD = "{PASSWORD}"\n'
        f"AWS_ACCESS_KEY_ID = '{AWS_ID}'\n"
        "def connect():\n"
        "    return db.connect(password=DB_PASSWORD)\n"
    )
    redacted, n = redact(text)
    assert n == 2
    assert PASSWORD not in redacted and AWS_ID not in redacted
    assert 'DB_PASSWORD = "«redacted:password»"' in redacted
    assert "AWS_ACCESS_KEY_ID = '«redacted:aws_access_key_id»'" in redacted
    assert redacted.endswith("    return db.connect(password=DB_PASSWORD)\n")
    assert redact(redacted) == (redacted, 0)  # redaction markers are not secrets themselves


def test_finding_positions_and_lines() -> None:
    text = f"a = 1\n\nb = 2  # {GH_CLASSIC}\n"
    (finding,) = scan(text)
    assert text[finding.start : finding.end] == GH_CLASSIC
    assert finding.line == 2


def test_a_private_key_without_end_line_is_still_removed() -> None:
    text = 'k = "-----BEGIN OPENSSH ' + "PRIVATE KEY-----\\n" + KEY_BODY.replace("\n", "\\n") + '"'
    redacted, n = redact(text)
    assert n == 1
    assert "MIIEowIBAAKCAQEA" not in redacted and "Q2w4e6r8" not in redacted


@pytest.mark.parametrize(
    "text",
    [
        'password = "changeme"\n',
        'PASSWORD = "xxxxxxxxxxxx"\n',
        "api_key = ${API_KEY}\n",
        'secret = "{{ vault_secret }}"\n',
        'token = os.environ["GITHUB_TOKEN"]\n',
        "password = os.getenv('DB_PASSWORD')\n",
        "const token = process.env.TOKEN;\n",
        "secret = get_secret(name)\n",
        "password = self.password\n",
        'password: "<your password>"\n',
        "token_type = 'quoted-string'\n",
        "max_tokens = 4096\n",
        'password = ""\n',
        "if token == 'abcdefgh12345678':\n",
        'secret_path = "/etc/app/secret.txt"\n',
        'token_url = "https://oauth2.example.com/token"\n',
        'url = "http://user:pass@localhost/db"\n',
        "password = None\n",
    ],
)
def test_placeholders_and_code_are_not_secrets(text: str) -> None:
    assert scan(text) == []


def test_weak_findings() -> None:
    weak = scan('password = "hunter2abc"\n')  # short, low-entropy password
    assert [(f.kind, f.strength) for f in weak] == [("password", "weak")]
    aws_doc = scan("AKIA" + "IOSFODNN7EXAMPLE\n")  # AWS's documented example id
    assert [f.strength for f in aws_doc] == ["weak"]
    test_key = scan('stripe = "sk_' + 'test_4eC39HqLyjWDarjtT1zdp7dc"\n')
    assert [(f.kind, f.strength) for f in test_key] == [("stripe_key", "weak")]


def test_secret_share() -> None:
    env_like = f"DB_PASSWORD={PASSWORD}\nAWS_ACCESS_KEY_ID={AWS_ID}\n\nDEBUG=1\n"
    assert secret_share(env_like) == pytest.approx(2 / 3)
    assert secret_share(env_like) >= MOSTLY_SECRETS
    module = "import os\n\n" + "".join(f"x{i} = {i}\n" for i in range(20)) + f"K = '{AWS_ID}'\n"
    assert 0 < secret_share(module) < MOSTLY_SECRETS
    assert secret_share("print('hello')\n") == 0.0
    assert secret_share(f'KEY = """{PEM}"""\nprint(1)\n') == pytest.approx(4 / 5)


def _stdlib_sample(n: int) -> list[Path]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "site-packages", "idlelib", "__pycache__"}
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(lib):
        dirnames[:] = [d for d in dirnames if d not in skip]
        files += [Path(dirpath, f) for f in filenames if f.endswith(".py")]
    files.sort()
    step = max(1, len(files) // n)
    return files[::step][:n]


def test_no_strong_false_positives_on_200_stdlib_files() -> None:
    files = _stdlib_sample(200)
    assert len(files) == 200
    strong = [
        (p.name, f.kind)
        for p in files
        for f in scan(p.read_text(encoding="utf-8", errors="replace"))
        if f.strength == "strong"
    ]
    assert strong == []
