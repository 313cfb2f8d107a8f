"""The fetcher against a real local HTTP server: validators, limits, SSRF, redirects."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from blocwatch.collector.fetch import (
    AddressGuard,
    Fetched,
    Fetcher,
    FetchPolicy,
    Validators,
    make_session,
)
from blocwatch.core.broker import free_port

from .feedserver import FeedServer, Route, rss

POLICY = FetchPolicy(
    connect_timeout_s=2, read_timeout_s=1, total_timeout_s=3, max_body_bytes=64_000
)
LOOPBACK = AddressGuard(allow_private=True)  # the explicit opt-out: these servers are on 127.0.0.1


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


async def fetch(
    url: str,
    validators: Validators | None = None,
    guard: AddressGuard = LOOPBACK,
    policy: FetchPolicy = POLICY,
) -> Fetched:
    async with make_session(policy, guard) as session:
        return await Fetcher(session, policy, guard, now).fetch(url, validators or Validators())


async def test_ok_then_not_modified(server: FeedServer) -> None:
    server.routes["f"] = Route(rss([("a", "t", "s")]), etag='"v1"', headers={"Last-Modified": "x"})
    first = await fetch(server.url("f"))
    assert first.result == "ok"
    assert first.validators == Validators('"v1"', "x")
    second = await fetch(server.url("f"), first.validators)
    assert second.result == "not_modified"
    assert server.request_headers["f"][-1]["If-None-Match"] == '"v1"'
    assert server.request_headers["f"][-1]["User-Agent"].startswith("blocwatch")


async def test_gzip_is_decoded(server: FeedServer) -> None:
    body = rss([("a", "t", "s")])
    server.routes["g"] = Route(gzip.compress(body), headers={"Content-Encoding": "gzip"})
    result = await fetch(server.url("g"))
    assert result.body == body


async def test_retry_after_is_reported(server: FeedServer) -> None:
    server.routes["busy"] = Route(status=429, headers={"Retry-After": "120"})
    server.routes["down"] = Route(status=503, headers={"Retry-After": "7"})
    busy = await fetch(server.url("busy"))
    assert (busy.result, busy.retry_after_s) == ("retry_later", 120)
    down = await fetch(server.url("down"))
    assert (down.result, down.retry_after_s) == ("retry_later", 7)


async def test_http_errors_and_missing(server: FeedServer) -> None:
    server.routes["gone"] = Route(status=410)
    assert (await fetch(server.url("gone"))).result == "http_error"
    assert (await fetch(server.url("nothing"))).result == "http_error"


async def test_oversize_body_is_aborted(server: FeedServer) -> None:
    server.routes["big"] = Route(b"x" * 200_000)
    server.routes["bomb"] = Route(
        gzip.compress(b" " * 5_000_000), headers={"Content-Encoding": "gzip"}
    )
    assert (await fetch(server.url("big"))).result == "too_large"
    assert (await fetch(server.url("bomb"))).result == "too_large"


async def test_hanging_server_times_out(server: FeedServer) -> None:
    server.routes["hang"] = Route(rss([]), hang=asyncio.Event())
    assert (await fetch(server.url("hang"))).result == "timeout"


async def test_private_addresses_are_refused_by_default(server: FeedServer) -> None:
    server.routes["f"] = Route(rss([("a", "t", "s")]))
    refused = AddressGuard()
    for url in (server.url("f"), server.url("f", host="localhost")):
        result = await fetch(url, guard=refused)
        assert result.result == "blocked", url
    assert server.hits["f"] == 0
    cidr = AddressGuard(allowed=(ipaddress.ip_network("127.0.0.0/8"),))
    assert (await fetch(server.url("f"), guard=cidr)).result == "ok"


async def test_redirects_are_rechecked_and_limited(server: FeedServer) -> None:
    guard = AddressGuard(allowed=(ipaddress.ip_network("127.0.0.0/8"),))
    server.routes["final"] = Route(rss([("a", "t", "s")]))
    server.routes["hop"] = Route(status=302, headers={"Location": "/final"})
    server.routes["metadata"] = Route(
        status=301, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    server.routes["scheme"] = Route(status=302, headers={"Location": "file:///etc/passwd"})
    server.routes["loop"] = Route(status=302, headers={"Location": "/loop"})
    assert (await fetch(server.url("hop"), guard=guard)).result == "ok"
    assert (await fetch(server.url("metadata"), guard=guard)).result == "blocked"
    assert (await fetch(server.url("scheme"), guard=guard)).result == "blocked"
    looped = await fetch(server.url("loop"), guard=guard)
    assert looped.result == "http_error"
    assert server.hits["loop"] == POLICY.max_redirects + 1


async def test_network_errors_are_results_not_exceptions() -> None:
    closed = await fetch(f"http://127.0.0.1:{free_port()}/f")
    assert closed.result == "network_error"
    nxdomain = await fetch("http://no-such-host.invalid/feed")
    assert nxdomain.result == "network_error"
    assert (await fetch("ftp://example.org/feed")).result == "blocked"
