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

from blocwatch.alerter.settings import AlerterSettings
from blocwatch.collector.settings import CollectorSettings
from blocwatch.console.settings import ConsoleSettings
from blocwatch.core.errors import ConfigError
from blocwatch.core.settings import ServiceSettings, env_name
from blocwatch.processor.settings import ProcessorSettings
from blocwatch.up.settings import UpSettings

__all__ = ["SERVICES", "Service", "ServicePlan", "plan_services"]


@dataclass(frozen=True)
class Service:
    """One pipeline stage as `up` knows it: its command and its own settings' variables."""

    name: str
    command: str
    settings: type[ServiceSettings]
    file_field: str | None = None  # the feeds or rules file it reads, shown in the banner
    default_file: str = "(shipped default)"
    page: tuple[str, str] | None = None  # (host field, port field) of a web page it serves

    @property
    def port_var(self) -> str:
        return env_name(f"{self.name}_metrics_port")

    @property
    def default_port(self) -> int:
        default = self.settings.model_fields[f"{self.name}_metrics_port"].default
        return int(default)

    @property
    def data_dir_var(self) -> str | None:
        field = f"{self.name}_data_dir"
        return env_name(field) if field in self.settings.model_fields else None

    @property
    def file_var(self) -> str | None:
        return env_name(self.file_field) if self.file_field else None


# Names and defaults come from each service's own settings class, so they cannot drift.
SERVICES: tuple[Service, ...] = (
    Service(
        "collector", "collect", CollectorSettings, "collector_feeds_file", "(shipped feeds.yaml)"
    ),
    Service("processor", "process", ProcessorSettings),
    Service("alerter", "alert", AlerterSettings, "alerter_rules_file", "(shipped rules.yaml)"),
    Service("console", "console", ConsoleSettings, page=("console_host", "console_port")),
)


@dataclass(frozen=True)
class ServicePlan:
    service: Service
    argv: tuple[str, ...]
    env: dict[str, str]
    metrics_url: str
    log_path: Path
    page_url: str | None = None

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def config_file(self) -> str | None:
        if self.service.file_var is None:
            return None
        return self.env.get(self.service.file_var) or self.service.default_file


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
    shown_host = base.get("BLOCWATCH_METRICS_HOST", "127.0.0.1")
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
                metrics_url=f"http://{_reachable(shown_host)}:{port}/metrics",
                log_path=run_dir / f"{service.name}.log",
                page_url=_page_url(service, env),
            )
        )
    return plans


def _reachable(host: str) -> str:
    """A wildcard bind address is reached on loopback from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _page_url(service: Service, env: Mapping[str, str]) -> str | None:
    if service.page is None:
        return None
    host_field, port_field = service.page
    fields = service.settings.model_fields
    host = env.get(env_name(host_field), str(fields[host_field].default))
    port = env.get(env_name(port_field), str(fields[port_field].default))
    return f"http://{_reachable(host)}:{port}/"
