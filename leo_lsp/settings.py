"""One typed Settings object: initializationOptions > LEO_* environment > defaults.

On the wire the keys are camelCase (`maxFileBytes`), in Python snake_case (`max_file_bytes`). An
invalid value falls back to its default and is reported in `Settings.problems`, so the server can
tell the user with `window/showMessage` instead of dying.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import platformdirs


@attrs.define
class EmbeddingSettings:
    provider: str = attrs.field(
        default="local", validator=attrs.validators.in_(["local", "openai"])
    )
    """`local`: the embedded MiniLM model; `openai`: any OpenAI-compatible server (LM Studio)."""
    url: str = "http://127.0.0.1:1234/v1"
    """Base URL of the OpenAI-compatible server (alias env `LM_STUDIO_URL`)."""
    model: str = "text-embedding-nomic-embed-text-v1.5"
    """Model name sent to the OpenAI-compatible server."""
    batch_size: int = attrs.field(default=32, validator=attrs.validators.in_(range(1, 1025)))
    """Chunks per embedding request (alias env `EMBEDDING_BATCH_SIZE`)."""
    max_concurrency: int = attrs.field(default=4, validator=attrs.validators.in_(range(1, 65)))
    """Embedding requests in flight at once (alias env `MAX_CONCURRENT_EMBEDDINGS`)."""
    fallback_to_local: bool = False
    """If the server is down, embed with the local model instead of queueing."""
    timeout_seconds: float = 30.0
    """Read timeout of one embedding request."""


@attrs.define
class GatekeeperSettings:
    mode: str = attrs.field(
        default="rules", validator=attrs.validators.in_(["rules", "llm", "off"])
    )
    """`rules`: deterministic rules only; `llm`: rules, then the LLM for doubtful files; `off`."""
    url: str = "http://127.0.0.1:1234/v1"
    """Base URL of the OpenAI-compatible chat server (LM Studio)."""
    model: str = "local-model"
    """Chat model used for doubtful files."""
    on_llm_error: str = attrs.field(
        default="rules", validator=attrs.validators.in_(["rules", "deny"])
    )
    """When the LLM is down or answers garbage: fall back to the rules' verdict, or deny."""
    timeout_seconds: float = 10.0
    """Read timeout of one LLM request; leo never waits longer for a decision."""


@attrs.define
class IndexSettings:
    include: list[str] = attrs.field(factory=list)
    """Globs to index (empty: every text file)."""
    exclude: list[str] = attrs.field(factory=list)
    """Globs never to index, on top of the built-in rules."""
    max_file_bytes: int = attrs.field(default=1_000_000, validator=attrs.validators.ge(1))
    """Files larger than this are not indexed."""
    respect_gitignore: bool = True
    """Skip paths matched by `.gitignore` (and `.leoignore`)."""
    debounce_ms: int = attrs.field(default=300, validator=attrs.validators.in_(range(60_001)))
    """Wait this long after the last keystroke before re-indexing a buffer."""


@attrs.define
class StruggleSettings:
    enabled: bool = True
    """Publish struggle hints."""
    threshold: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    """Struggle score at which a hint is published."""
    window_seconds: int = attrs.field(default=600, validator=attrs.validators.ge(1))
    """Occurrences older than this no longer count."""


@attrs.define
class FirebaseSettings:
    enabled: bool = False
    """Sync metadata to Firebase in the background."""
    project_id: str = ""
    """Firebase project id (alias env `FIREBASE_PROJECT_ID`)."""
    credentials: str = ""
    """Path to a service-account JSON (else `GOOGLE_APPLICATION_CREDENTIALS`)."""
    id_token: str = ""
    """The user's Firebase ID token; never logged."""
    sync_queries: bool = False
    """Also sync the text of search queries (off: only their length, counts and latency)."""


@attrs.define
class RateLimitSettings:
    search_per_hour: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    """Searches per user per hour (alias env `RATE_LIMIT_SEARCH_PER_HOUR`)."""


@attrs.define
class Settings:
    data_dir: str = ""
    """Where the per-workspace databases live (default: the OS user data dir + /leo;
    alias env `VECTOR_DB_PATH`)."""
    embedding: EmbeddingSettings = attrs.field(factory=EmbeddingSettings)
    gatekeeper: GatekeeperSettings = attrs.field(factory=GatekeeperSettings)
    index: IndexSettings = attrs.field(factory=IndexSettings)
    struggle: StruggleSettings = attrs.field(factory=StruggleSettings)
    firebase: FirebaseSettings = attrs.field(factory=FirebaseSettings)
    rate_limits: RateLimitSettings = attrs.field(factory=RateLimitSettings)
    problems: list[str] = attrs.field(factory=list, eq=False, repr=False)
    """Invalid options that fell back to their defaults (not a setting)."""

    @property
    def data_path(self) -> Path:
        """The resolved data directory."""
        return Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()


for _cls in (
    EmbeddingSettings,
    GatekeeperSettings,
    IndexSettings,
    StruggleSettings,
    FirebaseSettings,
    RateLimitSettings,
    Settings,
):
    attrs.resolve_types(_cls)


def default_data_dir() -> Path:
    """The OS user data dir for leo."""
    return Path(platformdirs.user_data_dir("leo", appauthor=False))


# The seed's environment names, honoured as aliases of the LEO_* names.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "LM_STUDIO_URL": ("embedding", "url"),
    "VECTOR_DB_PATH": ("data_dir",),
    "FIREBASE_PROJECT_ID": ("firebase", "project_id"),
    "MAX_CONCURRENT_EMBEDDINGS": ("embedding", "max_concurrency"),
    "EMBEDDING_BATCH_SIZE": ("embedding", "batch_size"),
    "RATE_LIMIT_SEARCH_PER_HOUR": ("rate_limits", "search_per_hour"),
}


