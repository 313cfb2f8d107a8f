"""What `blocwatch up` runs: the child commands, their environments and where they listen.

Pure: it takes the settings, the caller's environment and the run directory, and returns specs
the supervisor starts. The children read their own settings from the environment built here, so
whatever the user exported (ports, rules, receivers) reaches them unchanged, and `up` only fills
in what it owns: the broker address, the demo feeds and fresh state directories.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from blocwatch.core.errors import ConfigError
from blocwatch.up.settings import UpSettings

__all__ = ["SERVICES", "Service", "ServicePlan", "plan_services"]


@dataclass(frozen=True)
class Service:
    """One pipeline stage as `up` knows it: its command and its own settings' variable names."""

    name: str
    command: str
    port_var: str
    default_port: int
    data_dir_var: str | None = None
    file_var: str | None = None  # the feeds or rules file it reads, shown in the banner
    default_file: str = "(shipped default)"


SERVICES: tuple[Service, ...] = (
    Service(
        "collector",
        "collect",
        "BLOCWATCH_COLLECTOR_METRICS_PORT",
        9401,
        "BLOCWATCH_COLLECTOR_DATA_DIR",
        "BLOCWATCH_COLLECTOR_FEEDS_FILE",
        "(shipped feeds.yaml)",
    ),
    Service(
        "processor",
        "process",
        "BLOCWATCH_PROCESSOR_METRICS_PORT",
        9402,
        "BLOCWATCH_PROCESSOR_DATA_DIR",
    ),
    Service(
        "alerter",
        "alert",
        "BLOCWATCH_ALERTER_METRICS_PORT",
        9403,
        "BLOCWATCH_ALERTER_DATA_DIR",
        "BLOCWATCH_ALERTER_RULES_FILE",
        "(shipped rules.yaml)",
    ),
)


@dataclass(frozen=True)
class ServicePlan:
    service: Service
    argv: tuple[str, ...]
    env: dict[str, str]
    metrics_url: str
    log_path: Path

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def config_file(self) -> str | None:
        if self.service.file_var is None:
            return None
        return self.env.get(self.service.file_var, self.service.default_file)


def _selected(settings: UpSettings) -> list[Service]:
    names = [n.strip() for n in settings.up_services.split(",") if n.strip()]
    known = {s.name: s for s in SERVICES}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(
            f"invalid setting BLOCWATCH_UP_SERVICES: unknown service(s) {unknown or names}",
            f"use a comma-separated subset of {', '.join(known)}",
        )
    return [s for s in SERVICES if s.name in names]  # always in pipeline order


def plan_services(
    settings: UpSettings,
    environ: Mapping[str, str],
    *,
    bootstrap_servers: str,
    run_dir: Path,
    overrides: Mapping[str, str] | None = None,
) -> list[ServicePlan]:
    """One plan per selected service, in pipeline order (collector → processor → alerter)."""
    base = dict(environ)
    base["BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap_servers
    base.update(overrides or {})
    host = base.get("BLOCWATCH_METRICS_HOST", "127.0.0.1")
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    plans = []
    for service in _selected(settings):
        env = dict(base)
        # Fresh state per run unless the user chose a directory: the embedded broker forgets
        # everything on restart, so a remembered seen-set would hide every item from it.
        if service.data_dir_var is not None and service.data_dir_var not in environ:
            env[service.data_dir_var] = str(run_dir / service.name)
        port = env.get(service.port_var, str(service.default_port))
        plans.append(
            ServicePlan(
                service=service,
                argv=(sys.executable, "-m", "blocwatch", service.command),
                env=env,
                metrics_url=f"http://{shown_host}:{port}/metrics",
                log_path=run_dir / f"{service.name}.log",
            )
        )
    return plans
