"""Security defaults: secrets stay secret everywhere, Kafka TLS/SASL reaches every client, and the
metrics endpoints bind where they are told."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import certifi
import faust
import pytest
from prometheus_client import generate_latest

from blocwatch.alerter.rules import parse_rules
from blocwatch.alerter.service import Alerter
from blocwatch.alerter.settings import AlerterSettings
from blocwatch.cli import SETTINGS_CLASSES, build_parser, main
from blocwatch.collector.settings import CollectorSettings
from blocwatch.core.broker import free_port
from blocwatch.core.codec import encode
from blocwatch.core.kafka import client_options, faust_options, make_consumer, make_producer
from blocwatch.core.metrics import OpsServer, new_registry
from blocwatch.core.settings import KafkaSettings, ServiceSettings
from blocwatch.processor.app import faust_config
from blocwatch.processor.settings import ProcessorSettings

from .alerting import WebhookServer, tagged, wait_until
from .streams import read_topic
from .test_cli import _commands

HOOK_TOKEN = "hooktoken-Q7x9"
HMAC_KEY = "hmac-key-Z3k1"
SASL_PASSWORD = "sasl-pass-M2v8"
APPRISE_TOKEN = "apprisetoken-P4w6"
SECRETS = (HOOK_TOKEN, HMAC_KEY, SASL_PASSWORD, APPRISE_TOKEN)

ANY_RULE = """
rules:
  - name: missile-any
    type: any
    severity: critical
    filter: {labels: [escalation]}
    group_by: [story]
    window: 1h
"""


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def _secret_env(monkeypatch: pytest.MonkeyPatch, dead_port: int, hook_url: str) -> None:
    monkeypatch.setenv("BLOCWATCH_KAFKA_SASL_PASSWORD", SASL_PASSWORD)
    monkeypatch.setenv("BLOCWATCH_ALERTER_WEBHOOK_SECRET", HMAC_KEY)
    monkeypatch.setenv(
        "BLOCWATCH_ALERTER_WEBHOOK_URLS",
        f"{hook_url}?token={HOOK_TOKEN},http://127.0.0.1:{dead_port}/down?token={HOOK_TOKEN}",
    )
    monkeypatch.setenv(
        "BLOCWATCH_ALERTER_APPRISE_URLS", f"json://bot:{APPRISE_TOKEN}@127.0.0.1:{dead_port}/x"
    )


@pytest.mark.parametrize("command", _commands(build_parser()), ids=" ".join)
def test_no_secret_in_any_help_output(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _secret_env(monkeypatch, 9, "https://hooks.example/x")
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    captured = capsys.readouterr()
    assert not _leaks(captured.out + captured.err)


def test_no_secret_in_settings_output_or_settings_objects(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _secret_env(monkeypatch, 9, "https://hooks.example/x")
    assert main(["settings"]) == 0
    captured = capsys.readouterr()
    assert not _leaks(captured.out + captured.err)
    for cls in SETTINGS_CLASSES:
        settings = cls()
        assert not _leaks(repr(settings) + str(settings))
        assert not _leaks(settings.model_dump_json())


@pytest.fixture
async def hook() -> AsyncIterator[WebhookServer]:
    server = WebhookServer(secret=HMAC_KEY.encode())
    await server.start()
    yield server
    await server.stop()


@pytest.mark.broker
async def test_no_secret_in_logs_metrics_alerts_or_dead_letters_of_a_run(
    kafka_settings: KafkaSettings,
    hook: WebhookServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A run where one webhook works, another and an Apprise URL are down past the budget."""
    caplog.set_level(logging.DEBUG)  # everything any library logs, aiokafka and apprise too
    _secret_env(monkeypatch, free_port(), hook.url)
    settings = AlerterSettings(
        **kafka_settings.model_dump(exclude={"kafka_sasl_password"}),
        alerter_data_dir=tmp_path / "alerter",
        alerter_group_id="security-alerter",
        alerter_metrics_port=0,
        alerter_retry_attempts=2,
        alerter_retry_initial_s=0.05,
        alerter_retry_max_s=0.1,
        alerter_tick_s=0.5,
    )
    registry = new_registry("alerter")
    service = Alerter(
        settings,
        parse_rules(ANY_RULE, "security.yaml"),
        registry=registry,
        consumer_options={"session_timeout_ms": 1000, "heartbeat_interval_ms": 200},
    )
    item = tagged("sec-1", at=datetime.now(UTC))
    async with service:
        await wait_until(lambda: service.ready)
        producer = make_producer(kafka_settings, "test")
        await producer.start()
        try:
            await producer.send_and_wait(
                kafka_settings.topics.news_tagged, encode(item), key=b"sec-1"
            )
        finally:
            await producer.stop()

        def dead_lettered() -> float:
            total = 0.0
            for receiver in ("webhook-2", "apprise"):
                labels = {"receiver": receiver, "result": "dead_lettered"}
                total += (
                    registry.get_sample_value("blocwatch_alerter_notifications_total", labels) or 0
                )
            return total

        await wait_until(lambda: bool(hook.received) and dead_lettered() == 2, 60)
        assert service._ops is not None
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{service._ops.url}/metrics") as response,
        ):
            exposition = await response.text()
    topics = kafka_settings.topics
    alerts = await read_topic(kafka_settings, topics.alerts, count=1)
    letters = await read_topic(kafka_settings, topics.dlq(topics.alerts), count=2)
    assert len(letters) == 2
    everything = "\n".join(
        [
            caplog.text,
            capsys.readouterr().out,
            exposition,
            generate_latest(registry).decode(),
            *(r.value.decode(errors="replace") for r in alerts + letters),
            *(str(payload) for payload in hook.received),
        ]
    )
    assert not _leaks(everything)
    assert hook.signatures_ok == [True]  # the secret was used, just never shown


