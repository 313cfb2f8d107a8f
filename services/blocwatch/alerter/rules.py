"""The rules file: pydantic models for rules, filters and config silences, and their loading.

A rules file is YAML with `rules:` (a list) and optional `silences:`. Errors name the file, the
rule and the field, e.g. `rules.yaml: rule 'kp-surge': window: invalid duration '1 hour'`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from blocwatch.core.errors import ConfigError
from blocwatch.core.models import Label, Severity

__all__ = [
    "GROUP_KEYS",
    "RECEIVER_KINDS",
    "ConfigSilence",
    "Filter",
    "GroupKey",
    "Rule",
    "RuleType",
    "RulesFile",
    "load_rules",
    "parse_duration",
    "parse_rules",
]

GroupKey = Literal["region", "dyad", "actor", "tag", "subtype", "source", "feed", "story"]
GROUP_KEYS: tuple[str, ...] = GroupKey.__args__  # type: ignore[attr-defined]
RuleType = Literal["threshold", "spike", "any", "new_dyad", "flatline"]
CountBy = Literal["stories", "items", "sources"]
RECEIVER_KINDS = ("webhook", "apprise", "console")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
MAX_DURATION_S = 3650 * 86400
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """`90s`, `15m`, `1h`, `7d`, `2w`, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"invalid duration {value!r} (use e.g. 90s, 15m, 1h, 7d)")
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    if not 0 <= seconds <= MAX_DURATION_S:  # also rejects NaN
        raise ValueError(f"duration {value!r} must be between 0s and 3650d")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _upper_list(value: Any) -> Any:
    return [str(v).upper() for v in value] if isinstance(value, list) else value


def _dyad_list(value: Any) -> Any:
    """Dyads as `RUS-PRK` strings or [RUS, PRK] pairs; stored as sorted upper-case pairs."""
    if not isinstance(value, list):
        return value
    pairs = []
    for entry in value:
        parts = entry.split("-") if isinstance(entry, str) else entry
        if not isinstance(parts, list | tuple) or len(parts) != 2:
            raise ValueError(f"dyad {entry!r} must be 'A-B' or [A, B]")
        pairs.append("-".join(sorted(str(p).strip().upper() for p in parts)))
    return pairs


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Filter(_Strict):
    """Which items a rule looks at. Tag conditions must hold for one and the same tag."""

    labels: list[Label] = Field(default_factory=list, description="Any of these labels.")
    subtypes: list[str] = Field(default_factory=list, description="Any of these subtypes.")
    min_intensity: float | None = Field(default=None, ge=-10, le=10)
    max_intensity: float | None = Field(default=None, ge=-10, le=10)
    min_magnitude: float | None = Field(
        default=None, ge=0, le=10, description="|intensity| at least this (severity either way)."
    )
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    actors: Annotated[list[str], BeforeValidator(_upper_list)] = Field(default_factory=list)
    dyads: Annotated[list[str], BeforeValidator(_dyad_list)] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    feeds: list[str] = Field(default_factory=list)
    min_story_sources: int = Field(
        default=1, ge=1, description="The item's story has been reported by ≥ this many outlets."
    )

    @property
    def needs_tag(self) -> bool:
        return bool(
            self.labels
            or self.subtypes
            or self.min_intensity is not None
            or self.max_intensity is not None
            or self.min_magnitude is not None
            or self.min_confidence > 0
        )