def camel_case(name: str) -> str:
    """`max_file_bytes` → `maxFileBytes` (Python names to wire names)."""
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _env_values(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Map setting paths to raw env strings: LEO_EMBEDDING_BATCH_SIZE → (embedding, batch_size)."""
    found: dict[tuple[str, ...], str] = {}
    for alias, path in ENV_ALIASES.items():
        if alias in environ:
            found[path] = environ[alias]
    if "GOOGLE_APPLICATION_CREDENTIALS" in environ:
        found[("firebase", "credentials")] = environ["GOOGLE_APPLICATION_CREDENTIALS"]
    for section in attrs.fields(Settings):
        if attrs.has(section.type) if isinstance(section.type, type) else False:
            assert isinstance(section.type, type)
            for f in attrs.fields(section.type):
                key = f"LEO_{section.name}_{f.name}".upper()
                if key in environ:
                    found[(section.name, f.name)] = environ[key]
        elif section.name != "problems":
            key = f"LEO_{section.name}".upper()
            if key in environ:
                found[(section.name,)] = environ[key]
    return found


def _coerce(raw: Any, target: Any) -> Any:
    """Coerce a JSON value or env string to the field's type; raise ValueError if it cannot."""
    if target is bool or target == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return raw.lower() in ("1", "true", "yes", "on")
        raise ValueError(f"expected a boolean, got {raw!r}")
    if target is int or target == "int":
        if isinstance(raw, bool):
            raise ValueError(f"expected an integer, got {raw!r}")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            return int(raw)
        raise ValueError(f"expected an integer, got {raw!r}")
    if target is float or target == "float":
        if isinstance(raw, bool):
            raise ValueError(f"expected a number, got {raw!r}")
        if isinstance(raw, int | float):
            return float(raw)
        if isinstance(raw, str):
            return float(raw)
        raise ValueError(f"expected a number, got {raw!r}")
    if target is str or target == "str":
        if isinstance(raw, str):
            return raw
        raise ValueError(f"expected a string, got {raw!r}")
    if str(target).startswith("list"):
        if isinstance(raw, str):
            raw = (
                json.loads(raw) if raw.strip().startswith("[") else [s for s in raw.split(",") if s]
            )
        if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            return list(raw)
        raise ValueError(f"expected a list of strings, got {raw!r}")
    raise ValueError(f"unsupported type {target!r}")


def _build_section(
    cls: type[Any],
    name: str,
    options: Mapping[str, Any],
    env: dict[tuple[str, ...], str],
    problems: list[str],
    py_name: str = "",
) -> Any:
    obj = cls()
    py_name = py_name or name
    for f in attrs.fields(cls):
        wire = f"{name}.{camel_case(f.name)}"
        sources: list[tuple[str, Any]] = []
        if isinstance(options, Mapping):
            for key in (camel_case(f.name), f.name):
                if key in options:
                    sources.append((wire, options[key]))
                    break
        if (py_name, f.name) in env:
            sources.append((f"LEO_{py_name}_{f.name}".upper(), env[(py_name, f.name)]))
        for label, raw in sources:
            try:
                value = _coerce(raw, f.type)
                setattr(obj, f.name, value)  # runs the field's validator
                attrs.validate(obj)
                break
            except (ValueError, TypeError) as exc:
                setattr(obj, f.name, getattr(cls(), f.name))
                problems.append(f"{label}: {exc}; using the default {getattr(obj, f.name)!r}")
    return obj


def build_settings(
    options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from initializationOptions (wins), then the environment, then defaults."""
    options = options if isinstance(options, Mapping) else {}
    environ = os.environ if environ is None else environ
    env = _env_values(environ)
    problems: list[str] = []
    if options and not isinstance(options, Mapping):
        problems.append("initializationOptions must be an object; using defaults")
    settings = Settings()
    known = {camel_case(f.name) for f in attrs.fields(Settings)} | {
        f.name for f in attrs.fields(Settings)
    }
    for key in options:
        if key not in known or key == "problems":
            problems.append(f"unknown option {key!r} ignored")
    for f in attrs.fields(Settings):
        if f.name == "problems":
            continue
        if isinstance(f.type, type) and attrs.has(f.type):
            section_opts = options.get(camel_case(f.name), options.get(f.name, {}))
            if not isinstance(section_opts, Mapping):
                problems.append(f"{camel_case(f.name)}: expected an object; using defaults")
                section_opts = {}
            setattr(
                settings,
                f.name,
                _build_section(f.type, camel_case(f.name), section_opts, env, problems, f.name),
            )
        else:
            raw: Any = None
            label = camel_case(f.name)
            if camel_case(f.name) in options:
                raw = options[camel_case(f.name)]
            elif (f.name,) in env:
                raw, label = env[(f.name,)], f"LEO_{f.name}".upper()
            if raw is not None:
                try:
                    setattr(settings, f.name, _coerce(raw, f.type))
                except ValueError as exc:
                    problems.append(f"{label}: {exc}; using the default")
    settings.problems = problems
    return settings


def to_wire(settings: Settings) -> dict[str, Any]:
    """The settings as camelCase JSON (what a client would send)."""

    def conv(obj: Any) -> Any:
        if attrs.has(type(obj)):
            return {
                camel_case(f.name): conv(getattr(obj, f.name))
                for f in attrs.fields(type(obj))
                if f.name != "problems"
            }
        return obj

    out: dict[str, Any] = conv(settings)
    out.get("firebase", {}).pop("idToken", None)  # never echo a token
    return out


__all__ = ["Settings", "build_settings", "camel_case", "default_data_dir", "to_wire"]
