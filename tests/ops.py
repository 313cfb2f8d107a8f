"""Helpers for the operators' tests: deploy/ files, PromQL, promtool, services' /metrics.

The services are discovered from `blocwatch.cli.SETTINGS_CLASSES`: a service is present when its
settings class (with a `<service>_metrics_port` field) is registered, so these tests track
whatever services exist on the branch and tighten by themselves as services land.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from blocwatch.cli import SETTINGS_CLASSES
from blocwatch.core.settings import env_name

__all__ = [
    "DEPLOY",
    "SERVICES",
    "Exposed",
    "MetricFamily",
    "PromExpr",
    "RunningService",
    "alert_rules",
    "dashboard_exprs",
    "dashboards",
    "env_names",
    "feed_server",
    "metric_names",
    "parse_exposition",
    "present_services",
    "promtool",
    "rule_exprs",
    "scrape",
    "service_env",
    "settings_env_names",
    "start_service",
    "substitute_grafana_variables",
    "wait_until",
]

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


@dataclass(frozen=True)
class Service:
    """A long-running blocwatch service: its settings prefix, command and default port."""

    name: str
    command: tuple[str, ...]
    port: int

    @property
    def port_field(self) -> str:
        return f"{self.name}_metrics_port"

    @property
    def job(self) -> str:
        return f"blocwatch-{self.name}"


SERVICES = (
    Service("collector", ("collect",), 9401),
    Service("processor", ("process",), 9402),
    Service("alerter", ("alert",), 9403),
    Service("console", ("console",), 9404),
)


def settings_env_names() -> set[str]:
    """Every BLOCWATCH_* variable some registered settings class reads."""
    return {env_name(name) for cls in SETTINGS_CLASSES for name in cls.model_fields}


def present_services() -> list[Service]:
    """Services whose settings class is registered in the CLI on this branch."""
    fields = {name for cls in SETTINGS_CLASSES for name in cls.model_fields}
    return [service for service in SERVICES if service.port_field in fields]


def settings_default(field_name: str) -> Any:
    for cls in SETTINGS_CLASSES:
        info = cls.model_fields.get(field_name)
        if info is not None:
            return info.get_default(call_default_factory=True)
    raise KeyError(field_name)


# --- PromQL found in deploy/ --------------------------------------------------------------------


@dataclass(frozen=True)
class PromExpr:
    """One PromQL expression and where it lives (for readable failures)."""

    where: str
    expr: str


def dashboards() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        found[path.name] = json.loads(path.read_text())
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in _panels(board.get("panels", [])) if panel.get("type") != "row"]


def dashboard_exprs() -> list[PromExpr]:
    """Every panel target's expression in every dashboard."""
    exprs = []
    for name, board in dashboards().items():
        for panel in dashboard_panels(board):
            for target in panel.get("targets", []):
                where = f"{name}: {panel.get('title')!r} {target.get('refId')}"
                exprs.append(PromExpr(where, str(target["expr"])))
    return exprs


def dashboard_variable_metrics() -> list[PromExpr]:
    """Metric names used by template variables (`label_values(metric, label)`)."""
    found = []
    for name, board in dashboards().items():
        for variable in board.get("templating", {}).get("list", []):
            query = variable.get("definition", "")
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
            assert match, f"{name}: variable {variable.get('name')}: unexpected query {query!r}"
            found.append(PromExpr(f"{name}: variable {variable['name']}", match.group(1)))
    return found


