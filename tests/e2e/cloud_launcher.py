"""TEST ONLY: start leo-lsp with firebase-admin's Google endpoints pointed at a loopback stand-in.

`verify_id_token(check_revoked=True)` fetches Google's token certificates and looks the user up in
identitytoolkit; tests serve both from a local HTTP server (tests/unit/cloud/cloud_fakes.FakeGoogle)
signing real RS256 tokens. The production code has no hook for this: only this launcher, which
tests run instead of `python -m leo_lsp`, rewrites the two module constants before serving.

    LEO_TEST_CERT_URI        → firebase_admin._token_gen.ID_TOKEN_CERT_URI
    LEO_TEST_ID_TOOLKIT_URL  → firebase_admin._user_mgt.UserManager.ID_TOOLKIT_URL
"""

from __future__ import annotations

import os

import firebase_admin._token_gen
import firebase_admin._user_mgt

from leo_lsp.cli import main

if __name__ == "__main__":
    firebase_admin._token_gen.ID_TOKEN_CERT_URI = os.environ["LEO_TEST_CERT_URI"]
    firebase_admin._user_mgt.UserManager.ID_TOOLKIT_URL = os.environ["LEO_TEST_ID_TOOLKIT_URL"]
    main([])
