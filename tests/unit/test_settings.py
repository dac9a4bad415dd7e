"""Settings: initializationOptions > LEO_* env (and the seed's aliases) > defaults."""

from __future__ import annotations

from pathlib import Path

from leo_lsp.settings import build_settings, default_data_dir, to_wire


def test_defaults() -> None:
    s = build_settings({}, {})
    assert s.embedding.provider == "local"
    assert s.index.debounce_ms == 300 and s.index.max_file_bytes == 1_000_000
    assert s.gatekeeper.mode == "rules" and s.struggle.threshold == 3
    assert s.data_path == default_data_dir() and s.problems == []


def test_options_win_over_env_which_wins_over_defaults() -> None:
    env = {"LEO_INDEX_DEBOUNCE_MS": "100", "LEO_STRUGGLE_THRESHOLD": "5"}
    s = build_settings({"index": {"debounceMs": 50}}, env)
    assert s.index.debounce_ms == 50  # option beats env
    assert s.struggle.threshold == 5  # env beats default


def test_seed_aliases_and_two_word_sections() -> None:
    env = {
        "LM_STUDIO_URL": "http://127.0.0.1:9999/v1",
        "VECTOR_DB_PATH": "/tmp/leo-x",
        "FIREBASE_PROJECT_ID": "demo-leo",
        "MAX_CONCURRENT_EMBEDDINGS": "2",
        "EMBEDDING_BATCH_SIZE": "8",
        "RATE_LIMIT_SEARCH_PER_HOUR": "60",
    }
    s = build_settings({}, env)
    assert s.embedding.url == "http://127.0.0.1:9999/v1"
    assert s.data_path == Path("/tmp/leo-x")
    assert s.firebase.project_id == "demo-leo"
    assert (s.embedding.max_concurrency, s.embedding.batch_size) == (2, 8)
    assert s.rate_limits.search_per_hour == 60
    assert (
        build_settings({}, {"LEO_RATE_LIMITS_SEARCH_PER_HOUR": "61"}).rate_limits.search_per_hour
        == 61
    )


def test_invalid_values_fall_back_and_are_reported() -> None:
    s = build_settings(
        {
            "embedding": {"provider": "quantum", "batchSize": "lots"},
            "index": {"respectGitignore": "maybe", "include": [1]},
            "struggle": "on",
            "bogus": True,
        },
        {"LEO_INDEX_DEBOUNCE_MS": "soon"},
    )
    assert s.embedding.provider == "local" and s.embedding.batch_size == 32
    assert s.index.respect_gitignore is True and s.index.include == []
    assert s.index.debounce_ms == 300 and s.struggle.enabled is True
    text = "\n".join(s.problems)
    for name in (
        "embedding.provider",
        "embedding.batchSize",
        "index.respectGitignore",
        "index.include",
        "struggle",
        "bogus",
        "LEO_INDEX_DEBOUNCE_MS",
    ):
        assert name in text, (name, text)


def test_wire_form_is_camel_case_and_never_echoes_the_token() -> None:
    s = build_settings({"firebase": {"idToken": "eyJhbGciOi.secret.token"}}, {})
    wire = to_wire(s)
    assert "idToken" not in wire["firebase"] and "maxFileBytes" in wire["index"]
    assert s.firebase.id_token == "eyJhbGciOi.secret.token"