# Grafana's interval macros become fixed durations; dashboard variables only ever appear inside
# regex matchers (`label=~"$var"`), where "match everything" keeps the expression valid.
_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def substitute_grafana_variables(expr: str) -> str:
    for macro, value in _MACROS.items():
        expr = expr.replace(macro, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def rule_exprs() -> list[PromExpr]:
    return [
        PromExpr(f"rule {rule.get('alert') or rule.get('record')}", str(rule["expr"]))
        for rule in alert_rules()
    ]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NAME = re.compile(
    r"(?<![\w:])(?:blocwatch_|kafka_)[a-zA-Z0-9_:]*|(?<![\w:])(?:up|scrape_\w+)(?!\w)"
)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: blocwatch_*, kafka_*, up, scrape_* (strings removed).

    Label names never start with those prefixes in our queries, and function names and
    keywords never do, so a token scan is exact enough here; promtool checks the syntax.
    """
    return set(_NAME.findall(_STRING.sub('""', expr)))


# --- promtool -------------------------------------------------------------------------------------


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: `make system-deps` installs Debian's prometheus package")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# --- /metrics -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricFamily:
    """One exposed family: the name as declared (counters keep `_total`), type, help, labels."""

    name: str
    type: str
    help: str
    labels: frozenset[str]
    sample_names: frozenset[str]


@dataclass
class Exposed:
    families: dict[str, MetricFamily] = field(default_factory=dict)

    @property
    def sample_names(self) -> set[str]:
        return {name for family in self.families.values() for name in family.sample_names}


# The series names PromQL can select for each family type (text format 0.0.4).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def parse_exposition(text: str) -> Exposed:
    exposed = Exposed()
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):  # a counter's or histogram's creation time
            continue
        suffixes = _SUFFIXES.get(family.type, ("",))
        declared = family.name + ("_total" if family.type == "counter" else "")
        labels = {
            label
            for sample in family.samples
            for label in sample.labels
            if label not in ("le", "quantile")
        }
        exposed.families[declared] = MetricFamily(
            name=declared,
            type=family.type,
            help=family.documentation,
            labels=frozenset(labels),
            sample_names=frozenset(family.name + suffix for suffix in suffixes),
        )
    return exposed


def scrape(url: str, timeout_s: float = 5.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as error:
        raise _detached(error) from None
    return body.decode()


def _detached(error: urllib.error.HTTPError) -> urllib.error.HTTPError:
    """The same HTTP error with its body read and its socket closed: callers that retry on it
    (wait_until) would otherwise leak one open socket per attempt (a ResourceWarning)."""
    with error:
        body = error.read()
    return urllib.error.HTTPError(
        error.url, error.code, error.reason, error.headers, io.BytesIO(body)
    )


def wait_until(what: str, check: Any, timeout_s: float, interval_s: float = 0.2) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what} (last error: {last_error})")


# --- running services -----------------------------------------------------------------------------


@dataclass
class RunningService:
    service: Service
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def service_env(base: dict[str, str], service: Service, port: int) -> dict[str, str]:
    """The process environment plus `base`, keeping only BLOCWATCH_* variables that exist."""
    known = settings_env_names()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BLOCWATCH_")}
    env.update({key: value for key, value in base.items() if key in known})
    env["BLOCWATCH_METRICS_HOST"] = "127.0.0.1"
    env[env_name(service.port_field)] = str(port)
    return env


def start_service(
    service: Service, env: dict[str, str], port: int, workdir: Path
) -> RunningService:
    """Start `blocwatch <command>` as a subprocess: the real command, its real OpsServer."""
    log = workdir / f"{service.name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "blocwatch", *service.command],
            env=service_env(env, service, port),
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return RunningService(service, process, port, log)


# --- a real local feed server (stdlib, in a thread: the fixtures using it are synchronous) -------

FEED_ITEMS = (
    ("ops-1", "North Korea test-fires ballistic missile into the sea, Seoul says"),
    ("ops-2", "Russia and North Korea sign mutual defence pact in Pyongyang"),
    ("ops-3", "EU adopts new sanctions package against Iranian drone makers"),
)


def _rss() -> bytes:
    items = "".join(
        f"<item><guid isPermaLink='false'>{guid}</guid><title>{escape(title)}</title>"
        f"<link>https://news.example.org/{guid}</link><description>{escape(title)}.</description>"
        "<pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item>"
        for guid, title in FEED_ITEMS
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>ops</title>"
        f"<link>https://news.example.org/</link>{items}</channel></rss>"
    ).encode()


class _FeedHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = _rss()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is not a web server log."""


@contextlib.contextmanager
def feed_server() -> Iterator[str]:
    """Serve one RSS feed on a free 127.0.0.1 port; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    finally:
        server.shutdown()
        server.server_close()


def env_names(text: str) -> set[str]:
    return set(re.findall(r"\bBLOCWATCH_[A-Z0-9_]+", text))
