"""Alerter commands: `alert`, `rules check|test`, `silence add|list|expire`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timedelta
from pathlib import Path

from blocwatch.alerter.backtest import backtest, decision_json, format_decision, read_events
from blocwatch.alerter.rules import load_rules, parse_duration
from blocwatch.alerter.service import Alerter, utc_now
from blocwatch.alerter.settings import AlerterSettings
from blocwatch.alerter.silences import Silence, from_config
from blocwatch.alerter.store import StateStore
from blocwatch.core.commands import run_until_signal
from blocwatch.core.errors import ConfigError
from blocwatch.core.logs import configure_logging
from blocwatch.core.metrics import new_registry
from blocwatch.core.settings import load_settings

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alert = subparsers.add_parser(
        "alert",
        help="run the alerter: news.tagged → rules → alerts topic and receivers",
        description="Consume news.tagged, evaluate the rules file, notify receivers and publish "
        "to the alerts topic. Receivers and secrets come from BLOCWATCH_ALERTER_* variables.",
    )
    alert.add_argument("--rules", type=Path, help="rules file (BLOCWATCH_ALERTER_RULES_FILE)")
    alert.set_defaults(run=_run_alert)

    rules = subparsers.add_parser("rules", help="check or back-test an alerting rules file")
    rule_commands = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = rule_commands.add_parser("check", help="validate a rules file and list its rules")
    check.add_argument("file", type=Path, help="YAML rules file")
    check.set_defaults(run=_run_rules_check)
    test = rule_commands.add_parser(
        "test",
        help="replay recorded tagged events and print which alerts would fire, and when",
    )
    test.add_argument("file", type=Path, help="YAML rules file")
    test.add_argument(
        "--events", type=Path, required=True, help="JSONL file of TaggedItems (news.tagged)"
    )
    test.add_argument("--lateness", default="5m", help="allowed lateness, e.g. 5m (default 5m)")
    test.add_argument("--json", action="store_true", help="one JSON object per decision")
    test.set_defaults(run=_run_rules_test)

    silence = subparsers.add_parser("silence", help="add, list or expire alert silences")
    silence_commands = silence.add_subparsers(
        dest="silence_command", metavar="ACTION", required=True
    )
    add = silence_commands.add_parser("add", help="mute alerts matching every KEY=VALUE")
    add.add_argument(
        "matchers",
        nargs="+",
        metavar="KEY=VALUE",
        help="rule=NAME, severity=…, region=…, dyad=…, or any rule label",
    )
    add.add_argument("--duration", default="2h", help="how long, e.g. 2h, 7d (default 2h)")
    add.add_argument("--starts", help="start time, ISO 8601 with zone (default now)")
    add.add_argument("--comment", default="", help="why (shown in `silence list`)")
    add.add_argument("--created-by", default="cli", help="who")
    add.add_argument("--data-dir", type=Path, help="state dir (BLOCWATCH_ALERTER_DATA_DIR)")
    add.set_defaults(run=_run_silence_add)
    listing = silence_commands.add_parser("list", help="list active (or all) silences")
    listing.add_argument("--all", action="store_true", help="include expired and future ones")
    listing.add_argument("--data-dir", type=Path, help="state dir (BLOCWATCH_ALERTER_DATA_DIR)")
    listing.set_defaults(run=_run_silence_list)
    expire = silence_commands.add_parser("expire", help="end a silence now")
    expire.add_argument("id", help="silence id (from `silence list`)")
    expire.add_argument("--data-dir", type=Path, help="state dir (BLOCWATCH_ALERTER_DATA_DIR)")
    expire.set_defaults(run=_run_silence_expire)


def _settings(args: argparse.Namespace) -> AlerterSettings:
    return load_settings(
        AlerterSettings,
        alerter_rules_file=getattr(args, "rules", None),
        alerter_data_dir=getattr(args, "data_dir", None),
    )


def _run_alert(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level)
    rules = load_rules(settings.rules_file)

    async def serve() -> None:
        alerter = Alerter(settings, rules, registry=new_registry("alerter"))
        async with alerter:
            print(
                f"alerter running: {len(rules.active_rules)} rules from "
                f"{settings.rules_file}; metrics on "
                f"http://{settings.metrics_host}:{settings.metrics_port}/metrics",
                flush=True,
            )
            await run_until_signal(alerter.wait())

    asyncio.run(serve())
    return 0


def _run_rules_check(args: argparse.Namespace) -> int:
    rules = load_rules(args.file)
    print(f"{args.file}: {len(rules.rules)} rules, {len(rules.silences)} silences — OK")
    for rule in rules.rules:
        state = "" if rule.enabled else " (disabled)"
        group = ",".join(rule.groups) or "-"
        print(f"  {rule.name:<32} {rule.type:<10} {rule.severity:<8} group_by={group}{state}")
    return 0


def _run_rules_test(args: argparse.Namespace) -> int:
    rules = load_rules(args.file)
    try:
        lateness = parse_duration(args.lateness)
    except ValueError as exc:
        raise ConfigError(f"--lateness: {exc}", "use e.g. --lateness 5m") from exc
    result = backtest(rules, read_events(args.events), lateness=lateness)
    for when, decision in result.decisions:
        print(decision_json(when, decision) if args.json else format_decision(when, decision))
    for problem in result.skipped:
        print(f"skipped {problem}", file=sys.stderr)
    if not args.json:
        firing = sum(
            1 for _, d in result.decisions if d.alert.status == "firing" and not d.silenced
        )
        print(
            f"{result.events} events replayed: {firing} notifications would fire, "
            f"{len(result.decisions) - firing} other decisions (resolved/silenced); "
            f"{result.late} too late, {len(result.skipped)} unreadable lines"
        )
    return 0


def _parse_matchers(values: list[str]) -> dict[str, str]:
    matchers = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"matcher {value!r} is not KEY=VALUE", "e.g. rule=kp-surge")
        matchers[key.strip()] = wanted.strip()
    return matchers


def _parse_time(value: str | None) -> datetime:
    if value is None:
        return utc_now()
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"--starts {value!r} is not ISO 8601", "e.g. 2026-03-01T00:00Z") from exc
    if when.tzinfo is None:
        raise ConfigError(f"--starts {value!r} has no time zone", "add Z or +00:00")
    return when


def _run_silence_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        duration = parse_duration(args.duration)
    except ValueError as exc:
        raise ConfigError(f"--duration: {exc}", "use e.g. --duration 7d") from exc
    if duration <= timedelta(0):
        raise ConfigError("--duration must be positive", "use e.g. --duration 7d")
    starts = _parse_time(args.starts)
    silence = Silence(
        id="",
        matchers=_parse_matchers(args.matchers),
        starts_at=starts,
        ends_at=starts + duration,
        comment=args.comment,
        created_by=args.created_by,
    )
    with StateStore(settings.state_file) as store:
        saved = store.add_silence(silence)
    print(f"silence {saved.id} added until {saved.ends_at.isoformat()}: {_show(saved)}")
    return 0


def _show(silence: Silence) -> str:
    matchers = " ".join(f"{k}={v}" for k, v in silence.matchers.items())
    return f"{matchers}  ({silence.created_by}: {silence.comment or 'no comment'})"


def _run_silence_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    now = utc_now()
    with StateStore(settings.state_file) as store:
        stored = store.silences()
    config = from_config(load_rules(settings.rules_file).silences)
    shown = 0
    for silence in [*config, *stored]:
        if not args.all and not silence.active(now):
            continue
        state = (
            "active" if silence.active(now) else ("expired" if silence.ends_at <= now else "future")
        )
        print(
            f"{silence.id:<16} {state:<8} {silence.starts_at.isoformat()} → "
            f"{silence.ends_at.isoformat()}  {_show(silence)}"
        )
        shown += 1
    if not shown:
        print("no silences" + ("" if args.all else " active (use --all for expired ones)"))
    return 0


def _run_silence_expire(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.id.startswith("cfg-"):
        raise ConfigError(
            f"silence {args.id} comes from the rules file", "remove it from the rules file"
        )
    with StateStore(settings.state_file) as store:
        if not store.expire_silence(args.id, utc_now()):
            raise ConfigError(f"no silence with id {args.id}", "see `blocwatch silence list --all`")
    print(f"silence {args.id} expired")
    return 0