def _tls_settings(cls: type[KafkaSettings] = KafkaSettings) -> KafkaSettings:
    return cls(
        kafka_bootstrap_servers="kafka-1.example:9093,kafka-2.example:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="blocwatch",
        kafka_sasl_password=SASL_PASSWORD,
        kafka_ssl_cafile=Path(certifi.where()),
    )


async def test_sasl_ssl_reaches_aiokafka_producer_consumer_and_admin_options() -> None:
    settings = _tls_settings()
    options = client_options(settings, "admin")
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "blocwatch", SASL_PASSWORD)  # fmt: skip
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    # the clients themselves carry them (built, not connected)
    producer = make_producer(settings, "collector")
    consumer = make_consumer(settings, "alerter", "t", group_id="g")
    try:
        for client in (producer.client, consumer._client):
            assert client._security_protocol == "SASL_SSL"
            assert client._sasl_mechanism == "SCRAM-SHA-512"
            assert client._sasl_plain_password == SASL_PASSWORD
            assert client._ssl_context is not None
    finally:
        await producer.stop()
        await consumer.stop()


def test_ssl_only_gives_a_context_and_no_sasl() -> None:
    settings = KafkaSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=Path(certifi.where()))
    options = client_options(settings, "x")
    assert options["ssl_context"] is not None
    assert "sasl_plain_password" not in options
    assert isinstance(faust_options(settings)["broker_credentials"], faust.SSLCredentials)


def test_sasl_ssl_reaches_the_faust_app() -> None:
    settings = _tls_settings(ProcessorSettings)
    assert isinstance(settings, ProcessorSettings)
    config = faust_config(settings)
    credentials = config["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("blocwatch", SASL_PASSWORD)
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context is not None
    assert config["broker"] == "kafka://kafka-1.example:9093;kafka://kafka-2.example:9093"
    # and the faust app built from it keeps them
    app = faust.App("security-check", **config)
    assert app.conf.broker_credentials is credentials


def test_plaintext_is_the_default_and_sends_no_credentials() -> None:
    options = client_options(KafkaSettings(), "x")
    assert options["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in options
    assert "sasl_plain_password" not in options
    assert "broker_credentials" not in faust_options(KafkaSettings())


@pytest.mark.parametrize(
    "cls", [c for c in SETTINGS_CLASSES if issubclass(c, ServiceSettings)], ids=lambda c: c.__name__
)
def test_metrics_bind_to_loopback_by_default(cls: type[ServiceSettings]) -> None:
    assert cls().metrics_host == "127.0.0.1"


async def test_metrics_endpoint_binds_only_to_the_configured_address() -> None:
    ops = OpsServer(new_registry("security"), "127.0.0.2", 0)
    await ops.start()
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.2", ops.port)
        writer.close()
        await writer.wait_closed()
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", ops.port)) != 0  # not on another address
    finally:
        await ops.stop()


def test_collector_refuses_private_addresses_unless_opted_out() -> None:
    """The SSRF opt-out is off unless set explicitly (tests and demos set it)."""
    settings = CollectorSettings()
    assert settings.collector_allow_private_addresses is False
    assert not settings.collector_allowed_cidrs
