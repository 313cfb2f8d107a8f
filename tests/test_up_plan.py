"""What `blocwatch up` runs: pure planning of the child commands and their environments."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from blocwatch.core.errors import ConfigError
from blocwatch.up.plan import SERVICES, plan_services
from blocwatch.up.settings import UpSettings

RUN = Path("/run/bw")


def test_plans_every_service_in_pipeline_order_with_fresh_state() -> None:
    environ = {"PATH": "/bin", "BLOCWATCH_ALERTER_WEBHOOK_SECRET": "s3cret"}
    plans = plan_services(UpSettings(), environ, bootstrap_servers="127.0.0.1:1234", run_dir=RUN)
    assert [p.name for p in plans] == ["collector", "processor", "alerter", "console"]
    collector, processor, alerter, console = plans
    assert collector.argv == (sys.executable, "-m", "blocwatch", "collect")
    assert processor.argv[-1] == "process"
    assert alerter.argv[-1] == "alert"
    for plan in plans:
        assert plan.env["BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:1234"
        assert plan.env["BLOCWATCH_ALERTER_WEBHOOK_SECRET"] == "s3cret"  # passed through
        assert plan.log_path == RUN / f"{plan.name}.log"
    assert collector.env["BLOCWATCH_COLLECTOR_DATA_DIR"] == str(RUN / "collector")
    assert collector.metrics_url == "http://127.0.0.1:9401/metrics"
    assert processor.metrics_url == "http://127.0.0.1:9402/metrics"
    assert alerter.metrics_url == "http://127.0.0.1:9403/metrics"
    assert collector.config_file == "(shipped feeds.yaml)"
    assert processor.config_file is None
    assert console.argv[-1] == "console"
    assert console.page_url == "http://127.0.0.1:8080/"
    assert console.metrics_url == "http://127.0.0.1:9404/metrics"
    assert "BLOCWATCH_CONSOLE_DATA_DIR" not in console.env


def test_user_settings_win_over_defaults_and_overrides_win_over_both() -> None:
    environ = {
        "BLOCWATCH_COLLECTOR_DATA_DIR": "/keep/me",
        "BLOCWATCH_ALERTER_METRICS_PORT": "19403",
        "BLOCWATCH_METRICS_HOST": "0.0.0.0",
        "BLOCWATCH_COLLECTOR_FEEDS_FILE": "/mine.yaml",
    }
    overrides = {"BLOCWATCH_COLLECTOR_FEEDS_FILE": "/demo.yaml"}
    plans = plan_services(
        UpSettings(up_services="alerter,collector"),
        environ,
        bootstrap_servers="b:1",
        run_dir=RUN,
        overrides=overrides,
    )
    collector, alerter = plans  # pipeline order, whatever order the setting lists
    assert collector.env["BLOCWATCH_COLLECTOR_DATA_DIR"] == "/keep/me"
    assert collector.config_file == "/demo.yaml"
    assert alerter.metrics_url == "http://127.0.0.1:19403/metrics"


def test_unknown_service_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="BLOCWATCH_UP_SERVICES"):
        plan_services(
            UpSettings(up_services="collector,tagger"), {}, bootstrap_servers="b:1", run_dir=RUN
        )


def test_every_variable_up_sets_is_a_real_setting_of_its_service() -> None:
    for service in SERVICES:
        fields = service.settings.model_fields
        assert f"{service.name}_metrics_port" in fields
        if service.data_dir_var is not None:
            assert f"{service.name}_data_dir" in fields
        for field in service.page or ():
            assert field in fields
        if service.file_field is not None:
            assert service.file_field in fields
