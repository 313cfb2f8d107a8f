"""The operators' view is consistent with what the services expose.

Every present service is started as its real command against the session broker; its /metrics
is scraped and compared with the metrics the dashboards and alert rules use and with the README's
metrics table. A real Prometheus server (Debian's binary) scrapes running blocwatch endpoints and
answers queries through its HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.metrics import OpsServer, new_registry
from tests.ops import (
    DEPLOY,
    REPO,
    SERVICES,
    Exposed,
    MetricFamily,
    RunningService,
    alert_rules,
    dashboard_exprs,
    dashboard_variable_metrics,
    feed_server,
    metric_names,
    parse_exposition,
    present_services,
    rule_exprs,
    scrape,
    service_env,
    start_service,
    substitute_grafana_variables,
    wait_until,
)

CORE_METRICS = {"blocwatch_build_info", "blocwatch_ready"}
# danielqsj/kafka-exporter's series the Kafka dashboard and the lag alert use.
KAFKA_EXPORTER_METRICS = {
    "kafka_brokers",
    "kafka_consumergroup_lag",
    "kafka_consumergroup_lag_sum",
    "kafka_consumergroup_current_offset_sum",
    "kafka_consumergroup_members",
    "kafka_topic_partition_current_offset",
}
# Series Prometheus itself records for every scrape target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds"}
START_TIMEOUT_S = 90.0
TRAFFIC_WAIT_S = 30.0


def _core_exposure() -> Exposed:
    """What every service's registry carries: new_registry plus OpsServer's readiness gauge."""
    registry = new_registry("core")
    OpsServer(registry, "127.0.0.1", 0)
    return parse_exposition(generate_latest(registry).decode())


def _sample(url: str, name: str) -> bool:
    return re.search(rf"^{name}(\{{.*\}})? [1-9]", scrape(url), re.M) is not None


@pytest.fixture(scope="module")
def running_services(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[RunningService]]:
    """Every present service as its real `blocwatch` command on the session broker, the
    collector polling a real local feed, each with its metrics endpoint answering."""
    services = present_services()
    if not services:
        yield []
        return
    workdir = tmp_path_factory.mktemp("services")
    with feed_server() as feed_url:
        feeds = workdir / "feeds.yaml"
        feeds.write_text(yaml.safe_dump({"feeds": [{"name": "ops-feed", "url": feed_url}]}))
        env = {
            "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "BLOCWATCH_TOPIC_PREFIX": f"ops{free_port()}.",
            "BLOCWATCH_LOG_LEVEL": "WARNING",
            "BLOCWATCH_COLLECTOR_FEEDS_FILE": str(feeds),
            "BLOCWATCH_COLLECTOR_ALLOW_PRIVATE_ADDRESSES": "true",
            "BLOCWATCH_COLLECTOR_DATA_DIR": str(workdir / "collector"),
            "BLOCWATCH_PROCESSOR_DATA_DIR": str(workdir / "processor"),
            "BLOCWATCH_ALERTER_DATA_DIR": str(workdir / "alerter"),
            "BLOCWATCH_ALERTER_CONSOLE": "false",
            "BLOCWATCH_CONSOLE_PORT": str(free_port()),
        }
        created = subprocess.run(
            [sys.executable, "-m", "blocwatch", "topics", "create"],
            env=service_env(env, services[0], 0),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert created.returncode == 0, created.stderr
        running = [start_service(service, env, free_port(), workdir) for service in services]
        try:
            for service in running:
                wait_until(
                    f"{service.service.name} /metrics",
                    lambda s=service: f"blocwatch_{s.service.name}_" in _alive_scrape(s),
                    START_TIMEOUT_S,
                )
            _wait_for_traffic(running)
            yield running
        finally:
            for service in running:
                service.stop()


def _alive_scrape(service: RunningService) -> str:
    """Scrape a service, failing at once (with its log) when its process has exited."""
    if service.process.poll() is not None:
        pytest.fail(f"{service.service.name} exited:\n{service.log_tail()}")
    return scrape(service.metrics_url)


def _wait_for_traffic(running: list[RunningService]) -> None:
    """Labelled metrics only show their labels once counted: let the feed flow through.

    The collector's first poll is required. The processor counts items and their tags together,
    so its first items are waited for with a deadline but not required (label sets are then
    checked on whatever samples exist)."""
    by_name = {service.service.name: service for service in running}
    collector = by_name.get("collector")
    if collector is not None:
        wait_until(
            "the collector's first fetch",
            lambda: _sample(collector.metrics_url, "blocwatch_collector_fetches_total"),
            START_TIMEOUT_S,
        )
    processor = by_name.get("processor")
    if collector is None or processor is None:
        return
    deadline = time.monotonic() + TRAFFIC_WAIT_S
    while time.monotonic() < deadline:
        if _sample(processor.metrics_url, "blocwatch_processor_items_total"):
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def exposed(running_services: list[RunningService]) -> dict[str, Exposed]:
    """Scraped /metrics per service name, plus the core registry under "core"."""
    found = {"core": _core_exposure()}
    for service in running_services:
        assert service.process.poll() is None, service.log_tail()
        found[service.service.name] = parse_exposition(scrape(service.metrics_url))
    return found


def _owner(metric: str) -> str | None:
    if any(metric.startswith(core) for core in CORE_METRICS):
        return "core"
    for service in SERVICES:
        if metric.startswith(f"blocwatch_{service.name}_"):
            return service.name
    return None


def test_every_service_is_checked() -> None:
    absent = [service.name for service in SERVICES if service not in present_services()]
    if absent:
        pytest.skip(f"not on this branch yet, their metrics are unchecked: {', '.join(absent)}")


def test_present_services_expose_build_info_and_readiness(
    exposed: dict[str, Exposed], running_services: list[RunningService]
) -> None:
    for service in running_services:
        families = exposed[service.service.name].families
        assert set(families) >= CORE_METRICS
        assert families["blocwatch_build_info"].labels == {"service", "version"}
        body = scrape(service.metrics_url)
        assert f'blocwatch_build_info{{service="{service.service.name}"' in body
        assert re.search(r"^blocwatch_ready [01]\.0$", body, re.M)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        with error:  # close its socket: /readyz is polled while it answers 503
            return error.code


def test_every_service_serves_health_and_becomes_ready(
    running_services: list[RunningService],
) -> None:
    """/healthz answers while alive; /readyz turns 200 once Kafka is connected and, for
    consumers, partitions are assigned — and blocwatch_ready says the same."""
    for service in running_services:
        base = service.metrics_url.removesuffix("/metrics")
        assert _status(f"{base}/healthz") == 200
        readyz = f"{base}/readyz"
        wait_until(f"{service.service.name} /readyz", lambda u=readyz: _status(u) == 200, 60)
        assert re.search(r"^blocwatch_ready 1\.0$", scrape(service.metrics_url), re.M)


def test_exposed_metrics_follow_the_conventions(exposed: dict[str, Exposed]) -> None:
    for owner, exposure in exposed.items():
        for name, family in exposure.families.items():
            assert _owner(name) in {owner, "core"}, f"{owner} exposes {name}: wrong prefix"
            assert family.help.strip(), f"{name} has no help text"
            assert (family.type == "counter") == name.endswith("_total"), name
            if family.type in {"histogram", "summary"}:
                assert name.endswith(("_seconds", "_bytes")), f"{name}: not in base units"
            assert not family.labels & {"url", "id", "item_id", "link"}, f"{name}: unbounded"


def _referenced() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for expr in dashboard_exprs() + rule_exprs() + dashboard_variable_metrics():
        for name in metric_names(expr.expr):
            where.setdefault(name, []).append(expr.where)
    return where


def test_dashboards_and_rules_use_only_exposed_metrics(exposed: dict[str, Exposed]) -> None:
    unknown = {}
    for name, places in sorted(_referenced().items()):
        if not name.startswith("blocwatch_"):
            if name not in KAFKA_EXPORTER_METRICS | PROMETHEUS_SERIES:
                unknown[name] = places
            continue
        owner = _owner(name)
        if owner is None or (owner in exposed and name not in exposed[owner].sample_names):
            unknown[name] = places
    assert not unknown, "referenced but not exposed:\n" + "\n".join(
        f"  {name}: {places[0]}" for name, places in unknown.items()
    )


def test_the_consistency_check_catches_a_typo(exposed: dict[str, Exposed]) -> None:
    assert "blocwatch_build_info" in exposed["core"].sample_names
    assert "blocwatch_build_infos" not in exposed["core"].sample_names
    assert _owner("blocwatch_colector_items_total") is None


def _readme_metrics() -> dict[str, tuple[str, set[str], str]]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`blocwatch_\w+`", cells[0]):
            name, kind, labels, meaning = cells
            rows[name.strip("`")] = (kind, set(re.findall(r"`(\w+)`", labels)), meaning)
    return rows


def _table_row(family: MetricFamily) -> str:
    labels = ", ".join(f"`{label}`" for label in sorted(family.labels))
    return f"| `{family.name}` | {family.type} | {labels} | {family.help} |"


def test_readme_metrics_table_matches_what_services_expose(exposed: dict[str, Exposed]) -> None:
    table = _readme_metrics()
    documented_owners = {_owner(name) for name in table}
    assert None not in documented_owners, "README documents a metric of no known service"
    for owner, exposure in exposed.items():
        owned = {name for name in table if _owner(name) == owner}
        families = {name for name in exposure.families if _owner(name) == owner}
        missing = [_table_row(exposure.families[name]) for name in sorted(families - owned)]
        assert owned == families, (
            f"README ## Metrics vs /metrics of {owner}: stale {sorted(owned - families)}, "
            "missing (rows generated from /metrics; labels are those seen so far):\n"
            + "\n".join(missing)
        )
        for name, family in exposure.families.items():
            kind, labels, _ = table[name]
            assert kind == family.type, f"{name}: README says {kind}, exposed {family.type}"
            assert family.labels <= labels, f"{name}: labels {sorted(family.labels)}"


def test_every_referenced_blocwatch_metric_is_documented() -> None:
    table = _readme_metrics()
    documented = {
        name + suffix
        for name, (kind, _, _) in table.items()
        for suffix in (("_bucket", "_sum", "_count") if kind == "histogram" else ("",))
    }
    missing = {name for name in _referenced() if name.startswith("blocwatch_")} - documented
    assert not missing, f"used in dashboards/rules but not in README ## Metrics: {missing}"


# --- a real Prometheus ---------------------------------------------------------------------------


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        answer = json.loads(scrape(url))
    except urllib.error.HTTPError as error:
        if error.code not in (400, 422):  # e.g. 503 while the server starts: retried
            raise
        pytest.fail(f"Prometheus rejects {promql!r}: {error.read().decode()}")
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _rules_loaded(base: str) -> list[dict[str, Any]]:
    answer = json.loads(scrape(f"{base}/api/v1/rules"))
    return [rule for group in answer["data"]["groups"] for rule in group["rules"]]


def _evaluated_rules(base: str) -> list[dict[str, Any]]:
    """The loaded rules once each has been evaluated at least once, else []."""
    loaded = _rules_loaded(base)
    evaluated = all(not rule["lastEvaluation"].startswith("0001") for rule in loaded)
    return loaded if evaluated else []


@contextlib.contextmanager
def _prometheus(binary: str, workdir: Path) -> Iterator[str]:
    """Debian's Prometheus on a free port with workdir/prometheus.yml; yields its base URL."""
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


