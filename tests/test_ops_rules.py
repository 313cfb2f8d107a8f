"""Prometheus alert rules in deploy/: promtool checks them, unit-tests them, and every alert has
annotations, a firing unit test and a runbook paragraph in the README."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.ops import DEPLOY, REPO, SERVICES, alert_rules, promtool

RULES = DEPLOY / "prometheus" / "rules"
UNIT_TESTS = DEPLOY / "prometheus" / "tests"


def _unit_tests() -> dict[Path, dict[str, Any]]:
    return {path: yaml.safe_load(path.read_text()) for path in sorted(UNIT_TESTS.glob("*.yml"))}


def _rules_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", *map(str, _rules_files()))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    done = promtool("test", "rules", *map(str, _unit_tests()))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rules_file_has_unit_tests() -> None:
    tested = {
        (path.parent / rule_file).resolve()
        for path, spec in _unit_tests().items()
        for rule_file in spec["rule_files"]
    }
    assert {path.resolve() for path in _rules_files()} <= tested


def test_every_alert_rule_fires_in_a_unit_test() -> None:
    """Each rule (alert name plus its static labels) has a test case where it fires."""
    fired = [
        (case["alertname"], alert.get("exp_labels", {}))
        for spec in _unit_tests().values()
        for test in spec["tests"]
        for case in test.get("alert_rule_test", [])
        for alert in case.get("exp_alerts") or []
    ]
    for rule in alert_rules():
        labels = rule.get("labels", {})
        assert any(
            name == rule["alert"] and labels.items() <= got.items() for name, got in fired
        ), f"no promtool unit test fires {rule['alert']} {labels}"


def test_every_alert_has_annotations_severity_and_a_runbook() -> None:
    readme = (REPO / "README.md").read_text()
    operations = readme.split("\n## Operations", 1)[-1].split("\n## ", 1)[0]
    for rule in alert_rules():
        name = rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), name
        assert annotations.get("description"), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert annotations.get("runbook") == f"README.md#{name.lower()}", name
        paragraph = re.search(rf"^#### {name}\n\n(.+?)(?=\n#|\Z)", operations, re.M | re.S)
        assert paragraph, f"README has no runbook heading for {name}"
        assert len(paragraph.group(1).split()) > 30, f"README runbook for {name} is too short"


def test_prometheus_config_is_valid_with_the_rules(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(RULES / "*.yml")]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    done = promtool("check", "config", str(checked))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_scrape_jobs_cover_every_service_on_its_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    for service in SERVICES:
        assert targets[service.job] == [f"{service.name}:{service.port}"]
    assert targets["kafka-exporter"] == ["kafka-exporter:9308"]
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
