"""Event rules: the data model of `data/rules.yaml` and its compiled form.

Speed comes from a keyword pre-filter built from the rules themselves: every pattern's possible
first words ("heads": `threat`, `missile`, `sign`…) are read off its parsed regex, and all heads of
all rules go into ONE trie regex. A text is scanned once with it; only the patterns whose head
was seen are tried, and only at that position (`pattern.match(text, pos)`). Within a family
(alliance, escalation) matches do not overlap: the leftmost wins, then the earlier rule in the
file. Cues (negation, hypotheticals, requests, yielding, speculation, grievance) and contexts
(protest, armed actors, crime, disasters…) are small regexes run only around a trigger.
"""

from __future__ import annotations

import re
import re._constants as sre_constants  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from blocwatch.core.models import Tag
from blocwatch.processor.tagging.gazetteer import trie_pattern
from blocwatch.processor.tagging.prefilter import Prefilter
from blocwatch.processor.tagging.ruleset import (
    BREAK,
    CONTEXT,
    CUE,
    RULE,
    Candidate,
    CompiledRule,
    CompiledTag,
    RuleCandidate,
    RuleSet,
)

__all__ = [
    "SCAN_BYTES",
    "SCAN_TABLE",
    "RuleSpec",
    "RulesFile",
    "TagSpec",
    "compile_rules",
    "expand_macros",
    "pattern_heads",
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
    """`{w6}` → up to six words with their spaces; `{n4}` → up to four non-prepositions."""
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
    adjacent: dict[str, int] = Field(default_factory=dict)


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
            if pattern_heads(pattern) is None:
                raise ValueError(f"cue/context {name!r} must start with words (\\b(?:a|b…))")
        for name in self.defaults.adjacent:
            if name not in self.cues:
                raise ValueError(f"defaults.adjacent: unknown cue {name!r}")
        return self


# Characters after which a word can start: mapped to spaces in the scan copy of the text.
_WORD_JOINERS = '-()[]{}"“”‘’/—–$€£,;:!?.'
SCAN_TABLE = str.maketrans(dict.fromkeys(_WORD_JOINERS, " "))
# The same for ASCII text, as bytes (what SCAN_TABLE does to the ASCII characters).
_ASCII_JOINERS = "".join(c for c in _WORD_JOINERS if c.isascii()).encode()
SCAN_BYTES = bytes.maketrans(_ASCII_JOINERS, b" " * len(_ASCII_JOINERS))
# Words that end a clause: cues before them do not reach a trigger after them (";", ":" and
# ", and" are found with str.rfind, being punctuation).
CLAUSE_BREAK = r"\b(?:but|while|whereas|after|despite|amid|following|because|when)\b"


_DIGITS = frozenset("0123456789")


def _heads(items: list[Any], prefixes: set[str]) -> tuple[set[str], bool]:
    """Literal prefixes every match must start with; (prefixes, stopped early)."""
    for op, av in items:
        if op in (sre_constants.AT, sre_constants.ASSERT_NOT, sre_constants.ASSERT):
            continue  # zero-width: \b and look-behinds do not consume text
        if op is sre_constants.LITERAL:
            prefixes = {p + chr(av) for p in prefixes}
        elif op is sre_constants.SUBPATTERN:
            prefixes, stopped = _heads(list(av[3]), prefixes)
            if stopped:
                return prefixes, True
        elif op is sre_constants.BRANCH:
            out: set[str] = set()
            for alternative in av[1]:
                out |= _heads(list(alternative), prefixes)[0]
            return out, True
        elif op is sre_constants.IN:
            chars = _class_chars(av)
            if chars is None:
                return prefixes, True
            prefixes = {p + c for p in prefixes for c in chars}
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and av[0] > 0:
            return _heads(list(av[2]), prefixes)[0], True
        else:
            return prefixes, True
    return prefixes, False


def _class_chars(av: list[Any]) -> set[str] | None:
    """A small character class as its characters (digits count as ten)."""
    chars: set[str] = set()
    for op, value in av:
        if op is sre_constants.LITERAL:
            chars.add(chr(value))
        elif op is sre_constants.CATEGORY and value is sre_constants.CATEGORY_DIGIT:
            chars |= _DIGITS
        else:
            return None
    return chars if len(chars) <= 10 else None


def pattern_heads(pattern: str) -> set[str] | None:
    """The words a pattern's matches start with, or None when it cannot be pre-filtered."""
    heads, _ = _heads(list(sre_parse.parse(pattern)), {""})
    usable = all(h and h[0].isalnum() and (len(h) >= 2 or h in _DIGITS) for h in heads)
    return heads if usable else None


def compile_rules(spec: RulesFile, cache: Path | None = None) -> RuleSet:
    """Per-pattern regexes indexed by their heads, plus one trie regex over all heads; `cache`
    is where the prefilter may keep its compiled database (see prefilter)."""
    families: list[str] = []
    compiled: list[CompiledRule] = []
    by_head: dict[str, list[Candidate]] = {}
    always: list[Candidate] = []
    patterns: list[re.Pattern[str]] = []  # every rule pattern, by prefilter index
    for order, rule in enumerate(spec.rules):
        if rule.family not in families:
            families.append(rule.family)
        tags = tuple(
            CompiledTag(
                tag.label,
                tag.subtype,
                tag.cameo,
                tag.plover,
                tag.intensity,
                tuple(rule.before or spec.defaults.before.get(tag.label, [])),
            )
            for tag in rule.tags
        )
        for tag in rule.tags:  # validate once here so tag time can skip validation
            Tag(**tag.model_dump(), confidence=rule.confidence)
        rule_c = CompiledRule(
            rule.id, rule.confidence, tags, tuple(rule.requires), tuple(rule.blocked_by), rule.joint
        )
        compiled.append(rule_c)
        family = families.index(rule.family)
        for pattern in rule.patterns:
            expanded = expand_macros(pattern)
            compiled_pattern = re.compile(expanded)
            candidate = Candidate(
                RULE, rule.id, family, order, rule_c, compiled_pattern, len(patterns)
            )
            patterns.append(compiled_pattern)
            heads = pattern_heads(expanded)
            if heads is None:
                always.append(candidate)
                continue
            for head in heads:
                by_head.setdefault(head, []).append(candidate)
    # Cues, contexts and clause breaks share the same scan: one pass finds everything.
    extras = [
        *((CUE, name, pattern) for name, pattern in spec.cues.items()),
        *((CONTEXT, name, pattern) for name, pattern in spec.contexts.items()),
        (BREAK, "clause", CLAUSE_BREAK),
    ]
    for kind, name, pattern in extras:
        candidate = Candidate(kind, name, -1, -1, None, re.compile(pattern))
        for head in pattern_heads(pattern) or ():
            by_head.setdefault(head, []).append(candidate)
    # A seen head also stands for every shorter head it starts with ("threatened" → "threat").
    index = {
        head: tuple(
            sorted(
                (c for other, cands in by_head.items() if head.startswith(other) for c in cands),
                key=lambda c: (c.kind, c.family, c.order),
            )
        )
        for head in by_head
    }
    # The scan runs over " " + text with word-joining punctuation turned into spaces, so every
    # word start follows a space and the head regex can start with a literal space: the regex
    # engine then jumps from space to space instead of trying every character.
    merged: dict[str, dict[int, Candidate]] = {}
    for head, candidates in index.items():
        merged.setdefault(head.translate(SCAN_TABLE), {}).update((id(c), c) for c in candidates)
    scan_index: dict[
        str, tuple[tuple[RuleCandidate, ...], tuple[Candidate, ...], tuple[Candidate, ...]]
    ] = {}
    for key, found in merged.items():
        ordered = sorted(found.values(), key=lambda c: (c.kind, c.family, c.order))
        scan_index[key] = (
            tuple(
                (c.family, c.order, c.rule, c.pattern, c.index)
                for c in ordered
                if c.rule is not None
            ),
            tuple(c for c in ordered if c.kind in (CUE, BREAK)),
            tuple(c for c in ordered if c.kind == CONTEXT),
        )
    return RuleSet(
        # The head is captured in a look-ahead, so that finditer resumes right after the space:
        # heads can overlap ("mutual defence" holds "defence").
        heads=re.compile(" (?=(" + trie_pattern(scan_index) + "))"),
        by_head=scan_index,
        always=tuple(always),
        patterns=tuple(patterns),
        prefilter=Prefilter([pattern.pattern for pattern in patterns], cache),
        window=spec.defaults.window,
        adjacent=dict(spec.defaults.adjacent),
        rules=tuple(compiled),
    )