class Rule(_Strict):
    """One alerting rule. Defaults depend on the type (see README, Alerter)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    type: RuleType = "threshold"
    description: str = ""
    enabled: bool = True
    severity: Severity = "warning"
    filter: Filter = Field(default_factory=Filter)
    group_by: list[GroupKey] = Field(default_factory=list)
    count: CountBy = "stories"
    threshold: float = Field(default=1, ge=0)
    min_sources: int = Field(default=1, ge=1, description="Distinct outlets in the group window.")
    corroboration: int = Field(
        default=1, ge=1, description="A story counts only once this many outlets reported it."
    )
    window: Duration = timedelta(hours=1)
    window_type: Literal["sliding", "hopping"] = "sliding"
    hop: Duration | None = None
    baseline_windows: int = Field(default=24, ge=1, description="spike: earlier windows.")
    ratio: float = Field(default=3.0, gt=0, description="spike: current ≥ ratio × baseline.")
    memory: Duration = Field(default=timedelta(days=30), description="new_dyad: forget after.")
    warmup: Duration = Field(
        default=timedelta(0), description="new_dyad/flatline: learn this long before firing."
    )
    cooldown: Duration = timedelta(minutes=30)
    repeat_interval: Duration | None = None
    renotify_growth: float | None = Field(default=1.5, gt=1)
    resolve: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    receivers: list[Literal["webhook", "apprise", "console"]] | None = None
    max_items: int | None = Field(default=None, ge=1, le=50)

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")
        if self.window_type == "hopping" and (self.hop is None or self.hop <= timedelta(0)):
            raise ValueError("hopping windows need a positive `hop`")
        if self.type == "new_dyad" and self.group_by not in ([], ["dyad"]):
            raise ValueError("new_dyad groups by dyad; leave group_by out")
        if self.type == "flatline" and set(self.group_by) - {"feed"}:
            raise ValueError("flatline groups by feed or by nothing (the whole pipeline)")
        return self

    @property
    def groups(self) -> tuple[str, ...]:
        """Effective group keys: `any` defaults to one alert per story, new_dyad per dyad."""
        if self.type == "any" and not self.group_by:
            return ("story",)
        if self.type == "new_dyad":
            return ("dyad",)
        return tuple(self.group_by)

    @property
    def lookback(self) -> timedelta:
        """How much history the rule needs: spikes need their baseline windows too."""
        if self.type == "spike":
            return self.window * (self.baseline_windows + 1)
        return self.window + (self.hop or timedelta(0))


class ConfigSilence(_Strict):
    """A time-bounded mute from the rules file, e.g. a scheduled annual exercise."""

    matchers: dict[str, str] = Field(min_length=1, description="rule, severity, group or labels.")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    comment: str = ""
    created_by: str = "rules file"

    @model_validator(mode="after")
    def _order(self) -> ConfigSilence:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class RulesFile(_Strict):
    rules: list[Rule] = Field(default_factory=list)
    silences: list[ConfigSilence] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self

    @property
    def active_rules(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.enabled]

    def horizon(self, lateness: timedelta) -> timedelta:
        return max((r.lookback for r in self.active_rules), default=timedelta(hours=1)) + lateness


def _where(path: str, data: Any, loc: tuple[int | str, ...]) -> str:
    """`rule 'name': field.path` (or `silence #n: …`) for an error location."""
    if len(loc) >= 2 and loc[0] in ("rules", "silences") and isinstance(loc[1], int):
        rest = ".".join(str(p) for p in loc[2:]) or "(rule)"
        if loc[0] == "rules":
            entries = data.get("rules") if isinstance(data, dict) else None
            name = None
            if isinstance(entries, list) and loc[1] < len(entries):
                entry = entries[loc[1]]
                name = entry.get("name") if isinstance(entry, dict) else None
            label = f"rule {name!r}" if name else f"rule #{loc[1] + 1}"
            return f"{path}: {label}: {rest}"
        return f"{path}: silence #{loc[1] + 1}: {rest}"
    return f"{path}: {'.'.join(str(p) for p in loc) or '(file)'}"


def parse_rules(text: str, path: str = "<rules>") -> RulesFile:
    """Validate rules-file text; ConfigError names the file, the rule and the field."""
    fix = "correct the rules file (see README, Alerter) and run `blocwatch rules check FILE`"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".replace("\n", " "), fix) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with `rules:`", fix)
    _check_unique_names(data, path, fix)
    try:
        return RulesFile.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        message = problem["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{_where(path, data, problem['loc'])}: {message}", fix) from exc


def _check_unique_names(data: dict[str, Any], path: str, fix: str) -> None:
    entries = data.get("rules")
    names = (
        [e.get("name") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    )
    for name in names:
        if name is not None and names.count(name) > 1:
            raise ConfigError(f"{path}: rule {name!r}: name: used by more than one rule", fix)


def load_rules(path: Path) -> RulesFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read rules file {path}: {exc.strerror}",
            "point BLOCWATCH_ALERTER_RULES_FILE at a readable YAML file",
        ) from exc
    return parse_rules(text, str(path))
