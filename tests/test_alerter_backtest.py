"""`blocwatch rules test`: replay a recorded news.tagged file through the rules, offline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from blocwatch.cli import main
from blocwatch.core.codec import encode

from .alerting import T0, tagged

RULES = """
rules:
  - name: kp-surge
    severity: critical
    filter: {labels: [escalation], regions: [Korean Peninsula]}
    threshold: 3
    corroboration: 2
    group_by: [region]
    window: 1h
    cooldown: 10m
    renotify_growth: 2
    resolve: true
silences:
  - matchers: {rule: kp-surge, region: Baltic}
    starts_at: 2026-01-01T00:00:00Z
    ends_at: 2027-01-01T00:00:00Z
    comment: annual BALTOPS exercise
"""


def write_recording(path: Path) -> None:
    """Three corroborated stories in 20 minutes (plus a lone report), then two quiet hours."""
    items = []
    for n in range(3):
        at = T0 + timedelta(minutes=10 * n)
        items.append(tagged(f"kp{n}a", story=f"kp{n}", source="Yonhap", at=at))
        items.append(tagged(f"kp{n}b", story=f"kp{n}", source="NK News", at=at))
    items.append(tagged("lone", source="Blog", at=T0 + timedelta(minutes=25)))
    items.append(tagged("baltic", regions=("Baltic",), at=T0 + timedelta(minutes=26)))
    items.append(tagged("quiet", tags=False, at=T0 + timedelta(hours=2)))
    lines = [encode(item).decode() for item in items]
    lines.insert(3, '{"not": "a tagged item"}')
    path.write_text("\n".join(lines) + "\n")


def test_back_test_prints_what_would_fire_and_when(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    events = tmp_path / "tagged.jsonl"
    write_recording(events)
    assert main(["rules", "test", str(rules), "--events", str(events)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if not line.startswith("    ")]
    assert lines[0].startswith("2026-11-23T12:20:00Z  FIRING            critical kp-surge")
    assert "[region=Korean Peninsula]  stories=3 sources=2 items=6" in lines[0]
    assert lines[1].startswith("2026-11-23T14:00:00Z  RESOLVED")
    assert lines[2] == (
        "9 events replayed: 1 notifications would fire, 1 other decisions (resolved/silenced); "
        "0 too late, 1 unreadable lines"
    )
    assert "tagged.jsonl:4: invalid TaggedItem" in captured.err


def test_back_test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    events = tmp_path / "tagged.jsonl"
    write_recording(events)
    assert main(["rules", "test", str(rules), "--events", str(events), "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert '"kind": "firing"' in out[0]
    assert '"at": "2026-11-23T12:20:00+00:00"' in out[0]
