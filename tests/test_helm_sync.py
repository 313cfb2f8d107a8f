"""The chart's copies of files owned elsewhere stay identical to their sources.

Helm can only read files inside the chart directory, so `helm/blocwatch/files/` holds copies of
the Prometheus rules and Grafana dashboards in `deploy/` and of the default feeds and rules files
the services ship. These tests fail when a source changes without its copy (fix: copy it again),
and check that the chart renders whatever the copies hold, unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from blocwatch.cli import SETTINGS_CLASSES

from .conftest import REPO

CHART = REPO / "helm" / "blocwatch"
FILES = CHART / "files"
# (source directory in the repo, the chart's copy, file pattern)
COPIED_DIRS = [
    pytest.param(REPO / "deploy/prometheus/rules", FILES / "prometheus", "*.yml", id="rules"),
    pytest.param(
        REPO / "deploy/grafana/dashboards", FILES / "dashboards", "*.json", id="dashboards"
    ),
]

RULES = """\
groups:
  - name: blocwatch-test
    rules:
      - alert: BlocwatchFeedFailing
        expr: increase(blocwatch_collector_fetches_total{result!="ok"}[15m]) > 0
        for: 30m
        labels:
          severity: warning
        annotations:
          summary: "feed {{ $labels.feed }} failing"
