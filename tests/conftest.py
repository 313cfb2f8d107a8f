"""Session fixtures: one real embedded Kafka-protocol broker for the whole test session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from blocwatch.core.broker import EmbeddedBroker
from blocwatch.core.kafka import ensure_topics
from blocwatch.core.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    async with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
def topic_prefix() -> str:
    """A fresh prefix per test, so tests sharing the broker never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def kafka_settings(broker: EmbeddedBroker, topic_prefix: str) -> KafkaSettings:
    settings = KafkaSettings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=topic_prefix,
        topic_partitions=3,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the repo; tests that read it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED
