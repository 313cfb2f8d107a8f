"""Event rules: the data model of `data/rules.yaml` and its compiled form.

Each rule family (alliance, escalation) is compiled into ONE alternation regex with a named group
per rule, so a text is scanned once per family however many rules there are; `match.lastgroup`
says which rule fired. Cues (negation, hypotheticals, requests, yielding, speculation,
grievance) and contexts (protest, armed actors, crime, disasters…) are small regexes run only
around a trigger that matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from blocwatch.core.models import Tag

__all__ = [
    "CompiledRule",
    "RuleSet",
    "RuleSpec",
    "RulesFile",
    "TagSpec",
    "compile_rules",
    "expand_macros",
]

Label = Literal["alliance", "escalation"]
Plover = Literal[
    "COOPERATE", "AID", "AGREE", "SUPPORT", "THREATEN", "MOBILIZE", "SANCTION", "COERCE", "ASSAULT"
]

_MACRO = re.compile(r"\{([wn])(\d+)\}")
# {wN}: a token that does not end a sentence or clause. {nN}: the same, but not a preposition, so
# "captured the town" matches and "were captured in the capital" does not.
_FILLERS = {
    "w": r"(?:[^\s.;:!?]+\s+)",
    "n": r"(?:(?!(?:in|at|on|near|from|into|by|to|for|with|during|after)\s)[^\s.;:!?]+\s+)",
}


def expand_macros(pattern: str) -> str:
    """`{w6}` → up to six words (with their trailing spaces); `{n4}` → up to four non-prepositions."""
    return _MACRO.sub(lambda m: f"{_FILLERS[m.group(1)]}{{0,{int(m.group(2))}}}", pattern)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagSpec(_Strict):
    label: Label
    subtype: str = Field(pattern=r"^[a-z_]+$")
    cameo: str = Field(pattern=r"^\d{2,4}$")
    plover: Plover
    intensity: float = Field(ge=-10, le=10)


class RuleSpec(_Strict):
    id: str = Field(pattern=r"^[a-z_]+\.[a-z_]+\.[a-z_]+$")
    family: str = Field(pattern=r"^[a-z_]+$")
    patterns: list[str] = Field(min_length=1)
    tags: list[TagSpec] = Field(min_length=1)
    confidence: float = Field(gt=0, le=1)
    before: list[str] | None = None
    requires: list[str] = Field(default_factory=list)
    blocked_by: list[str] = Field(default_factory=list)
    joint: bool = False

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                compiled = re.compile(expand_macros(pattern))
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
            if compiled.groups:  # the rule's own named group must be the one that closes
                raise ValueError(f"pattern {pattern!r}: use (?:...), not capturing groups")
        return patterns


class Defaults(_Strict):
    before: dict[Label, list[str]]
    window: int = Field(default=90, ge=10, le=400)


class RulesFile(_Strict):
    defaults: Defaults
    cues: dict[str, str]
    contexts: dict[str, str]
    rules: list[RuleSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> RulesFile:
        ids = [rule.id for rule in self.rules]
        duplicates = {i for i in ids if ids.count(i) > 1}
        if duplicates:
            raise ValueError(f"duplicate rule ids: {sorted(duplicates)}")
        for rule in self.rules:
            for cue in rule.before or []:
                if cue not in self.cues:
                    raise ValueError(f"rule {rule.id}: unknown cue {cue!r}")
            for context in [*rule.requires, *rule.blocked_by]:
                if context not in self.contexts:
                    raise ValueError(f"rule {rule.id}: unknown context {context!r}")
        for cues in self.defaults.before.values():
            for cue in cues:
                if cue not in self.cues:
                    raise ValueError(f"defaults.before: unknown cue {cue!r}")
        for name, pattern in [*self.cues.items(), *self.contexts.items()]:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"cue/context {name!r} does not compile: {exc}") from exc
        return self


@dataclass(frozen=True, slots=True)
class CompiledTag:
    """A tag a rule emits, its prototype Tag, and the cues that cancel it."""

    spec: TagSpec
    cues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    confidence: float
    tags: tuple[CompiledTag, ...]
    requires: tuple[str, ...]
    blocked_by: tuple[str, ...]
    joint: bool


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Everything the matcher needs, compiled once."""

    families: tuple[tuple[re.Pattern[str], dict[str, CompiledRule]], ...]
    cues: dict[str, re.Pattern[str]]
    contexts: dict[str, re.Pattern[str]]
    window: int
    rules: tuple[CompiledRule, ...]


def compile_rules(spec: RulesFile) -> RuleSet:
    """One alternation per family; a named group `r<n>` per rule, in file order."""
    by_family: dict[str, list[tuple[str, RuleSpec]]] = {}
    compiled: list[CompiledRule] = []
    lookup: dict[str, dict[str, CompiledRule]] = {}
    for index, rule in enumerate(spec.rules):
        group = f"r{index}"
        by_family.setdefault(rule.family, []).append((group, rule))
        tags = tuple(
            CompiledTag(tag, tuple(rule.before or spec.defaults.before.get(tag.label, [])))
            for tag in rule.tags
        )
        for tag in rule.tags:  # validate once here so tag time can skip validation
            Tag(**tag.model_dump(), confidence=rule.confidence)
        rule_c = CompiledRule(
            rule.id,
            rule.confidence,
            tags,
            tuple(rule.requires),
            tuple(rule.blocked_by),
            rule.joint,
        )
        compiled.append(rule_c)
        lookup.setdefault(rule.family, {})[group] = rule_c
    families = []
    for family, members in by_family.items():
        alternation = "|".join(
            f"(?P<{group}>{'|'.join(expand_macros(p) for p in rule.patterns)})"
            for group, rule in members
        )
        families.append((re.compile(alternation), lookup[family]))
    return RuleSet(
        families=tuple(families),
        cues={name: re.compile(pattern) for name, pattern in spec.cues.items()},
        contexts={name: re.compile(pattern) for name, pattern in spec.contexts.items()},
        window=spec.defaults.window,
        rules=tuple(compiled),
    )
