"""Secret scanner and redaction.

Two kinds of rules:

* **token rules**, case-sensitive regexes for credentials with a recognisable shape: AWS access key
  ids, GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), GitLab (`glpat-`), Slack
  (`xox[abposr]-`, incoming webhooks), Stripe (`sk_live_`, `rk_live_`; `*_test_` is weak), Google
  API keys (`AIza…`), npm and PyPI tokens, OpenAI/Anthropic project keys, PEM private-key blocks
  and JWTs. Each regex starts with its literal prefix, so the engine's fast prefix search skips
  ordinary text at ~2 GB/s and ordinary source files stay cheap.
* **assignment rules**: a name containing password / passwd / passphrase / pwd / secret / token /
  api key / access key / auth key / private key / client secret / credential, then `=`, `:`, `:=` or
  `=>`, then a value. The value counts when it is not a placeholder (`changeme`, `xxx`, `${VAR}`,
  `{{ var }}`, `<token>`, `os.environ[...]`, `process.env.X`, an identifier or call, a URL, a
  path...) and its Shannon entropy is high: strong at ≥ 3.5 bits/char over ≥ 12 chars with mixed
  character classes, weak at ≥ 3.0 bits/char over ≥ 8 chars. `aws…secret…key` assignments with a
  40-character value are reported as `aws_secret_key`. Credentials inside URLs
  (`scheme://user:pass@host`) are assignment-like: weak unless the password has high entropy.

`Finding.start`/`end` cover only the secret value (never the variable name), so `redact` keeps the
code readable: `password = "«redacted:password»"`. `line` is 0-indexed like every leo record.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

Strength = Literal["strong", "weak"]

STRONG_ENTROPY = 3.5
WEAK_ENTROPY = 3.0
STRONG_MIN_LEN = 12
WEAK_MIN_LEN = 8
# A file with at least this share of its non-blank lines carrying a secret is denied outright.
MOSTLY_SECRETS = 0.5

REDACTED_PREFIX = "«redacted:"


@dataclass(frozen=True, slots=True)
class Finding:
    """One secret value found in a text: `text[start:end]` is the value to redact."""

    kind: str
    start: int
    end: int
    line: int  # 0-indexed line of `start`
    strength: Strength


@dataclass(frozen=True, slots=True)
class _TokenRule:
    kind: str
    pattern: re.Pattern[str]
    strength: Strength


# Every pattern starts with a literal (or a plain alternation of literals) so that the regex
# engine's fast prefix search skips the text between candidates (~2 GB/s per rule); a leading
# `\b` or capture group disables that and crawls at ~60 MB/s. Word boundaries before the match
# are checked in Python.
def _rule(kind: str, pattern: str, strength: Strength = "strong") -> _TokenRule:
    return _TokenRule(kind, re.compile(pattern), strength)


_PRIVATE_KEY = (
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    # the body up to the matching END line, or (a truncated key / a key inside a string literal
    # with \n escapes) the run of base64 that follows
    r"(?:[\s\S]{0,20000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:[A-Za-z0-9+/=\s:-]|\\n|\\r)*)"
)

TOKEN_RULES: tuple[_TokenRule, ...] = (
    _rule("private_key", _PRIVATE_KEY),
    _rule("aws_access_key_id", r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    _rule("github_token", r"gh[pousr]_[A-Za-z0-9]{36,255}\b"),
    _rule("github_token", r"github_pat_[A-Za-z0-9_]{22,255}\b"),
    _rule("gitlab_token", r"glpat-[A-Za-z0-9_-]{20,255}"),
    _rule("slack_token", r"xox[abposr]-[A-Za-z0-9-]{10,255}"),
    _rule(
        "slack_webhook",
        r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+",
    ),
    _rule("stripe_key", r"k_live_[A-Za-z0-9]{16,255}"),  # sk_live_ / rk_live_, prefix checked
    _rule("stripe_key", r"k_test_[A-Za-z0-9]{16,255}", "weak"),
    _rule("google_api_key", r"AIza[0-9A-Za-z_-]{35}"),
    _rule("npm_token", r"npm_[A-Za-z0-9]{36}\b"),
    _rule("pypi_token", r"pypi-AgE[A-Za-z0-9_-]{50,}"),
    _rule("openai_key", r"sk-(?:proj|ant-api\d\d|svcacct)-[A-Za-z0-9_-]{20,}"),
    _rule("jwt", r"eyJ[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
)

_ASSIGNMENT_TAIL = (
    r"[a-z0-9_-]{0,40}[\"']?\s*(?::=|=>|=(?!=)|:(?![:=]))[ \t]*"
    r"(?:\"(?P<v1>[^\"\n]{4,400})\"|'(?P<v2>[^'\n]{4,400})'|`(?P<v3>[^`\n]{4,400})`"
    r"|(?P<v4>[^\s\"'`,;(){}\[\]<>]{4,400}))"
)
# (keyword, kind); matched against the lower-cased text, one literal-first regex per keyword.
_ASSIGNMENT_KEYWORDS = (
    ("pass(?:word|wd|phrase)", "password"),
    ("pwd", "password"),
    ("secret", "secret"),
    ("token", "token"),
    ("credential", "credential"),
    ("key", "api_key"),  # only when the name says which key: see _KEY_NAMES
)
_ASSIGNMENTS = tuple(
    (kw[:4], kind, re.compile(kw + _ASSIGNMENT_TAIL)) for kw, kind in _ASSIGNMENT_KEYWORDS
)
# `key` alone is every dict key in every program; these name parts make it a credential.
_KEY_NAMES = (
    "api",
    "access",
    "auth",
    "private",
    "secret",
    "signing",
    "client",
    "master",
    "encryption",
    "license",
)
_URL_CREDENTIALS = re.compile(r"://[^\s:/@\"'<>]{1,100}:(?P<v>[^\s:/@\"'<>]{1,200})@")

_PLACEHOLDER_WORDS = (
    "changeme",
    "change_me",
    "change-me",
    "example",
    "placeholder",
    "dummy",
    "your_",
    "your-",
    "yourpassword",
    "redacted",
    "secret",
    "password",
    "token",
    "sample",
    "xxxx",
    "****",
    "...",
    "todo",
    "fixme",
    "insert",
    "replace",
    "fake",
    "mock",
    "notreal",
    "not-a-real",
    "none",
    "null",
    "undefined",
)
_INDIRECT = re.compile(
    r"\$\{|\$\(|\{\{|\}\}|%\(|%s|\{\}|^\$[A-Za-z_]|^<.*>$|^\[.*\]$|environ|getenv|process\.env"
    r"|env\(|env\[|secretkeyref|vault:|^[a-z]+://|^[./~]|/$|\\\\|^@"
)
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:(?:\.|::|->)[A-Za-z_$][A-Za-z0-9_$]*)*")
_NUMBER = re.compile(r"[-+]?[0-9][0-9_.,:eE+-]*")
# words of one case joined by separators: `quoted-string`, `MAX_RETRIES`, `some.module`
_WORDS = re.compile(r"[a-z]+(?:[-_.:/][a-z]+)*|[A-Z]+(?:[-_.:/][A-Z]+)*")
_HEX_OR_B64 = re.compile(r"[A-Za-z0-9/+=_-]+")


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _char_classes(value: str) -> int:
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def _is_placeholder(value: str) -> bool:
    low = value.lower()
    if REDACTED_PREFIX in value or len(set(value)) <= 2:
        return True
    if any(w in low for w in _PLACEHOLDER_WORDS):
        return True
    return _INDIRECT.search(value) is not None


def _value_strength(value: str, quoted: bool, next_char: str) -> Strength | None:
    """How secret-like an assigned value is, or None when it is not a secret."""
    if any(c.isspace() for c in value) or _is_placeholder(value):
        return None
    if not quoted:
        # an unquoted identifier, attribute chain or call is code, not a value
        if (
            (next_char and next_char in "(.[")
            or _IDENTIFIER.fullmatch(value)
            and not any(c.isdigit() for c in value)
        ):
            return None
    if _NUMBER.fullmatch(value) or _WORDS.fullmatch(value):
        return None
    entropy = shannon_entropy(value)
    classes = _char_classes(value)
    if len(value) >= STRONG_MIN_LEN and entropy >= STRONG_ENTROPY and classes >= 2:
        # prose-like words joined by punctuation are not secrets; mixed classes with digits are
        if any(c.isdigit() for c in value) or classes >= 3:
            return "strong"
    if len(value) >= WEAK_MIN_LEN and entropy >= WEAK_ENTROPY and classes >= 2:
        return "weak"
    return None


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos)


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def _name_start(text: str, pos: int) -> int:
    while pos > 0 and (text[pos - 1].isalnum() or text[pos - 1] in "_-"):
        pos -= 1
    return pos


def _name_end(text: str, pos: int) -> int:
    while pos < len(text) and (text[pos].isalnum() or text[pos] in "_-"):
        pos += 1
    return pos


def scan(text: str) -> list[Finding]:
    """Every secret value in `text`, sorted by position (values only, never the names)."""
    found: list[tuple[str, int, int, Strength]] = []
    spans: list[tuple[int, int]] = []
    for rule in TOKEN_RULES:
        for m in rule.pattern.finditer(text):
            start, end = m.start(), m.end()
            if rule.kind == "stripe_key":
                start -= 1
                if start < 0 or text[start] not in "sr":
                    continue
            if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
                continue  # not at a word boundary: part of a longer identifier
            if _overlaps(spans, start, end):
                continue
            strength = rule.strength
            if "EXAMPLE" in m.group(0) or "example" in m.group(0):
                strength = "weak"  # AWS's documented AKIAIOSFODNN7EXAMPLE and friends
            found.append((rule.kind, start, end, strength))
            spans.append((start, end))

    lower = text.lower()
    # str.lower keeps offsets except for a few exotic characters; then match case-insensitively
    same = len(lower) == len(text)
    haystack = lower if same else text
    for keyword, kind, pattern in _ASSIGNMENTS:
        if not same:
            pattern = re.compile(pattern.pattern, re.IGNORECASE)
        for m in pattern.finditer(haystack):
            group = next(g for g in ("v1", "v2", "v3", "v4") if m.group(g) is not None)
            start, end = m.span(group)
            if _overlaps(spans, start, end):
                continue
            name = lower[_name_start(text, m.start()) : _name_end(text, m.start())]
            if keyword == "key" and not any(part in name for part in _KEY_NAMES):
                continue
            value = text[start:end]
            graded = _value_strength(value, group != "v4", text[end : end + 1])
            if graded is None:
                continue
            this_kind = kind
            if "aws" in name and len(value) == 40 and _HEX_OR_B64.fullmatch(value):
                this_kind, graded = "aws_secret_key", "strong"
            found.append((this_kind, start, end, graded))
            spans.append((start, end))

    for m in _URL_CREDENTIALS.finditer(text):
        start, end = m.span("v")
        value = m.group("v")
        if len(value) < 6 or _overlaps(spans, start, end) or _is_placeholder(value):
            continue  # `user:pass@` in docs and tests
        strong = len(value) >= STRONG_MIN_LEN and shannon_entropy(value) >= STRONG_ENTROPY
        found.append(("url_password", start, end, "strong" if strong else "weak"))
        spans.append((start, end))

    found.sort(key=lambda f: f[1])
    return [Finding(kind, s, e, _line_of(text, s), st) for kind, s, e, st in found]


def redact_findings(text: str, findings: list[Finding]) -> str:
    """`text` with each finding's value replaced by `«redacted:<kind>»`."""
    out: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < pos:
            continue
        out.append(text[pos : f.start])
        out.append(f"{REDACTED_PREFIX}{f.kind}»")
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def redact(text: str) -> tuple[str, int]:
    """Redact every secret value in `text`; return the new text and how many were redacted."""
    findings = scan(text)
    if not findings:
        return text, 0
    return redact_findings(text, findings), len(findings)


def secret_share(text: str, findings: list[Finding] | None = None) -> float:
    """Share of the non-blank lines of `text` that carry (part of) a secret."""
    if findings is None:
        findings = scan(text)
    if not findings:
        return 0.0
    lines = text.splitlines()
    non_blank = sum(1 for ln in lines if ln.strip())
    if non_blank == 0:
        return 0.0
    carrying: set[int] = set()
    for f in findings:
        last = f.line + text.count("\n", f.start, max(f.start, f.end - 1))
        carrying.update(range(f.line, last + 1))
    covered = sum(1 for i in carrying if i < len(lines) and lines[i].strip())
    return covered / non_blank


__all__ = [
    "Finding",
    "MOSTLY_SECRETS",
    "Strength",
    "redact",
    "redact_findings",
    "scan",
    "secret_share",
    "shannon_entropy",
]
