"""Identity: verify the user's Firebase ID token (firebase-admin); the verified uid scopes writes.

`Identity.verify` calls `auth.verify_id_token(token, check_revoked=True)`: the signature is checked
against Google's certificates, the audience/issuer against the project, and (with one request to the
Auth backend) whether the token was revoked or the user disabled. Every failure becomes one
`AuthError` whose message says why and whose `data["reason"]` is a stable code:

    expired | revoked | disabled | user_not_found | wrong_project | bad_signature | malformed
    | unreachable | no_credentials | not_configured | emulator_env

The token itself never appears in a message or a log record: firebase-admin and google-auth quote
it in some errors, so messages are scrubbed before they leave this module.

Verification blocks on the network (certificates, revocation lookup): call it with
`asyncio.to_thread` (or `verify_async`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import firebase_admin
import google.auth.credentials
from firebase_admin import auth, credentials

from leo_lsp.errors import AuthError
from leo_lsp.settings import FirebaseSettings

logger = logging.getLogger(__name__)

EMULATOR_ENV = "FIREBASE_AUTH_EMULATOR_HOST"
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_BYTES_RE = re.compile(r"b'[^']{40,}'")


@dataclass(frozen=True)
class VerifiedUser:
    """A user whose ID token verified: `uid` scopes every write made on their behalf."""

    uid: str
    email: str | None
    email_verified: bool
    claims: dict[str, Any] = field(repr=False)
    expires_at: float = 0.0


def scrub(message: str, token: str | None = None) -> str:
    """Remove a token (and anything shaped like a JWT) from a message."""
    if token:
        message = message.replace(token, "<token>")
    message = _JWT_RE.sub("<token>", message)
    return _BYTES_RE.sub("<token>", message)


class Identity:
    """The signed-in user, verified with firebase-admin; one Firebase app per instance.

    Construct with a project id and optionally a service-account JSON path (else
    `GOOGLE_APPLICATION_CREDENTIALS`). Without credentials the signature and claims are still
    checked, but the revocation check needs the Auth backend and so credentials (or the emulator).
    `allow_emulator=True` is for tests only: with it, `FIREBASE_AUTH_EMULATOR_HOST` is honoured
    (firebase-admin then accepts *unsigned* tokens); without it, a set variable makes every
    verification fail with reason `emulator_env`, so a stray variable cannot switch signature
    checks off in production.
    """

    def __init__(
        self,
        project_id: str = "",
        credentials_path: str = "",
        *,
        allow_emulator: bool = False,
        check_revoked: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._credentials_path = credentials_path or self._environ.get(
            "GOOGLE_APPLICATION_CREDENTIALS", ""
        )
        self._project_id = project_id
        self._allow_emulator = allow_emulator
        self._check_revoked = check_revoked
        self._app: firebase_admin.App | None = None
        self._has_credentials = True
        self._lock = threading.Lock()
        self._user: VerifiedUser | None = None
        self._error: AuthError | None = None

    @classmethod
    def from_settings(
        cls, settings: FirebaseSettings, environ: Mapping[str, str] | None = None
    ) -> Identity:
        """The production identity: never honours the Auth emulator."""
        return cls(settings.project_id, settings.credentials, environ=environ)

    # -- app lifecycle -------------------------------------------------------------------------

    @property
    def project_id(self) -> str:
        """The Firebase project id tokens must be issued for."""
        return self._project_id

    @property
    def app(self) -> firebase_admin.App:
        """The firebase-admin app (created on first use); raises AuthError if misconfigured."""
        with self._lock:
            if self._app is None:
                self._app = self._create_app()
            return self._app

    def _create_app(self) -> firebase_admin.App:
        cred: credentials.Base | None = None
        if self._credentials_path:
            try:
                cert = credentials.Certificate(self._credentials_path)
            except (OSError, ValueError) as exc:
                raise AuthError(
                    f"cannot read the service-account credentials at {self._credentials_path}: "
                    f"{exc}",
                    reason="no_credentials",
                ) from exc
            cred = cert
            self._project_id = self._project_id or cert.project_id
        if not self._project_id:
            raise AuthError(
                "firebase.projectId is not set (nor FIREBASE_PROJECT_ID, nor a service account)",
                reason="not_configured",
            )
        options = {"projectId": self._project_id}
        # A unique name: several identities (tests, a re-configured server) can coexist.
        name = f"leo-{uuid.uuid4().hex[:12]}"
        if cred is None:
            # No credentials: token checks still work; calls to the Auth backend need the emulator
            # (verify() says `no_credentials` otherwise).
            cred = _NoCredentials()
            self._has_credentials = False
        return firebase_admin.initialize_app(cred, options, name=name)

    def close(self) -> None:
        """Delete the firebase-admin app."""
        with self._lock:
            if self._app is not None:
                firebase_admin.delete_app(self._app)
                self._app = None

    # -- verification --------------------------------------------------------------------------

    def verify(self, id_token: str) -> VerifiedUser:
        """Verify an ID token (signature, expiry, project, revocation, disabled); blocking."""
        if not isinstance(id_token, str) or not id_token.strip():
            raise AuthError("no ID token given", reason="malformed")
        # firebase-admin reads the real process environment, so that is what must be checked.
        if os.environ.get(EMULATOR_ENV) and not self._allow_emulator:
            raise AuthError(
                f"{EMULATOR_ENV} is set: that would accept unsigned tokens; unset it "
                "(it is for tests only)",
                reason="emulator_env",
            )
        app = self.app
        emulated = bool(os.environ.get(EMULATOR_ENV)) and self._allow_emulator
        if self._check_revoked and not self._has_credentials and not emulated:
            raise AuthError(
                "service-account credentials are needed to check revocation: set "
                "firebase.credentials or GOOGLE_APPLICATION_CREDENTIALS",
                reason="no_credentials",
            )
        try:
            claims: dict[str, Any] = auth.verify_id_token(
                id_token, app=app, check_revoked=self._check_revoked
            )
        except Exception as exc:  # every failure becomes one AuthError that says why
            raise _auth_error(exc, id_token, self._project_id) from None
        uid = str(claims.get("uid") or claims.get("sub") or "")
        email = claims.get("email")
        return VerifiedUser(
            uid=uid,
            email=str(email) if email else None,
            email_verified=bool(claims.get("email_verified", False)),
            claims=claims,
            expires_at=float(claims.get("exp", 0)),
        )

    async def verify_async(self, id_token: str) -> VerifiedUser:
        """`verify` off the event loop."""
        return await asyncio.to_thread(self.verify, id_token)

    def sign_in(self, id_token: str) -> VerifiedUser:
        """Verify a token and make its user current; on failure the current user is cleared."""
        try:
            user = self.verify(id_token)
        except AuthError as exc:
            with self._lock:
                self._user, self._error = None, exc
            logger.warning("firebase sign-in failed: %s", exc.message)
            raise
        with self._lock:
            self._user, self._error = user, None
        logger.info(
            "firebase sign-in verified uid=%s email_verified=%s", user.uid, user.email_verified
        )
        return user

    async def sign_in_async(self, id_token: str) -> VerifiedUser:
        """`sign_in` off the event loop."""
        return await asyncio.to_thread(self.sign_in, id_token)

    def sign_out(self) -> None:
        """Forget the current user (their queued events stay in the outbox)."""
        with self._lock:
            self._user, self._error = None, None

    @property
    def user(self) -> VerifiedUser | None:
        """The current verified user, if any."""
        return self._user

    @property
    def error(self) -> AuthError | None:
        """Why the last sign-in failed (None after a success)."""
        return self._error

    def require_user(self) -> VerifiedUser:
        """The current verified user, or AuthError saying why there is none."""
        user = self._user
        if user is None:
            if self._error is not None:
                raise AuthError(f"not signed in: {self._error.message}", **self._error.data)
            raise AuthError("not signed in: send leo.auth.signIn {idToken}", reason="signed_out")
        return user


class _NoCredentials(credentials.Base):  # type: ignore[misc]
    """Stands in when no service account is configured (emulator use, signature-only checks)."""

    def get_credential(self) -> Any:
        return google.auth.credentials.AnonymousCredentials()  # type: ignore[no-untyped-call]


def _auth_error(exc: Exception, token: str, project_id: str) -> AuthError:
    """Map a firebase-admin / google-auth failure to an AuthError with a reason."""
    if isinstance(exc, AuthError):
        return exc
    raw = scrub(str(exc), token)
    if isinstance(exc, auth.ExpiredIdTokenError):
        return AuthError(
            "the ID token has expired: sign in again for a fresh one", reason="expired"
        )
    if isinstance(exc, auth.RevokedIdTokenError):
        return AuthError("the ID token was revoked: sign in again", reason="revoked")
    if isinstance(exc, auth.UserDisabledError):
        return AuthError("this Firebase account is disabled", reason="disabled")
    if isinstance(exc, auth.UserNotFoundError):
        return AuthError(
            "the token's user no longer exists in this Firebase project", reason="user_not_found"
        )
    if isinstance(exc, auth.CertificateFetchError):
        return AuthError(
            f"cannot fetch Google's token certificates (offline?): {raw}", reason="unreachable"
        )
    if isinstance(exc, auth.InvalidIdTokenError):
        if '"aud"' in raw or '"iss"' in raw:
            return AuthError(
                f"the ID token was issued for another Firebase project (expected {project_id!r}):"
                f" {raw}",
                reason="wrong_project",
            )
        if (
            "signature" in raw.lower()
            or "kid" in raw
            or "algorithm" in raw.lower()
            or ("certificate" in raw.lower())
        ):
            return AuthError(
                f"the ID token's signature did not verify: {raw}", reason="bad_signature"
            )
        return AuthError(f"the ID token is invalid: {raw}", reason="malformed")
    if isinstance(exc, firebase_admin.exceptions.UnavailableError | ConnectionError | TimeoutError):
        return AuthError(f"the Firebase Auth backend is unreachable: {raw}", reason="unreachable")
    if isinstance(exc, firebase_admin.exceptions.FirebaseError):
        cause = exc.cause
        if cause is not None and "connect" in type(cause).__name__.lower():
            return AuthError(
                f"the Firebase Auth backend is unreachable: {raw}", reason="unreachable"
            )
        return AuthError(f"Firebase rejected the check: {raw}", reason="unreachable")
    if isinstance(exc, ValueError):
        return AuthError(f"the ID token is invalid: {raw}", reason="malformed")
    return AuthError(
        f"could not verify the ID token ({type(exc).__name__}): {raw}", reason="unreachable"
    )
