"""UpSettings: `blocwatch up` and `blocwatch tail`, every knob a BLOCWATCH_UP_* variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from blocwatch.core.settings import BrokerSettings

__all__ = ["UpSettings"]


class UpSettings(BrokerSettings):
    """The one-machine pipeline: broker (BLOCWATCH_BROKER_*), children, demo feeds, console."""

    up_run_dir: Path | None = Field(
        default=None,
        description="Directory for child logs, state and generated files (default: new temp dir).",
    )
    up_services: str = Field(
        default="collector,processor,alerter,console",
        description="Comma-separated services `blocwatch up` runs (subset for debugging).",
    )
    up_restart_initial_s: float = Field(
        default=1.0, gt=0, description="First restart delay of a child that died; doubles."
    )
    up_restart_max_s: float = Field(
        default=30.0, gt=0, description="Longest restart delay of a child that keeps dying."
    )
    up_stop_timeout_s: float = Field(
        default=15.0, gt=0, description="Seconds a child gets to stop after SIGTERM before SIGKILL."
    )
    up_demo_host: str = Field(default="127.0.0.1", description="Address of the demo feed server.")
    up_demo_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the demo feed server (0: any free port)."
    )
    up_demo_poll_interval_s: float = Field(
        default=3.0, ge=1, description="How often the collector polls the demo feeds."
    )
    up_view: bool = Field(default=True, description="Show firing alerts in the console.")
