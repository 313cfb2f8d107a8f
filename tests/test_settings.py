from __future__ import annotations

import pytest

from blocwatch.cli import all_settings_rows
from blocwatch.core.errors import ConfigError
from blocwatch.core.kafka import client_options
from blocwatch.core.settings import KafkaSettings, load_settings

from .conftest import REPO


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("BLOCWATCH_TOPIC_PREFIX", "prod.")
    settings = load_settings(KafkaSettings)
    assert settings.kafka_bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.topics.news_raw == "prod.news.raw"


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOCWATCH_TOPIC_PARTITIONS", "zero")
    with pytest.raises(ConfigError, match="BLOCWATCH_TOPIC_PARTITIONS"):
        load_settings(KafkaSettings)


def test_settings_are_frozen() -> None:
    settings = KafkaSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.topic_prefix = "x"  # type: ignore[misc]


def test_sasl_password_is_secret_but_reaches_the_client() -> None:
    settings = KafkaSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="hunter2",
    )
    assert "hunter2" not in repr(settings)
    options = client_options(settings, "test")
    assert options["sasl_plain_password"] == "hunter2"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"


def test_readme_lists_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name, _, _ in all_settings_rows() if f"`{name}`" not in readme]
    assert not missing, f"README settings table lacks {missing} (paste `blocwatch settings`)"
