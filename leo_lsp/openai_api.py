"""One client for every OpenAI-compatible server leo talks to (LM Studio, llama.cpp's server, …).

Both the embedding provider (`/v1/embeddings`) and the gatekeeper's LLM (`/v1/chat/completions`)
go through `OpenAICompatClient`, so timeouts, retries, the concurrency bound and error mapping live
in one place. Every failure leaves this module as `errors.UpstreamError` (callers narrow it to
`EmbeddingUnavailable` or `GatekeeperError`); no raw httpx exception escapes.

Retry policy:
- retried with exponential backoff and jitter: HTTP 408, 429 and 5xx, connection resets, connect
  timeouts and protocol errors; a `Retry-After` header sets the wait (up to `max_retry_after`).
- not retried: a refused connection (nothing listens there — LM Studio's server is not started; it
  will not be in a second either, and the caller has its own fallback), a read timeout (the caller
  already waited `read_timeout`; retrying would multiply the wait the user sees), other 4xx.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from leo_lsp.errors import UpstreamError

logger = logging.getLogger(__name__)

ResponseFormatMode = Literal["json_schema", "json_object"]

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_FORMAT_WORDS = re.compile(r"response_format|json_schema", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_BODY_EXCERPT = 300


class _StatusError(UpstreamError):
    """A non-2xx answer; keeps the status and body excerpt so callers can choose a fallback."""

    def __init__(self, message: str, *, status: int, body: str, url: str) -> None:
        super().__init__(message, status=status, url=url)
        self.status = status
        self.body = body


def safe_url(url: str) -> str:
    """The URL without user:password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def normalise_base_url(base_url: str) -> str:
    """Strip the trailing slash; a bare host (`http://127.0.0.1:1234`) gets the usual `/v1`."""
    url = base_url.strip().rstrip("/")
    if not urlsplit(url).path:
        url += "/v1"
    return url


def _is_refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return True
        if "refused" in str(cur).lower():
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """Parse Retry-After (delta-seconds or an HTTP date); None when absent or unreadable."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_excerpt(response: httpx.Response) -> str:
    """The server's own error message if it sent the OpenAI error shape, else the body's start."""
    text = response.text
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:_BODY_EXCERPT].strip()
    if isinstance(payload, dict):
        err = payload.get("error", payload.get("detail", payload))
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:_BODY_EXCERPT]
        if isinstance(err, str):
            return err[:_BODY_EXCERPT]
    return text[:_BODY_EXCERPT].strip()


def parse_json_content(content: str) -> dict[str, Any]:
    """Parse a model's answer as one JSON object: strips ``` fences and surrounding chatter."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except ValueError:
        # Small models sometimes wrap the object in a sentence; take the outermost braces.
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise UpstreamError(
                f"the model's answer is not JSON: {content[:120]!r}", content=content[:500]
            ) from None
        try:
            value = json.loads(text[start : end + 1])
        except ValueError:
            raise UpstreamError(
                f"the model's answer is not valid JSON: {content[:120]!r}", content=content[:500]
            ) from None
    if not isinstance(value, dict):
        raise UpstreamError(
            f"the model answered JSON but not an object: {content[:120]!r}", content=content[:500]
        )
    return value


