"""deploy/docker-compose.yml and deploy/Dockerfile, checked as files (no Docker engine here):
they parse, reference files that exist, and set only variables the settings classes read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from blocwatch.cli import build_parser
from blocwatch.core.settings import ServiceSettings, env_name
from tests.ops import (
    DEPLOY,
    REPO,
    SERVICES,
    env_names,
    present_services,
    settings_default,
    settings_env_names,
)

COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _blocwatch_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: spec
        for name, spec in compose["services"].items()
        if spec.get("image", "").startswith("blocwatch")
    }


def _unchecked_prefixes() -> tuple[str, ...]:
    """Variables of services not on this branch yet cannot be checked against their class."""
    present = {service.name for service in present_services()}
    return tuple(
        f"BLOCWATCH_{service.name.upper()}_" for service in SERVICES if service.name not in present
    )


def _assert_known(variables: set[str], where: str) -> None:
    known = settings_env_names()
    if not present_services():  # ServiceSettings' own fields are read once a service registers
        known |= {env_name(name) for name in ServiceSettings.model_fields}
    unknown = {name for name in variables - known if not name.startswith(_unchecked_prefixes())}
    assert not unknown, f"{where} sets variables no settings class reads: {sorted(unknown)}"


def test_compose_has_every_part_of_the_deployment() -> None:
    services = _compose()["services"]
    assert {"kafka", "topics", "kafka-exporter", "prometheus", "grafana"} <= set(services)
    assert {service.name for service in SERVICES} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert "ZOOKEEPER" not in str(services["kafka"]).upper()
    assert services["kafka-exporter"]["image"].startswith("danielqsj/kafka-exporter:")


def test_blocwatch_services_build_from_the_dockerfile_and_run_real_commands() -> None:
    compose = _compose()
    parser = build_parser()
    commands = {
        name
        for action in parser._actions
        if hasattr(action, "choices") and isinstance(action.choices, dict)
        for name in action.choices
    }
    services = _blocwatch_services(compose)
    assert set(services) == {"topics", *(s.name for s in SERVICES)}
    absent = {s.name for s in SERVICES} - {s.name for s in present_services()}
    for name, spec in services.items():
        build = spec["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        if name not in absent:
            assert spec["command"][0] in commands, f"{name}: {spec['command']}"
    assert services["topics"]["command"] == ["topics", "create"]
    for service in SERVICES:
        assert services[service.name]["command"] == list(service.command)
        assert services[service.name]["depends_on"]["topics"]["condition"] == (
            "service_completed_successfully"
        )


def test_compose_sets_only_real_settings() -> None:
    compose = _compose()
    for name, spec in _blocwatch_services(compose).items():
        environment = spec["environment"]
        _assert_known(set(environment), f"compose service {name}")
        assert environment["BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert environment["BLOCWATCH_METRICS_HOST"] == "0.0.0.0"
    _assert_known(env_names(COMPOSE.read_text()), "docker-compose.yml")


def test_metrics_ports_match_the_services_defaults() -> None:
    services = _compose()["services"]
    present = {service.name for service in present_services()}
    for service in SERVICES:
        environment = services[service.name]["environment"]
        variable = f"BLOCWATCH_{service.port_field.upper()}"
        assert environment[variable] == str(service.port)
        assert f"{service.port}:{service.port}" in services[service.name]["ports"]
        assert f"{service.port}/readyz" in str(services[service.name]["healthcheck"]["test"])
        if service.name in present:
            assert settings_default(service.port_field) == service.port


def test_compose_mounts_files_that_exist() -> None:
    compose = _compose()
    for name, spec in compose["services"].items():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2][::-1] for v in grafana["volumes"] if v.startswith("."))
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "blocwatch.yml").read_text()
    )["providers"][0]
    dashboards_dir = COMPOSE.parent / mounts[provider["options"]["path"]]
    assert sorted(dashboards_dir.glob("*.json")), "provisioned dashboards directory is empty"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards_dir / Path(home).name).is_file()
    prometheus = compose["services"]["prometheus"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]


def _stages(dockerfile: str) -> list[list[str]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    lines = [line.strip() for line in joined.splitlines()]
    stages: list[list[str]] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_non_root_without_build_tools() -> None:
    text = DOCKERFILE.read_text()
    stages = _stages(text)
    assert len(stages) >= 2
    assert all(stage[0].startswith("FROM python:3.11-slim") for stage in stages)
    final = stages[-1]
    final_text = "\n".join(final)
    assert not re.search(r"apt-get install|build-essential|gcc|pip install", final_text)
    assert "COPY --from=build /opt/blocwatch /opt/blocwatch" in final
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert final[-2] == 'ENTRYPOINT ["blocwatch"]'
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    _assert_known(env_names(text), "Dockerfile")


def test_dockerignore_keeps_the_sources_in_the_context() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {"!services/", "!pyproject.toml", "!README.md"} <= set(ignore)
