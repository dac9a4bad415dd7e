"""Identity: a real RS256 chain (local certs, OAuth, identitytoolkit) and the Auth emulator."""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import firebase_admin._token_gen
import firebase_admin._user_mgt
import jwt
import pytest
from cloud_fakes import PROJECT, AuthEmulator, FakeGoogle, SigningKey, unsigned_token
from firebase_admin import auth

from leo_lsp.cloud.firebase import EMULATOR_ENV, Identity, scrub
from leo_lsp.errors import AuthError
from leo_lsp.settings import build_settings


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    fake = FakeGoogle(SigningKey())
    # Read when a fresh app's auth client is built, so every Identity below uses the local server.
    monkeypatch.setattr(firebase_admin._token_gen, "ID_TOKEN_CERT_URI", f"{fake.base}/certs")
    monkeypatch.setattr(firebase_admin._user_mgt.UserManager, "ID_TOOLKIT_URL", f"{fake.base}/v1")
    yield fake
    fake.close()


@pytest.fixture
def identity(google: FakeGoogle, tmp_path: Path) -> Iterator[Identity]:
    ident = Identity(PROJECT, str(google.service_account(tmp_path)))
    yield ident
    ident.close()


def reason_of(ident: Identity, token: str) -> tuple[str, str]:
    with pytest.raises(AuthError) as info:
        ident.verify(token)
    return info.value.data["reason"], info.value.message


def test_valid_rs256_token_verifies_with_revocation_check(
    identity: Identity, google: FakeGoogle
) -> None:
    google.add_user("alice")
    user = identity.verify(google.key.mint("alice", email="alice@example.com"))
    assert (user.uid, user.email, user.email_verified) == ("alice", "alice@example.com", True)
    lookups = [r for r in google.requests if r[1].endswith("accounts:lookup")]
    assert lookups, "check_revoked=True must ask the Auth backend"
    # The service account's OAuth token (from our token_uri) authorised the lookup.
    assert lookups[-1][2]["authorization"] == "Bearer local-access-token"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("expired", "expired"),
        ("wrong_audience", "wrong_project"),
        ("wrong_key", "bad_signature"),
        ("unknown_kid", "bad_signature"),
        ("alg_none", "bad_signature"),
        ("garbage", "malformed"),
    ],
)
def test_bad_tokens_are_rejected_with_a_reason(
    identity: Identity, google: FakeGoogle, case: str, expected: str
) -> None:
    google.add_user("alice")
    makers: dict[str, Callable[[], str]] = {
        "expired": lambda: google.key.mint("alice", issued=time.time() - 7200, lifetime=3600),
        "wrong_audience": lambda: google.key.mint("alice", project="other-project"),
        "wrong_key": lambda: SigningKey(kid=google.key.kid).mint("alice"),
        "unknown_kid": lambda: google.key.mint("alice", kid="not-a-published-kid"),
        "alg_none": lambda: unsigned_token(
            jwt.decode(google.key.mint("alice"), options={"verify_signature": False}),
            google.key.kid,
        ),
        "garbage": lambda: "eyJhbGciOiJSUzI1NiJ9.not-json.sig",
    }
    token = makers[case]()
    reason, message = reason_of(identity, token)
    assert reason == expected, message
    assert token not in message


def test_revoked_and_disabled_users_are_rejected(identity: Identity, google: FakeGoogle) -> None:
    issued = int(time.time()) - 60
    google.add_user("revoked", valid_since=issued + 1)
    google.add_user("disabled", disabled=True)
    assert reason_of(identity, google.key.mint("revoked", issued=issued))[0] == "revoked"
    assert reason_of(identity, google.key.mint("disabled"))[0] == "disabled"
    assert reason_of(identity, google.key.mint("ghost"))[0] == "user_not_found"


def test_sign_in_failure_clears_the_user_and_says_why(
    identity: Identity, google: FakeGoogle, caplog: pytest.LogCaptureFixture
) -> None:
    google.add_user("alice")
    good = google.key.mint("alice")
    caplog.set_level(logging.DEBUG)
    assert identity.sign_in(good).uid == "alice"
    bad = google.key.mint("alice", project="other-project")
    with pytest.raises(AuthError):
        identity.sign_in(bad)
    assert identity.user is None
    assert identity.error is not None and identity.error.data["reason"] == "wrong_project"
    with pytest.raises(AuthError, match="another Firebase project"):
        identity.require_user()
    for record in caplog.records:
        text = record.getMessage()
        assert good not in text and bad not in text and "eyJ" not in text


