"""Rules files: the shipped one is valid; errors name the file, the rule and the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from blocwatch.alerter.rules import load_rules, parse_duration, parse_rules
from blocwatch.alerter.settings import DEFAULT_RULES_FILE
from blocwatch.cli import main
from blocwatch.core.errors import ConfigError


def test_shipped_rules_cover_the_brief() -> None:
    rules = load_rules(DEFAULT_RULES_FILE)
    by_name = {rule.name: rule for rule in rules.rules}
    surge = by_name["korean-peninsula-escalation-surge"]
    assert (surge.count, surge.corroboration, surge.filter.regions) == (
        "stories", 2, ["Korean Peninsula"]
    )  # fmt: skip
    assert {r.type for r in rules.rules} == {"threshold", "spike", "any", "new_dyad", "flatline"}
    assert "RUS" in by_name["defence-pact-nuclear-power"].filter.actors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - name: kp\n    window: 1 hour\n",
         "test.yaml: rule 'kp': window: invalid duration '1 hour'"),
        ("rules:\n  - name: kp\n    filter: {labels: [friendship]}\n",
         "test.yaml: rule 'kp': filter.labels.0:"),
        ("rules:\n  - name: kp\n    group_by: [planet]\n", "test.yaml: rule 'kp': group_by.0:"),
        ("rules:\n  - name: kp\n    treshold: 3\n",
         "test.yaml: rule 'kp': treshold: Extra inputs are not permitted"),
        ("rules:\n  - name: ok\n  - threshold: 2\n", "test.yaml: rule #2: name: Field required"),
        ("rules:\n  - name: kp\n    window_type: hopping\n",
         "test.yaml: rule 'kp': (rule): hopping windows need a positive `hop`"),
        ("rules:\n  - name: a\n  - name: a\n",
         "test.yaml: rule 'a': name: used by more than one rule"),
        ("rules:\n  - name: kp\n    receivers: [pager]\n", "test.yaml: rule 'kp': receivers.0:"),
        ("rules: [\n", "test.yaml: not valid YAML"),
        ("- just a list\n", "test.yaml: expected a mapping"),
        ("silences:\n  - matchers: {rule: kp}\n    starts_at: 2026-01-02T00:00:00Z\n"
         "    ends_at: 2026-01-01T00:00:00Z\n", "test.yaml: silence #1: (rule): ends_at must be"),
    ],
)  # fmt: skip
def test_errors_name_file_rule_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_rules(text, "test.yaml")
    assert raised.value.message.startswith(message), raised.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800), ("2w", 1209600), (30, 30)],
)
def test_durations(value: object, expected: float) -> None:
    assert parse_duration(value) == timedelta(seconds=expected)


def test_rules_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(DEFAULT_RULES_FILE)]) == 0
    assert "7 rules" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: kp\n    threshold: -1\n")
    assert main(["rules", "check", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"blocwatch: error: {bad}: rule 'kp': threshold:")
    assert err[1].startswith("  fix: ")
