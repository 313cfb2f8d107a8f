"""Fetching feed bytes politely and safely; feedparser never touches the network.

Safety first: only http/https, every address checked after DNS resolution (SSRF: private,
loopback and link-local addresses are refused unless allowed), every redirect followed by hand
and re-checked, bodies capped while they stream, timeouts on connect, read and the whole fetch.
Politeness: conditional GET with the feed's validators, gzip, a descriptive User-Agent, a
per-host connection limit, and 429/503 Retry-After reported to the scheduler.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from blocwatch.collector.settings import CollectorSettings, IpNetwork

__all__ = [
    "AddressGuard",
    "BlockedAddressError",
    "FetchPolicy",
    "FetchResult",
    "Fetched",
    "Fetcher",
    "GuardedResolver",
    "Validators",
    "make_session",
    "parse_retry_after",
]

FetchResult = Literal[
    "ok",
    "not_modified",
    "http_error",
    "timeout",
    "network_error",
    "too_large",
    "blocked",
    "retry_later",
]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRY_LATER = frozenset({429, 503})
RETRY_AFTER_MAX_S = 24 * 3600.0
ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"  # noqa: E501
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Validators:
    """HTTP cache validators of a feed, sent back as If-None-Match / If-Modified-Since."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True)
class Fetched:
    """What one fetch produced; `detail` is a readable reason for logs when it failed."""

    result: FetchResult
    url: str
    status: int | None = None
    body: bytes = b""
    content_type: str = ""
    validators: Validators = field(default_factory=Validators)
    retry_after_s: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class FetchPolicy:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 20.0
    total_timeout_s: float = 60.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    per_host: int = 4
    concurrency: int = 100
    user_agent: str = "blocwatch"

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> FetchPolicy:
        return cls(
            connect_timeout_s=settings.collector_connect_timeout_s,
            read_timeout_s=settings.collector_read_timeout_s,
            total_timeout_s=settings.collector_total_timeout_s,
            max_body_bytes=settings.collector_max_body_bytes,
            max_redirects=settings.collector_max_redirects,
            per_host=settings.collector_per_host_concurrency,
            concurrency=settings.collector_concurrency,
            user_agent=settings.collector_user_agent,
        )


class BlockedAddressError(OSError):
    """A feed host resolved only to addresses the SSRF policy refuses."""


@dataclass(frozen=True)
class AddressGuard:
    """Which IP addresses feeds may live on: public ones, plus explicit opt-ins."""

    allow_private: bool = False
    allowed: tuple[IpNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> AddressGuard:
        return cls(settings.collector_allow_private_addresses, settings.allowed_networks)

    def permits(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
        if self.allow_private or any(ip in network for network in self.allowed):
            return True
        return ip.is_global and not ip.is_multicast


class GuardedResolver(AbstractResolver):
    """DNS resolution that drops refused addresses, so the check covers what we connect to."""

    def __init__(self, guard: AddressGuard, inner: AbstractResolver | None = None) -> None:
        self.guard = guard
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        permitted = [r for r in results if self.guard.permits(r["host"])]
        if not permitted:
            raise BlockedAddressError(f"{host} resolves only to refused addresses")
        return permitted

    async def close(self) -> None:
        await self.inner.close()


def make_session(policy: FetchPolicy, guard: AddressGuard) -> aiohttp.ClientSession:
    """The one HTTP client of a collector process (its pool holds the per-host limit)."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(guard),
        limit=policy.concurrency,
        limit_per_host=policy.per_host,
        ttl_dns_cache=300,
    )
    timeout = aiohttp.ClientTimeout(
        total=policy.total_timeout_s,
        connect=policy.connect_timeout_s,
        sock_read=policy.read_timeout_s,
    )
    headers = {"User-Agent": policy.user_agent, "Accept": ACCEPT}
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers, auto_decompress=True
    )


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), RETRY_AFTER_MAX_S)


class Fetcher:
    """Fetches one feed URL into bytes under the policy; never raises for network trouble."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        policy: FetchPolicy,
        guard: AddressGuard,
        clock: Callable[[], datetime],
    ) -> None:
        self.session = session
        self.policy = policy
        self.guard = guard
        self.clock = clock

    async def fetch(self, url: str, validators: Validators) -> Fetched:
        try:
            async with asyncio.timeout(self.policy.total_timeout_s):
                return await self._follow(url, validators)
        except TimeoutError:
            return Fetched("timeout", url, detail="timed out")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddressError):
                return Fetched("blocked", url, detail=str(exc.os_error))
            return Fetched("network_error", url, detail=_describe(exc))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # ValueError: aiohttp refuses some malformed URLs and headers that way
            return Fetched("network_error", url, detail=_describe(exc))

    async def _follow(self, url: str, validators: Validators) -> Fetched:
        for _ in range(self.policy.max_redirects + 1):
            refused = self._refusal(url)
            if refused:
                return Fetched("blocked", url, detail=refused)
            async with self.session.get(
                url, headers=validators.headers(), allow_redirects=False
            ) as response:
                if response.status in REDIRECTS and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    continue
                return await self._answer(url, response, validators)
        return Fetched("http_error", url, detail=f"more than {self.policy.max_redirects} redirects")

    def _refusal(self, url: str) -> str:
        """Why a URL may not be fetched before any connection (scheme, literal address)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return f"scheme {parts.scheme or '(none)'!r} is not http or https"
        host = parts.hostname or ""
        if not host:
            return "no host in URL"
        # aiohttp does not call the resolver for IP literals: check them here.
        if _is_ip(host) and not self.guard.permits(host):
            return f"address {host} is refused (private, loopback or link-local)"
        return ""

    async def _answer(
        self, url: str, response: aiohttp.ClientResponse, sent: Validators
    ) -> Fetched:
        status = response.status
        if status == 304:
            return Fetched("not_modified", url, status, validators=_validators(response, sent))
        if status in RETRY_LATER:
            wait = parse_retry_after(response.headers.get("Retry-After"), self.clock())
            return Fetched("retry_later", url, status, retry_after_s=wait, detail=f"HTTP {status}")
        if status >= 300:
            return Fetched("http_error", url, status, detail=f"HTTP {status}")
        limit = self.policy.max_body_bytes
        if response.content_length is not None and response.content_length > limit:
            response.close()
            return Fetched("too_large", url, status, detail=f"Content-Length over {limit} bytes")
        body = await _read_capped(response, limit)
        if body is None:
            return Fetched("too_large", url, status, detail=f"body over {limit} bytes")
        return Fetched(
            "ok",
            url,
            status,
            body=body,
            content_type=response.headers.get("Content-Type", ""),
            validators=_validators(response, Validators()),
        )


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The (decompressed) body, or None once it passes the limit (the connection is dropped)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            response.close()
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _validators(response: aiohttp.ClientResponse, fallback: Validators) -> Validators:
    etag = response.headers.get("ETag") or fallback.etag
    modified = response.headers.get("Last-Modified") or fallback.last_modified
    return Validators(etag=etag, last_modified=modified)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    text: Any = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