class OpenAICompatClient:
    """Async client for `/v1/models`, `/v1/chat/completions` and `/v1/embeddings`."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        api_key: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
        max_retries: int = 3,
        max_concurrency: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 30.0,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self._display_url = safe_url(self.base_url)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self._api_key = api_key
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout
        )
        self.max_retries = max(0, max_retries)
        self._semaphore = asyncio.Semaphore(max(1, max_concurrency))
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_retry_after = max_retry_after
        self.response_format_mode: ResponseFormatMode | None = None
        """Which `response_format` the server accepted last (None until the first chat call)."""

    def __repr__(self) -> str:  # never show the API key
        return f"OpenAICompatClient({self._display_url!r})"

    # -- public API --------------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        """The model ids the server offers."""
        payload = await self._request_json("GET", "/models")
        data = payload.get("data")
        if not isinstance(data, list):
            raise UpstreamError(f"{self._display_url}/models answered without a `data` list")
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    async def chat_json(
        self,
        model: str,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        schema_name: str = "decision",
    ) -> dict[str, Any]:
        """Ask for a JSON answer constrained by `schema`; returns the parsed object (not validated).

        Sends `json_schema` (LM Studio, OpenAI) first; a server that rejects it (llama.cpp's
        answers 500 "response_format type must be one of text or json_object") is asked again
        with `json_object` + `schema`, and the working form is remembered for later calls.
        """
        modes: list[ResponseFormatMode]
        if self.response_format_mode == "json_object":
            modes = ["json_object"]
        else:
            modes = ["json_schema", "json_object"]
        last_error: UpstreamError | None = None
        for mode in modes:
            body: dict[str, Any] = {
                "model": model,
                "messages": messages,
                "temperature": 0,
                # A structured decision is a few dozen tokens; a rambling model must not fill
                # its context (servers keep generating after the client has given up).
                "max_tokens": 256,
                "stream": False,
                "response_format": self._response_format(mode, schema, schema_name),
            }
            give_up = _mentions_format if mode == "json_schema" else None
            try:
                payload = await self._request_json(
                    "POST", "/chat/completions", body, give_up=give_up
                )
            except _StatusError as exc:
                rejected = _mentions_format_text(exc.body) or (
                    self.response_format_mode is None and exc.status in (400, 422, 500)
                )
                if mode == "json_schema" and rejected:
                    logger.info(
                        "server %s rejected response_format json_schema (HTTP %s); "
                        "retrying with json_object",
                        self._display_url,
                        exc.status,
                    )
                    last_error = exc
                    continue
                raise
            if self.response_format_mode != mode:
                logger.info("server %s accepts response_format %s", self._display_url, mode)
            self.response_format_mode = mode
            return parse_json_content(_chat_content(payload, self._display_url))
        assert last_error is not None
        raise last_error

    async def embeddings(self, model: str, inputs: list[str]) -> list[list[float]]:
        """Embed `inputs` with `model`; one vector per input, in input order."""
        if not inputs:
            return []
        payload = await self._request_json(
            "POST", "/embeddings", {"model": model, "input": inputs, "encoding_format": "float"}
        )
        data = payload.get("data")
        if not isinstance(data, list) or len(data) != len(inputs):
            got = len(data) if isinstance(data, list) else "no"
            raise UpstreamError(
                f"{self._display_url}/embeddings answered {got} vectors for {len(inputs)} inputs"
            )
        ordered: list[list[float] | None] = [None] * len(inputs)
        for pos, item in enumerate(data):
            if not isinstance(item, dict):
                raise UpstreamError(f"{self._display_url}/embeddings answered a malformed item")
            index = item.get("index", pos)
            vector = item.get("embedding")
            if (
                not isinstance(index, int)
                or not 0 <= index < len(inputs)
                or not isinstance(vector, list)
                or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector)
            ):
                raise UpstreamError(f"{self._display_url}/embeddings answered a malformed item")
            ordered[index] = [float(x) for x in vector]
        if any(v is None for v in ordered):
            raise UpstreamError(f"{self._display_url}/embeddings answered duplicate indexes")
        return [v for v in ordered if v is not None]

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _response_format(
        mode: ResponseFormatMode, schema: dict[str, Any], name: str
    ) -> dict[str, Any]:
        if mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            }
        return {"type": "json_object", "schema": schema}

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_base * (2**attempt))
        # "Equal jitter": at least half the exponential delay, so retries still spread out.
        return random.uniform(ceiling / 2, ceiling)

    async def _request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        give_up: Callable[[httpx.Response], bool] | None = None,
    ) -> dict[str, Any]:
        response = await self._request(method, path, body, give_up=give_up)
        try:
            payload = response.json()
        except ValueError:
            raise UpstreamError(
                f"{self._display_url}{path} answered invalid JSON "
                f"(HTTP {response.status_code}): {response.text[:120]!r}",
                url=f"{self._display_url}{path}",
            ) from None
        if not isinstance(payload, dict):
            raise UpstreamError(f"{self._display_url}{path} answered JSON that is not an object")
        return payload

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        give_up: Callable[[httpx.Response], bool] | None = None,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise UpstreamError."""
        url = f"{self.base_url}{path}"
        shown = f"{self._display_url}{path}"
        attempt = 0
        while True:
            wait: float | None = None
            failure: _StatusError | None = None
            try:
                async with self._semaphore:
                    started = time.perf_counter()
                    response = await self._http.request(
                        method, url, json=body, headers=self._headers(), timeout=self._timeout
                    )
                    await response.aread()
            except httpx.ConnectError as exc:
                if _is_refused(exc):
                    raise UpstreamError(
                        f"cannot connect to {shown}: connection refused "
                        "(is the server running, e.g. LM Studio's local server started?)",
                        url=shown,
                    ) from None
                problem = f"cannot connect to {shown}: {exc or type(exc).__name__}"
            except httpx.ReadTimeout:
                raise UpstreamError(
                    f"{shown} did not answer within {self._timeout.read:g} s", url=shown
                ) from None
            except (httpx.TransportError, httpx.StreamError) as exc:
                problem = f"{shown} failed: {type(exc).__name__}: {exc}"
            else:
                elapsed_ms = (time.perf_counter() - started) * 1000
                status = response.status_code
                logger.debug("%s %s -> %s in %.0f ms", method, shown, status, elapsed_ms)
                if 200 <= status < 300:
                    return response
                excerpt = _error_excerpt(response)
                message = f"{shown} answered HTTP {status}: {excerpt}"
                if status in (401, 403):
                    message = f"{shown} refused the request (HTTP {status}): check the API key"
                failure = _StatusError(message, status=status, body=excerpt, url=shown)
                retryable = status in _RETRY_STATUSES or status >= 500
                if not retryable or (give_up is not None and give_up(response)):
                    raise failure
                problem = message
                retry_after = _retry_after_seconds(response)
                if retry_after is not None:
                    if retry_after > self._max_retry_after:
                        raise _StatusError(
                            f"{message} (asked to retry after {retry_after:.0f} s; giving up)",
                            status=status,
                            body=excerpt,
                            url=shown,
                        )
                    wait = retry_after
            if attempt >= self.max_retries:
                if failure is not None:
                    raise _StatusError(
                        f"{problem} (after {attempt + 1} attempts)",
                        status=failure.status,
                        body=failure.body,
                        url=shown,
                    )
                raise UpstreamError(
                    f"{problem} (after {attempt + 1} attempts)", url=shown, attempts=attempt + 1
                )
            if wait is None:
                wait = self._backoff(attempt)
            attempt += 1
            logger.warning("%s; retry %d/%d in %.2f s", problem, attempt, self.max_retries, wait)
            await asyncio.sleep(wait)


def _mentions_format(response: httpx.Response) -> bool:
    return _mentions_format_text(response.text)


def _mentions_format_text(text: str) -> bool:
    return bool(_FORMAT_WORDS.search(text))


def _chat_content(payload: dict[str, Any], shown_url: str) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise UpstreamError(
            f"{shown_url}/chat/completions answered without choices[0].message.content"
        ) from None
    if not isinstance(content, str) or not content.strip():
        raise UpstreamError(f"{shown_url}/chat/completions answered an empty message")
    return content


__all__ = ["OpenAICompatClient", "normalise_base_url", "parse_json_content", "safe_url"]
