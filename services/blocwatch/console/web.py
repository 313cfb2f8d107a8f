"""The console's aiohttp app: board, detail, live updates (SSE), actions, static files.

Security, in one place:
- every response carries a Content-Security-Policy without 'unsafe-inline' (only
  /static/console.js runs) plus nosniff, no-referrer and frame-ancestors 'none';
- feed text is escaped by render.py; links are http(s) only;
- state-changing requests need the CSRF token (double submit: the SameSite=Strict cookie and
  the X-CSRF-Token header or `csrf` field must match) and a same-origin Origin when sent;
- optional auth: HTTP basic (BLOCWATCH_CONSOLE_USER/PASSWORD) or a header set by a trusted
  reverse proxy (BLOCWATCH_CONSOLE_AUTH_HEADER), whose value is then the actor's name.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from blocwatch.alerter.rules import parse_duration
from blocwatch.console.render import board_fragment, board_page, detail_fragment, detail_page, html
from blocwatch.console.state import BoardFilter
from blocwatch.core.models import AlertAction

if TYPE_CHECKING:
    from blocwatch.console.service import Console

__all__ = ["CONTENT_SECURITY_POLICY", "CSRF_COOKIE", "make_app"]

STATIC = Path(__file__).with_name("static")
CSRF_COOKIE = "blocwatch_csrf"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEARTBEAT_S = 15.0
MAX_SILENCE = timedelta(days=90)
FORM_ACTIONS = ("acknowledge", "claim", "unclaim", "silence")

CONSOLE_KEY: web.AppKey[Console] = web.AppKey("console")
USER_KEY = web.RequestKey("user", str)
CSRF_KEY = web.RequestKey("csrf", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ActionError(ValueError):
    """A request a person can fix: the message is shown in the page."""


def make_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[_security(console)], client_max_size=64 * 1024)
    app[CONSOLE_KEY] = console
    app.router.add_get("/", _board)
    app.router.add_get("/alerts/{fp}", _detail)
    app.router.add_get("/events", _events)
    app.router.add_post("/alerts/{fp}/actions", _action)
    app.router.add_post("/silences/{id}/expire", _expire)
    app.router.add_get("/static/console.js", _static("console.js", "text/javascript"))
    app.router.add_get("/static/console.css", _static("console.css", "text/css"))
    return app


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE_KEY]


# -------------------------------------------------------------------------- middleware


def _security(console: Console) -> Middleware:
    settings = console.settings

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        user = _authenticate(console, request)
        if user is None:
            console.metrics.rejected_requests.labels(reason="auth").inc()
            headers = {"WWW-Authenticate": 'Basic realm="blocwatch"'}
            if settings.console_auth != "basic":
                headers = {}
            response: web.StreamResponse = web.Response(
                status=401, text="authentication required\n", headers=headers
            )
            return _harden(response)
        request[USER_KEY] = user
        token = request.cookies.get(CSRF_COOKIE, "")
        fresh = not token
        request[CSRF_KEY] = token or secrets.token_urlsafe(32)
        if request.method not in ("GET", "HEAD") and not _csrf_ok(request, token):
            console.metrics.rejected_requests.labels(reason="csrf").inc()
            return _harden(web.json_response({"error": "invalid CSRF token"}, status=403))
        response = await handler(request)
        if fresh and not response.prepared:
            response.set_cookie(
                CSRF_COOKIE, request[CSRF_KEY], httponly=True, samesite="Strict", path="/"
            )
        return _harden(response)

    return middleware


def _harden(response: web.StreamResponse) -> web.StreamResponse:
    if not response.prepared:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
    return response


def _authenticate(console: Console, request: web.Request) -> str | None:
    """The authenticated user ('' when auth is off); None when the request must be refused."""
    settings = console.settings
    if settings.console_auth == "none":
        return ""
    if settings.console_auth == "header":
        value = request.headers.get(settings.console_auth_header, "").strip()
        return value[:100] or None
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or settings.console_password is None:
        return None
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = settings.console_password.get_secret_value()
    # both compared in constant time, and both always compared
    user_ok = hmac.compare_digest(user.encode(), settings.console_user.encode())
    password_ok = hmac.compare_digest(password.encode(), expected.encode())
    return "" if user_ok and password_ok else None


def _csrf_ok(request: web.Request, cookie: str) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        return False
    given = request.headers.get("X-CSRF-Token", "")
    return bool(cookie) and bool(given) and hmac.compare_digest(cookie, given)


# -------------------------------------------------------------------------- pages


async def _board(request: web.Request) -> web.Response:
    console = _console(request)
    now = console.clock()
    board_filter = BoardFilter.from_query(request.query)
    regions = sorted({r for a in console.board.alerts.values() for r in a.regions})
    page = board_page(
        console.board.views(now, board_filter),
        now,
        board_filter,
        regions,
        request[CSRF_KEY],
        request[USER_KEY],
    )
    return web.Response(text=page, content_type="text/html")


async def _detail(request: web.Request) -> web.Response:
    console = _console(request)
    now = console.clock()
    view = console.board.view(request.match_info["fp"], now)
    if view is None:
        text = html('<!doctype html><title>not found</title><p>No alert {}. <a href="/">board</a>',
                    request.match_info["fp"])  # fmt: skip
        return web.Response(status=404, text=text, content_type="text/html")
    page = detail_page(view, now, request[CSRF_KEY], request[USER_KEY])
    return web.Response(text=page, content_type="text/html")


def _static(name: str, content_type: str) -> Handler:
    body = (STATIC / name).read_bytes()

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    return handler


def _render_live(console: Console, request: web.Request) -> str:
    """The live fragment of the page the stream belongs to."""
    now = console.clock()
    if request.query.get("view") == "alert":
        view = console.board.view(request.query.get("fp", ""), now)
        return detail_fragment(view, now) if view else '<p class="empty">No such alert.</p>'
    return board_fragment(console.board.views(now, BoardFilter.from_query(request.query)), now)


def _sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n".encode()


async def _wait_for_change(console: Console, seen: int) -> None:
    """Until the board changed since version `seen`, the console closes, or a heartbeat is due."""
    async with console.changed:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                console.changed.wait_for(lambda: console.version != seen or console.closing),
                HEARTBEAT_S,
            )


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the page's live fragment, re-rendered on every board change."""
    console = _console(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    _harden(response)
    await response.prepare(request)
    console.metrics.sse_clients.inc()
    try:
        seen = console.version
        await response.write(_sse("board", _render_live(console, request)))
        while not console.closing:
            await _wait_for_change(console, seen)
            if console.closing:
                break
            if console.version == seen:
                await response.write(b": keep-alive\n\n")
                continue
            seen = console.version
            await response.write(_sse("board", _render_live(console, request)))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        console.metrics.sse_clients.dec()
    return response


# -------------------------------------------------------------------------- actions


async def _action(request: web.Request) -> web.Response:
    console = _console(request)
    form = await request.post()
    fp = request.match_info["fp"]
    alert = console.board.alerts.get(fp)
    try:
        if alert is None:
            raise ActionError(f"no alert {fp}")
        kind = str(form.get("action", ""))
        if kind not in FORM_ACTIONS:
            raise ActionError(f"unknown action {kind!r}")
        now = console.clock()
        matchers: dict[str, str] = {}
        ends_at = None
        if kind == "silence":
            matchers = _parse_matchers(str(form.get("matchers", "")))
            ends_at = now + _parse_silence_duration(str(form.get("duration", "")))
        action = AlertAction(
            id=console.new_id(),
            fingerprint=fp,
            action=kind,  # checked against FORM_ACTIONS above
            who=_who(request, form.get("who")),
            comment=str(form.get("comment", ""))[:2000],
            at=now,
            notification=alert.notification,
            matchers=matchers,
            ends_at=ends_at,
        )
    except ActionError as exc:
        console.metrics.rejected_requests.labels(reason="invalid").inc()
        return web.json_response({"error": str(exc)}, status=400)
    await console.act(action)
    past = {"acknowledge": "acknowledged", "claim": "claimed", "unclaim": "un-claimed",
            "silence": "silenced"}[kind]  # fmt: skip
    return web.json_response({"ok": True, "id": action.id, "message": f"{past} {alert.rule}"})


async def _expire(request: web.Request) -> web.Response:
    console = _console(request)
    form = await request.post()
    silence = console.board.silences.get(request.match_info["id"])
    try:
        if silence is None:
            raise ActionError("no such silence")
        action = AlertAction(
            id=console.new_id(),
            fingerprint=silence.fingerprint,
            action="unsilence",
            who=_who(request, form.get("who")),
            at=console.clock(),
            silence_id=silence.id,
        )
    except ActionError as exc:
        console.metrics.rejected_requests.labels(reason="invalid").inc()
        return web.json_response({"error": str(exc)}, status=400)
    await console.act(action)
    return web.json_response({"ok": True, "id": action.id, "message": "silence expired"})


def _who(request: web.Request, given: object) -> str:
    """A proxy-authenticated user wins over the display name typed in the page."""
    user: str = request[USER_KEY]
    who = user or (given.strip() if isinstance(given, str) else "")
    if not who:
        raise ActionError("enter your name first")
    return who[:100]


def _parse_matchers(text: str) -> dict[str, str]:
    matchers = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ActionError(f"matcher {line.strip()!r} is not key=value")
        matchers[key.strip()] = value.strip()
    if not matchers:
        raise ActionError("a silence needs at least one matcher")
    return matchers


def _parse_silence_duration(text: str) -> timedelta:
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        raise ActionError(str(exc)) from exc
    if not timedelta(0) < duration <= MAX_SILENCE:
        raise ActionError("a silence lasts between 1s and 90d")
    return duration
