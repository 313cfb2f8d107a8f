"""`blocwatch process` settings: consumer group, faust worker tuning and story clustering."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from blocwatch.core.settings import ServiceSettings

__all__ = ["ProcessorSettings"]


class ProcessorSettings(ServiceSettings):
    """The stream processor (faust worker). Every field is `BLOCWATCH_PROCESSOR_*`."""

    processor_metrics_port: int = Field(
        default=9402, ge=0, le=65535, description="Processor /metrics, /healthz, /readyz port."
    )
    processor_group_id: str = Field(
        default="blocwatch-processor",
        min_length=1,
        description="Consumer group and faust app id (the topic prefix is prepended).",
    )
    processor_data_dir: Path = Field(
        default=Path(".blocwatch/processor"),
        description="faust data directory (local table state; the changelog is the truth).",
    )
    processor_story_horizon_seconds: float = Field(
        default=12 * 3600,
        gt=0,
        description="An item joins a story only within this time of the story's first report.",
    )
    processor_story_similarity: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Minimum estimated Jaccard similarity of two items' shingles to share a story.",
    )
    processor_story_max_stories: int = Field(
        default=100_000,
        ge=1,
        description="Cap on stories kept in memory (oldest dropped first): bounds memory.",
    )
    processor_max_inflight: int = Field(
        default=1000,
        ge=1,
        description="Records processed but not yet acknowledged (backpressure on the pipeline).",
    )
    processor_batch_size: int = Field(
        default=256,
        ge=1,
        description="Records taken from news.raw and processed together (at most).",
    )
    processor_batch_wait_seconds: float = Field(
        default=0.02,
        gt=0,
        description="Longest wait for a batch to fill before processing what has arrived.",
    )
    processor_tagging_processes: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = Field(
        default="auto",
        description=(
            "Processes that tag batches beside the worker (0: tag in the worker's own process; "
            "auto: one if the worker may use two CPUs or more by its CPU affinity and cgroup CPU "
            "limit, else 0). More than one pays only with a CPU each and a busy stream."
        ),
    )
    processor_tagging_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "With tagging processes: longest a batch may take before they are restarted and the "
            "record that holds them up is dead-lettered."
        ),
    )
    processor_session_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Kafka consumer session timeout (faust)."
    )
    processor_rebalance_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Kafka consumer rebalance timeout (faust)."
    )
    processor_heartbeat_interval_seconds: float = Field(
        default=3.0, gt=0, description="Kafka consumer heartbeat interval (faust)."
    )
    processor_auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a new consumer group starts reading news.raw."
    )
    processor_exactly_once: bool = Field(
        default=False,
        description="faust exactly_once (needs transactions; off on the embedded broker).",
    )

    @property
    def metrics_port(self) -> int:
        return self.processor_metrics_port

    @property
    def app_id(self) -> str:
        """faust app id = consumer group; prefixed so deployments sharing a cluster never mix."""
        return f"{self.topic_prefix}{self.processor_group_id}"
