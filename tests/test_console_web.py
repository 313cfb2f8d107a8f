"""The console's web app on the embedded broker: board, SSE, actions, CSRF, auth, metrics."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from yarl import URL

from blocwatch.console.service import Console
from blocwatch.console.web import CONTENT_SECURITY_POLICY, CSRF_COOKIE
from blocwatch.core.codec import decode
from blocwatch.core.kafka import make_producer
from blocwatch.core.models import AlertAction
from blocwatch.core.settings import KafkaSettings
from tests.alerting import wait_until
from tests.consoling import alert, console_settings, publish, running_console
from tests.streams import read_topic


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    yield producer
    await producer.stop()


async def _csrf(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    cookie = session.cookie_jar.filter_cookies(URL(url)).get(CSRF_COOKIE)
    assert cookie is not None
    return cookie.value


def _status(console: Console, fingerprint: str = "fp-kp") -> str:
    view = console.board.view(fingerprint, console.clock())
    return view.status if view is not None else "absent"


def _session() -> aiohttp.ClientSession:
    # unsafe=True: the jar keeps cookies of IP hosts (127.0.0.1), as a browser does
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_board_actions_and_history_shared_by_two_consoles(
    kafka_settings: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    topics = kafka_settings.topics
    await publish(producer, topics.alerts, alert())
    settings = console_settings(kafka_settings)
    async with running_console(settings) as console, _session() as session:
        await wait_until(lambda: "fp-kp" in console.board.alerts)
        token = await _csrf(session, console.url)
        async with session.get(console.url) as response:
            page = await response.text()
        assert "kp-surge" in page
        assert "Korean Peninsula" in page
        url = f"{console.url}alerts/fp-kp/actions"
        form = {"action": "acknowledge", "comment": "desk informed", "who": "kim"}
        async with session.post(url, data=form) as response:
            assert response.status == 403  # no CSRF header
        async with session.post(url, data=form, headers={"X-CSRF-Token": "forged"}) as response:
            assert response.status == 403
        async with session.post(url, data=form, headers={"X-CSRF-Token": token}) as response:
            assert response.status == 200, await response.text()
        bad = {"action": "silence", "matchers": "no-equals-sign", "duration": "1h", "who": "kim"}
        async with session.post(url, data=bad, headers={"X-CSRF-Token": token}) as response:
            assert response.status == 400
            assert "key=value" in (await response.json())["error"]
        await wait_until(lambda: _status(console) == "acknowledged")
        sample = console.registry.get_sample_value
        assert sample("blocwatch_console_actions_total", {"action": "acknowledge"}) == 1
    records = await read_topic(kafka_settings, topics.alert_actions, count=1)
    acted = decode(AlertAction, records[0].value)
    assert (acted.action, acted.who, acted.comment) == ("acknowledge", "kim", "desk informed")
    assert records[0].key == b"fp-kp"
    # A console started later (or a restarted one) rebuilds the same state from the topics.
    async with running_console(settings) as second:
        await wait_until(lambda: _status(second) == "acknowledged")


async def test_server_sent_events_push_new_alerts(
    kafka_settings: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    async with (
        running_console(console_settings(kafka_settings)) as console,
        aiohttp.ClientSession() as session,
        session.get(f"{console.url}events?view=board") as stream,
    ):
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        first = await stream.content.readuntil(b"\n\n")
        assert b"event: board" in first
        assert b"No alerts match" in first
        await wait_until(
            lambda: console.registry.get_sample_value("blocwatch_console_sse_clients") == 1
        )
        await publish(producer, kafka_settings.topics.alerts, alert("fp-live", rule="live-rule"))
        update = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 30)
        assert b"live-rule" in update


async def test_ops_endpoints_and_undecodable_records_are_skipped(
    kafka_settings: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    await producer.send_and_wait(kafka_settings.topics.alerts, b"{not json")
    settings = console_settings(kafka_settings)
    async with running_console(settings) as console, aiohttp.ClientSession() as session:
        assert console._ops is not None
        async with session.get(f"{console._ops.url}/readyz") as response:
            assert response.status == 200
        async with session.get(f"{console._ops.url}/metrics") as response:
            text = await response.text()
        assert 'blocwatch_console_invalid_records_total{topic="alerts"} 1.0' in text


async def test_basic_auth_and_trusted_header(kafka_settings: KafkaSettings) -> None:
    basic = console_settings(kafka_settings, console_auth="basic", console_password="s3cret")
    async with running_console(basic) as console, aiohttp.ClientSession() as session:
        async with session.get(console.url) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        good = "Basic " + base64.b64encode(b"watch:s3cret").decode()
        bad = "Basic " + base64.b64encode(b"watch:nope").decode()
        async with session.get(console.url, headers={"Authorization": bad}) as response:
            assert response.status == 401
        async with session.get(console.url, headers={"Authorization": good}) as response:
            assert response.status == 200
    header = console_settings(kafka_settings, console_auth="header")
    async with running_console(header) as console, aiohttp.ClientSession() as session:
        async with session.get(console.url) as response:
            assert response.status == 401
        async with session.get(console.url, headers={"X-Forwarded-User": "<kim>"}) as response:
            assert 'data-user="&lt;kim&gt;"' in await response.text()


async def test_claim_unclaim_silence_expire_and_cross_origin(
    kafka_settings: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    await publish(producer, kafka_settings.topics.alerts, alert())
    async with running_console(console_settings(kafka_settings)) as console, _session() as session:
        await wait_until(lambda: "fp-kp" in console.board.alerts)
        token = await _csrf(session, console.url)
        headers = {"X-CSRF-Token": token}
        url = f"{console.url}alerts/fp-kp/actions"

        async def post(form: dict[str, str], target: str = url) -> int:
            async with session.post(target, data={"who": "lee", **form}, headers=headers) as r:
                return r.status

        assert await post({"action": "claim"}) == 200
        await wait_until(lambda: _claimed_by(console) == "lee")
        assert await post({"action": "unclaim"}) == 200
        await wait_until(lambda: _claimed_by(console) == "")
        silence = {"action": "silence", "matchers": "rule=kp-surge", "duration": "1h"}
        assert await post(silence) == 200
        await wait_until(lambda: _status(console) == "silenced")
        assert await post({**silence, "duration": "400d"}) == 400
        (silence_id,) = console.board.silences
        assert await post({}, f"{console.url}silences/{silence_id}/expire") == 200
        await wait_until(lambda: _status(console) == "firing")
        evil = {**headers, "Origin": "https://evil.example"}
        async with session.post(url, data={"action": "claim", "who": "x"}, headers=evil) as r:
            assert r.status == 403
        async with session.post(url, data={"action": "claim"}, headers=headers) as r:
            assert r.status == 400  # no name: refused, nothing published
    sample = console.registry.get_sample_value
    assert sample("blocwatch_console_rejected_requests_total", {"reason": "csrf"}) == 1
    assert sample("blocwatch_console_actions_total", {"action": "unsilence"}) == 1


def _claimed_by(console: Console) -> str:
    view = console.board.view("fp-kp", console.clock())
    return view.claim.who if view is not None and view.claim is not None else ""