"""


def contents(directory: Path, pattern: str) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(directory.glob(pattern))}


@pytest.mark.parametrize(("source", "copy", "pattern"), COPIED_DIRS)
def test_chart_copies_equal_deploy(source: Path, copy: Path, pattern: str) -> None:
    if not contents(source, pattern):
        pytest.skip(f"{source.relative_to(REPO)} has no {pattern} yet")
    assert contents(copy, pattern) == contents(source, pattern), (
        f"copy again: rm -f {copy.relative_to(REPO)}/{pattern} && "
        f"cp {source.relative_to(REPO)}/{pattern} {copy.relative_to(REPO)}/"
    )


def shipped_default(field: str) -> Path | None:
    """The file a settings field falls back to: its default, or the settings module's
    `DEFAULT_<NAME>` constant when the field defaults to None (e.g. DEFAULT_FEEDS_FILE)."""
    for cls in SETTINGS_CLASSES:
        info = cls.model_fields.get(field)
        if info is None:
            continue
        default = info.get_default(call_default_factory=True)
        if default is None:
            constant = "DEFAULT_" + field.split("_", 1)[1].upper()
            default = getattr(sys.modules[cls.__module__], constant, None)
        return Path(default) if default else None
    return None


@pytest.mark.parametrize(
    ("field", "copy"),
    [
        ("collector_feeds_file", FILES / "config" / "feeds.yaml"),
        ("alerter_rules_file", FILES / "config" / "rules.yaml"),
    ],
)
def test_default_config_files_are_the_shipped_ones(field: str, copy: Path) -> None:
    source = shipped_default(field)
    if source is None or not source.is_file():
        pytest.skip(f"no settings field {field} with a shipped default file yet")
    assert copy.read_text() == source.read_text(), f"copy again: cp {source} {copy}"


def test_pods_run_as_the_image_user() -> None:
    dockerfile = REPO / "deploy" / "Dockerfile"
    if not dockerfile.is_file():
        pytest.skip("deploy/Dockerfile not there yet")
    users = re.findall(r"^USER\s+(\d+)(?::(\d+))?\s*$", dockerfile.read_text(), re.MULTILINE)
    assert users, "the Dockerfile should name a numeric USER (runAsNonRoot checks it)"
    uid, gid = users[-1]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for context in (values["podSecurityContext"], values["securityContext"]):
        assert context["runAsUser"] == int(uid)
        if gid:
            assert context["runAsGroup"] == int(gid)


# --- rendering what the copies hold ------------------------------------------------------------


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """A copy of the chart whose files/ the test may change."""
    target = tmp_path / "blocwatch"
    shutil.copytree(CHART, target)
    return target


def render(chart_dir: Path, values: dict[str, Any]) -> Iterator[dict[str, Any]]:
    helm_python.disable_logging()
    with helm_python.Chart.load(chart_dir) as chart:
        rendered = chart.render(values, name="bw", namespace="news")
    for path, text in rendered.items():
        if not path.endswith("NOTES.txt"):
            yield from (doc for doc in yaml.safe_load_all(text) if doc)


def of_kind(chart_dir: Path, values: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in render(chart_dir, values) if obj["kind"] == kind]


def test_prometheus_rule_carries_every_rules_file_unchanged(chart_copy: Path) -> None:
    rules_dir = chart_copy / "files" / "prometheus"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "zz-test.yml").write_text(RULES)
    expected = []
    for text in contents(rules_dir, "*.yml").values():
        expected.extend(yaml.safe_load(text)["groups"])
    (rule,) = of_kind(chart_copy, {"prometheusRule": {"enabled": True}}, "PrometheusRule")
    assert rule["spec"]["groups"] == expected
    # Prometheus' own templating reaches Prometheus: Helm did not evaluate it.
    assert "{{ $labels.feed }}" in json.dumps(rule["spec"])


def test_without_rules_or_dashboards_nothing_is_rendered(chart_copy: Path) -> None:
    shutil.rmtree(chart_copy / "files" / "prometheus", ignore_errors=True)
    shutil.rmtree(chart_copy / "files" / "dashboards", ignore_errors=True)
    values = {"prometheusRule": {"enabled": True}, "grafanaDashboards": {"enabled": True}}
    kinds = {obj["kind"] for obj in render(chart_copy, values)}
    assert "PrometheusRule" not in kinds
    assert "Deployment" in kinds
    dashboards = [
        obj
        for obj in render(chart_copy, values)
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].endswith("-dashboards")
    ]
    assert not dashboards
    helm_python.disable_logging()
    with helm_python.Chart.load(chart_copy) as chart:
        notes = chart.render(values, name="bw", namespace="news")["blocwatch/templates/NOTES.txt"]
    assert "no rule files" in notes
    assert "no dashboards" in notes


def test_dashboards_config_map_has_the_sidecar_label(chart_copy: Path) -> None:
    dashboards_dir = chart_copy / "files" / "dashboards"
    dashboards_dir.mkdir(exist_ok=True)
    dashboard = {"title": "test", "panels": [{"expr": 'sum(rate(x{a="{{b}}"}[5m]))'}]}
    (dashboards_dir / "zz-test.json").write_text(json.dumps(dashboard))
    values = {"grafanaDashboards": {"enabled": True, "folder": "News"}}
    (config_map,) = [
        obj
        for obj in of_kind(chart_copy, values, "ConfigMap")
        if obj["metadata"]["name"].endswith("-dashboards")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "News"
    assert set(config_map["data"]) == set(contents(dashboards_dir, "*.json"))
    assert json.loads(config_map["data"]["zz-test.json"]) == dashboard


def test_chart_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    """The chart's rules, after Helm's YAML round trip, are still valid Prometheus rules."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    values = {"prometheusRule": {"enabled": True}}
    rules = of_kind(CHART, values, "PrometheusRule")
    if not rules:
        pytest.skip("the chart has no rule files yet")
    (rule,) = rules
    rules_file = tmp_path / "chart-rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_fit_in_one_config_map() -> None:
    values = {"grafanaDashboards": {"enabled": True}}
    maps = [
        obj
        for obj in of_kind(CHART, values, "ConfigMap")
        if obj["metadata"]["name"].endswith("-dashboards")
    ]
    if not maps:
        pytest.skip("the chart has no dashboards yet")
    (config_map,) = maps
    size = sum(len(key) + len(text.encode()) for key, text in config_map["data"].items())
    assert size < 1024 * 1024, "ConfigMaps hold at most 1 MiB: split the dashboards"
    for text in config_map["data"].values():
        assert json.loads(text)["title"]


def test_packaged_chart_is_self_contained(tmp_path: Path) -> None:
    """`helm package` output renders like the directory: every copied file travels with it."""
    helm_python.disable_logging()
    archive = helm_python.package(CHART, destination=tmp_path)
    values = yaml.safe_load((CHART / "ci" / "full-values.yaml").read_text())
    with helm_python.Chart.load(archive) as packaged, helm_python.Chart.load(CHART) as directory:
        assert packaged.render(values, name="bw") == directory.render(values, name="bw")
        names = {entry["name"] for entry in packaged.files}
    assert not {name for name in names if name.startswith("ci/")}, "ci/ is not shipped"
    assert {"files/config/feeds.yaml", "files/config/rules.yaml"} <= names