def test_unreachable_certificates_are_reported_as_offline(
    identity: Identity, google: FakeGoogle
) -> None:
    google.offline = True
    assert reason_of(identity, google.key.mint("alice"))[0] == "unreachable"


def test_no_credentials_cannot_check_revocation(google: FakeGoogle) -> None:
    ident = Identity(PROJECT, environ={})
    try:
        assert reason_of(ident, google.key.mint("alice"))[0] == "no_credentials"
    finally:
        ident.close()


def test_unreadable_credentials_and_missing_project(tmp_path: Path) -> None:
    with pytest.raises(AuthError) as info:
        Identity(PROJECT, str(tmp_path / "missing.json")).verify("x.y.z")
    assert info.value.data["reason"] == "no_credentials"
    with pytest.raises(AuthError) as info:
        Identity("", environ={}).verify("x.y.z")
    assert info.value.data["reason"] == "not_configured"


def test_production_identity_never_uses_the_auth_emulator(
    google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sa = google.service_account(tmp_path)
    settings = build_settings(
        {"firebase": {"enabled": True, "projectId": PROJECT, "credentials": str(sa)}}, environ={}
    )
    ident = Identity.from_settings(settings.firebase, environ={})
    try:
        google.add_user("alice")
        assert ident.verify(google.key.mint("alice")).uid == "alice"
        import os

        assert EMULATOR_ENV not in os.environ  # building or verifying never sets it
        # A stray variable would make firebase-admin accept unsigned tokens: refused instead.
        monkeypatch.setenv(EMULATOR_ENV, "127.0.0.1:9")
        claims = {
            "iss": f"https://securetoken.google.com/{PROJECT}",
            "aud": PROJECT,
            "sub": "mallory",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        }
        reason, message = reason_of(ident, unsigned_token(claims, "k"))
        assert reason == "emulator_env" and EMULATOR_ENV in message
    finally:
        ident.close()


def test_scrub_removes_tokens() -> None:
    token = SigningKey().mint("u")
    assert "eyJ" not in scrub(f"Wrong number of segments in token: b'{token}'", token)


# -- Auth emulator (firebase-tools): sign-up, custom claims, revoke, disable --------------------


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def test_auth_emulator_sign_up_claims_revoke_disable(
    auth_emulator: AuthEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EMULATOR_ENV, auth_emulator.host)
    base = f"http://{auth_emulator.host}"
    email = f"u{time.time_ns()}@example.com"
    signed = _post(
        f"{base}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake",
        {"email": email, "password": "secret-pw", "returnSecureToken": True},
    )
    ident = Identity(PROJECT, allow_emulator=True, environ={})
    try:
        user = ident.sign_in(signed["idToken"])
        assert user.uid == signed["localId"] and user.email == email
        assert user.email_verified is False

        auth.set_custom_user_claims(user.uid, {"plan": "team"}, app=ident.app)
        auth.update_user(user.uid, email_verified=True, app=ident.app)
        fresh = _post(
            f"{base}/securetoken.googleapis.com/v1/token?key=fake",
            {"grant_type": "refresh_token", "refresh_token": signed["refreshToken"]},
        )
        again = ident.verify(fresh["id_token"])
        assert again.claims.get("plan") == "team" and again.email_verified is True

        # revoke_refresh_tokens stamps validSince with the current second; a token minted in that
        # same second still passes, so move validSince past the token's iat explicitly.
        auth.update_user(user.uid, valid_since=int(again.claims["iat"]) + 1, app=ident.app)
        with pytest.raises(AuthError) as info:
            ident.verify(fresh["id_token"])
        assert info.value.data["reason"] == "revoked"

        other = _post(
            f"{base}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake",
            {"email": "x" + email, "password": "secret-pw", "returnSecureToken": True},
        )
        auth.update_user(other["localId"], disabled=True, app=ident.app)
        with pytest.raises(AuthError) as info:
            ident.verify(other["idToken"])
        assert info.value.data["reason"] == "disabled"
    finally:
        ident.close()
