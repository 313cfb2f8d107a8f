"""The compiled form of the rules (`rules.compile_rules` builds it): what the tagger reads for
every trigger. Plain dataclasses with no pydantic model in the module, so that mypyc compiles
them to native classes and the tagger reads their fields as C struct members, not through
Python's attribute lookup (~8 % of an event item's instructions when they lived in `rules`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from blocwatch.processor.tagging.prefilter import Prefilter

__all__ = [
    "BREAK",
    "CONTEXT",
    "CUE",
    "RULE",
    "Candidate",
    "CompiledRule",
    "CompiledTag",
    "RuleCandidate",
    "RuleSet",
]

RULE, CUE, CONTEXT, BREAK = 0, 1, 2, 3


@dataclass(frozen=True)
class CompiledTag:
    """A tag a rule emits (its TagSpec's fields, validated when the rules were compiled) and the
    cues that cancel it."""

    label: str
    subtype: str
    cameo: str
    plover: str
    intensity: float
    cues: tuple[str, ...]


@dataclass(frozen=True)
class CompiledRule:
    id: str
    confidence: float
    tags: tuple[CompiledTag, ...]
    requires: tuple[str, ...]
    blocked_by: tuple[str, ...]
    joint: bool


@dataclass(frozen=True)
class Candidate:
    """A pattern tried where one of its heads was seen: a rule's, a cue, a context or a break."""

    kind: int
    name: str
    family: int
    order: int
    rule: CompiledRule | None
    pattern: re.Pattern[str]
    index: int = -1  # a rule pattern's index in the prefilter


# (family, order in the file, rule, pattern, prefilter index): what the scan tries at a head.
RuleCandidate = tuple[int, int, CompiledRule, re.Pattern[str], int]


@dataclass(frozen=True)
class RuleSet:
    """Everything the matcher needs, compiled once."""

    heads: re.Pattern[str]
    # scan key of a head -> (rule candidates, cue/break candidates, context candidates)
    by_head: dict[
        str, tuple[tuple[RuleCandidate, ...], tuple[Candidate, ...], tuple[Candidate, ...]]
    ]
    always: tuple[Candidate, ...]
    patterns: tuple[re.Pattern[str], ...]  # every rule pattern, by prefilter index
    prefilter: Prefilter
    window: int
    adjacent: dict[str, int]
    rules: tuple[CompiledRule, ...]
