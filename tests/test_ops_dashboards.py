"""Grafana dashboards in deploy/: structure, units and descriptions, and PromQL that promtool
parses. Which metrics they may use is checked against the running services in test_ops_metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.ops import (
    DEPLOY,
    PromExpr,
    dashboard_exprs,
    dashboard_panels,
    dashboards,
    metric_names,
    promtool,
    rule_exprs,
    substitute_grafana_variables,
)

REQUIRED = {
    "blocwatch-pipeline": "Pipeline overview",
    "blocwatch-feeds": "Feed health",
    "blocwatch-kafka": "Kafka",
    "blocwatch-services": "Service health",
}


def test_required_dashboards_exist_with_stable_uids() -> None:
    boards = dashboards()
    uids = {board["uid"]: board["title"] for board in boards.values()}
    for uid, title in REQUIRED.items():
        assert uid in uids
        assert title in uids[uid]
        assert f"{uid}.json" in boards
    assert len(uids) == len(boards), "dashboard uids must be unique"


def test_every_panel_has_a_unit_a_description_and_queries() -> None:
    for name, board in dashboards().items():
        panels = dashboard_panels(board)
        assert len(panels) >= 4, name
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels:
            where = f"{name}: {panel['title']!r}"
            assert panel.get("description", "").strip(), f"{where} has no description"
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where} has no unit"
            assert panel.get("targets"), f"{where} has no query"
            assert all(target["expr"].strip() for target in panel["targets"]), where


def test_panels_fit_the_grid_without_overlapping() -> None:
    for name, board in dashboards().items():
        taken: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']} is too wide"
            cells = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & taken, f"{name}: {panel['title']} overlaps another panel"
            taken |= cells


def test_legends_use_labels_the_query_keeps() -> None:
    """`{{label}}` in a legend must survive the query's aggregation (`by (...)`)."""
    for name, board in dashboards().items():
        for panel in dashboard_panels(board):
            for target in panel["targets"]:
                kept = re.findall(r"\bby \(([^)]*)\)", target["expr"])
                if not kept:
                    continue  # no aggregation: the series keep all their labels
                labels = {label.strip() for group in kept for label in group.split(",")}
                for used in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                    assert used in labels, f"{name}: {panel['title']!r} legend {used!r}"


def test_dashboards_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    for name, board in dashboards().items():
        for panel in dashboard_panels(board):
            assert panel["datasource"]["uid"] == uid, f"{name}: {panel['title']}"
            assert all(target["datasource"]["uid"] == uid for target in panel["targets"])


def test_dashboard_variables_appear_only_in_regex_matchers() -> None:
    for expr in dashboard_exprs():
        without_macros = re.sub(r"\$__\w+", "", expr.expr)
        for match in re.finditer(r"\$\{?\w+\}?", without_macros):
            before = without_macros[: match.start()]
            assert before.endswith('=~"'), f"{expr.where}: {match.group()} outside =~"


def test_grafana_variables_become_valid_promql() -> None:
    assert (
        substitute_grafana_variables('rate(x{feed=~"$feed"}[$__rate_interval])')
        == 'rate(x{feed=~".*"}[5m])'
    )


def _check_parses(exprs: list[PromExpr], tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule; failures name the panel."""
    rules = [
        {"record": f"blocwatch:check_expr:{index}", "expr": substitute_grafana_variables(e.expr)}
        for index, e in enumerate(exprs)
    ]
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    if done.returncode != 0:
        output = done.stdout + done.stderr
        bad = [e for i, e in enumerate(exprs) if re.search(rf"\brule {i + 1}\b", output)]
        pytest.fail(f"promtool rejects: {[e.where for e in bad] or output}\n{output}")


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) > 30
    _check_parses(exprs, tmp_path)


def test_a_broken_expression_is_caught(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="broken"):
        _check_parses([PromExpr("broken", "sum(rate(blocwatch_x_total[5m])")], tmp_path)


def test_metric_names_are_found_outside_strings() -> None:
    expr = (
        'sum by (feed) (rate(blocwatch_collector_fetches_total{result!~"blocwatch_no"}[5m]))'
        ' / on() group_left kafka_brokers + up{job="blocwatch-alerter"} + scrape_duration_seconds'
    )
    assert metric_names(expr) == {
        "blocwatch_collector_fetches_total",
        "kafka_brokers",
        "up",
        "scrape_duration_seconds",
    }


def test_every_expression_selects_a_metric() -> None:
    for expr in dashboard_exprs() + rule_exprs():
        assert metric_names(expr.expr), f"{expr.where}: no metric found in {expr.expr!r}"
