"""Back-testing: replay recorded tagged events through the rules with their own timestamps.

The replay clock is stream time: the newest event time seen so far. Items that arrive out of
order are evaluated at that clock, so the allowed lateness applies exactly as in the service.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from blocwatch.alerter.evaluation import Decision, Engine, event_time
from blocwatch.alerter.rules import RulesFile
from blocwatch.alerter.silences import Silence, from_config
from blocwatch.core.codec import decode
from blocwatch.core.errors import ConfigError, ContractError
from blocwatch.core.models import TaggedItem

__all__ = ["BacktestResult", "backtest", "decision_json", "format_decision", "read_events"]

TICK = timedelta(minutes=1)


@dataclass
class BacktestResult:
    decisions: list[tuple[datetime, Decision]]
    events: int
    skipped: list[str]
    late: int


def read_events(path: Path) -> Iterator[TaggedItem | str]:
    """TaggedItems from a JSONL file; a line that is not one yields its error text instead."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read events file {path}: {exc.strerror}",
            "pass a JSONL file of TaggedItems (e.g. recorded with `blocwatch tail news.tagged`)",
        ) from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield decode(TaggedItem, line)
            except ContractError as exc:
                yield f"{path}:{number}: {exc.message}"


def backtest(
    rules: RulesFile,
    events: Iterable[TaggedItem | str],
    *,
    lateness: timedelta = timedelta(minutes=5),
    silences: list[Silence] | None = None,
) -> BacktestResult:
    """Which alerts would have fired, and when (stream time), for these recorded events."""
    engine = Engine(rules, lateness=lateness)
    active = silences if silences is not None else from_config(rules.silences)
    result = BacktestResult([], 0, [], 0)
    clock: datetime | None = None
    last_tick: datetime | None = None
    for event in events:
        if isinstance(event, str):
            result.skipped.append(event)
            continue
        result.events += 1
        when = event_time(event)
        clock = when if clock is None else max(clock, when)
        result.decisions += [(clock, d) for d in engine.ingest(event, clock, active)]
        if last_tick is None or clock - last_tick >= TICK:
            result.decisions += [(clock, d) for d in engine.tick(clock, active)]
            last_tick = clock
    if clock is not None:
        result.decisions += [(clock, d) for d in engine.tick(clock, active)]
    result.late = engine.late_items
    return result


def format_decision(when: datetime, decision: Decision) -> str:
    alert = decision.alert
    state = "SILENCED" if decision.silenced else alert.status.upper()
    if decision.kind in ("grown", "repeat") and not decision.silenced:
        state = f"RENOTIFY({decision.kind})"
    group = " ".join(f"{k}={v}" for k, v in alert.group.items()) or "-"
    return (
        f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')}  {state:<17} {alert.severity:<8} {alert.rule}  "
        f"[{group}]  stories={alert.counts.stories} sources={alert.counts.sources} "
        f"items={alert.counts.items}\n    {alert.summary}"
    )


def decision_json(when: datetime, decision: Decision) -> str:
    return json.dumps(
        {
            "at": when.isoformat(),
            "kind": decision.kind,
            "silenced": decision.silenced,
            "alert": json.loads(decision.alert.model_dump_json()),
        }
    )