async def test_real_prometheus_scrapes_blocwatch_and_loads_the_rules(
    tmp_path: Path, running_services: list[RunningService]
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: `make system-deps` installs Debian's package")
    registry = new_registry("ops-test")
    async with OpsServer(registry, "127.0.0.1", 0) as ops:
        jobs = {"blocwatch-ops-test": f"127.0.0.1:{ops.port}"}
        jobs.update({s.service.job: f"127.0.0.1:{s.port}" for s in running_services})
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DEPLOY / "prometheus" / "rules" / "*.yml")],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in jobs.items()
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        with _prometheus(binary, tmp_path) as base:
            series = await asyncio.to_thread(
                wait_until,
                "Prometheus to scrape blocwatch_build_info from every target",
                lambda: len(r := _query(base, "blocwatch_build_info")) == len(jobs) and r,
                60.0,
            )
            services = {s["metric"]["job"]: s["metric"]["service"] for s in series}
            assert services["blocwatch-ops-test"] == "ops-test"
            for running in running_services:
                assert services[running.service.job] == running.service.name
            ready = _query(base, 'blocwatch_ready{job="blocwatch-ops-test"}')
            assert ready[0]["value"][1] == "1"
            up = _query(base, 'up{job=~"blocwatch-.*"} == 1')
            assert {s["metric"]["job"] for s in up} == set(jobs)
            rules = await asyncio.to_thread(
                wait_until, "every alert rule evaluated", lambda: _evaluated_rules(base), 60.0
            )
            assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
            assert all(r["health"] == "ok" for r in rules), rules
            for expr in dashboard_exprs():
                _query(base, substitute_grafana_variables(expr.expr))  # evaluates without error
