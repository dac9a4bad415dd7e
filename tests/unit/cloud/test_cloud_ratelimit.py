"""Token buckets per (uid, command) with an injected clock."""

from __future__ import annotations

import pytest

from leo_lsp.cloud.ratelimit import RateLimiter
from leo_lsp.errors import RateLimited
from leo_lsp.settings import build_settings


def test_burst_then_refill_per_user_and_command() -> None:
    now = [0.0]
    settings = build_settings({"rateLimits": {"searchPerHour": 60}}, environ={})
    limiter = RateLimiter.from_settings(settings.rate_limits, clock=lambda: now[0])
    for _ in range(60):
        limiter.check("alice", "leo.search")
    with pytest.raises(RateLimited) as info:
        limiter.check("alice", "leo.search")
    assert info.value.retry_after == pytest.approx(60.0)  # one token per minute
    assert info.value.code == -32006 and info.value.data["retryAfter"] == 60.0
    assert "retry in 60 s" in info.value.message
    limiter.check("bob", "leo.search")  # another user has a bucket of their own
    limiter.check("alice", "leo.indexFile")  # unlimited command
    now[0] += 30
    with pytest.raises(RateLimited) as info:
        limiter.check("alice", "leo.search")
    assert info.value.retry_after == pytest.approx(30.0)
    now[0] += 30
    limiter.check("alice", "leo.search")
    now[0] += 10 * 3600  # never more than the capacity after a long idle
    assert limiter.remaining("alice", "leo.search") == 60


def test_reconfigure_shrinks_existing_buckets() -> None:
    limiter = RateLimiter({"leo.search": 100}, clock=lambda: 0.0)
    limiter.configure("leo.search", 2)
    limiter.check("u", "leo.search")
    limiter.check("u", "leo.search")
    with pytest.raises(RateLimited):
        limiter.check("u", "leo.search")
