"""The tagger: rules and names compiled once, then pure functions from text to tags.

A trigger is a rule pattern that matched. It becomes a tag unless the words just before it in the
same clause cancel it (negation, hypothetical, request, yielding, speculation, grievance), or the
rule needs a context its sentence lacks (an armed actor for "killed"), or its sentence has a
context that blocks it (a protest for "arrested"). Suppressed triggers are kept for explanations,
so a watch officer can see why something was NOT tagged, too.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from importlib import resources
from operator import itemgetter
from pathlib import Path
from typing import Final, Literal, TypeVar

import yaml
from pydantic import ValidationError

from blocwatch.core.errors import ConfigError
from blocwatch.core.models import SCHEMA_VERSION, Actor, Dyad, Evidence, Tag
from blocwatch.processor.tagging.dictionaries import ActorsFile, RegionsFile
from blocwatch.processor.tagging.gazetteer import Gazetteer, Mention
from blocwatch.processor.tagging.rules import SCAN_BYTES, SCAN_TABLE, RulesFile, compile_rules
from blocwatch.processor.tagging.ruleset import (
    BREAK,
    CUE,
    Candidate,
    CompiledRule,
    CompiledTag,
    RuleSet,
)

__all__ = ["FieldName", "Tagger", "Tagging", "Trigger", "build_tagger", "load_tagger"]

FieldName = Literal["title", "summary", "text"]

EVIDENCE_PER_TAG: Final = 5
SPAN_MAX: Final = 500
# Where sentences end: punctuation after a lower-case letter, digit or closing quote, so "U.S."
# in the middle of a sentence does not split it; then more punctuation, a closing quote
# and the spaces up to the next sentence. A newline ends one too. `_sentence_starts` finds them;
# this regex says the same (test_tagging_details checks they agree).
SENTENCE_END = re.compile(r"[.!?\n](?:(?<=[a-z0-9)\"”’'%][.!?])[.!?]*[\"”’']?\s+|(?<=\n)\n*)")
_BEFORE_END: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789)\"”’'%")
_CLOSING_QUOTES: Final = frozenset("\"”’'")
# Two partners named together: "Russia and China", "US, UK", "US-South Korea".
_CONJUNCTION: Final = re.compile(r"\s*(?:,|and|&|/|-|–|—|, and)\s*(?:the\s+)?")
_PAIR_GAP_BAD: Final = re.compile(
    r"[.,;:]|\b(?:and|but|against|after|said|says|trade[sd]?|trading|exchang\w*|duel\w*|accus\w*)\b"
)
_DAY: Final = re.compile(r"\bon \w+day\b|\b\w+day\b")
# "…, South Korea said": the actor after a trigger that only reports it is not its target.
_ATTRIBUTION: Final = re.compile(
    r"(?:'s|’s)?(?:\s+[\w-]+){0,3}?\s+(?:said|says|say|reported|reports|told|announced|claimed)\b"
)


def _reports(text: str, position: int) -> bool:
    """Whether the words at `position` only report ("… said"): the regex runs only when one
    of its verbs is near, which is rare."""
    near = text[position : position + 40]
    said = "sa" in near or "report" in near or "told" in near  # said, says, say, reported…
    if not (said or "announced" in near or "claimed" in near):
        return False
    return _ATTRIBUTION.match(text, position, position + 40) is not None


_WITH_PARTNER: Final = re.compile(r"\s+(?:together\s+)?(?:with|between)\s+(?:the\s+)?")
# Outcomes that are about two sides acting together or against each other, not one on the other.
_SYMMETRIC_LABELS: Final = frozenset({"alliance"})
_SYMMETRIC_SUBTYPES: Final = frozenset({"border_clash", "fighting"})
# The fields the tagger sets (what validation would record as set: not schema_version). Kept
# beside the dicts on purpose: deriving them per object (set(values) minus schema_version) cost
# +2 % of an event item's instructions.
_TAG_FIELDS: Final = frozenset(
    ("label", "subtype", "cameo", "plover", "intensity", "confidence", "evidence")
)
_EVIDENCE_FIELDS: Final = frozenset(("rule", "text", "start", "end", "field"))
# A rule pattern to try: (family, start, order in the file, end or -1 until matched, pattern,
# rule). Sorted by (family, start, order); ties keep the scan's order.
_Attempt = tuple[int, int, int, int, re.Pattern[str], CompiledRule]
_ATTEMPT_ORDER: Final = itemgetter(0, 1, 2)


def _tag_order(tag: Tag) -> tuple[bool, float]:
    """Escalation first, then the most confident."""
    return tag.label != "escalation", -tag.confidence


class Tagging:
    """What the tagger found in one item. A plain class, not a frozen dataclass: the dataclass's
    `__init__` is generated at import and runs interpreted, ~9 % of a routine item's tagging."""

    __slots__ = ("actors", "dyads", "regions", "tags")

    def __init__(
        self,
        tags: list[Tag] | None = None,
        actors: list[Actor] | None = None,
        dyads: list[Dyad] | None = None,
        regions: list[str] | None = None,
    ) -> None:
        self.tags: list[Tag] = [] if tags is None else tags
        self.actors: list[Actor] = [] if actors is None else actors
        self.dyads: list[Dyad] = [] if dyads is None else dyads
        self.regions: list[str] = [] if regions is None else regions

    @property
    def labels(self) -> set[str]:
        return {tag.label for tag in self.tags}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tagging):
            return NotImplemented
        return (self.tags, self.actors, self.dyads, self.regions) == (
            other.tags,
            other.actors,
            other.dyads,
            other.regions,
        )

    def __repr__(self) -> str:
        return (
            f"Tagging(tags={self.tags!r}, actors={self.actors!r}, dyads={self.dyads!r}, "
            f"regions={self.regions!r})"
        )


class Trigger:
    """A rule match: kept (labels) or suppressed (why), with its evidence. A plain class, like
    `_Field`: the tagger builds several per item, and mypyc makes building and reading one cost
    a fraction of a named tuple's."""

    __slots__ = (
        "context_blocked",
        "end",
        "field",
        "joint_with",
        "labels",
        "participants",
        "rule",
        "sources",
        "start",
        "suppressed",
        "targets",
        "text",
    )

    def __init__(
        self,
        rule: CompiledRule,
        field: FieldName,
        start: int,
        end: int,
        text: str,
        labels: tuple[str, ...],
        suppressed: tuple[str, ...],
        joint_with: tuple[str, ...] = (),
        sources: tuple[str, ...] = (),
        targets: tuple[str, ...] = (),
        participants: tuple[str, ...] = (),
        context_blocked: bool = False,  # a context ruled it out: another rule may use its words
    ) -> None:
        self.rule = rule
        self.field = field
        self.start = start
        self.end = end
        self.text = text
        self.labels = labels
        self.suppressed = suppressed
        self.joint_with = joint_with
        self.sources = sources
        self.targets = targets
        self.participants = participants
        self.context_blocked = context_blocked

    def fields(self) -> tuple[object, ...]:
        """Everything it holds, in the order `__init__` takes it (for comparisons)."""
        return (
            self.rule,
            self.field,
            self.start,
            self.end,
            self.text,
            self.labels,
            self.suppressed,
            self.joint_with,
            self.sources,
            self.targets,
            self.participants,
            self.context_blocked,
        )

    def __repr__(self) -> str:
        return f"Trigger{self.fields()!r}"


# A cue or clause break found in a field: (start, end, kind, name).
_CueHit = tuple[int, int, int, str]


class _Field:
    """One field after the scan. Cue, context and clause-break heads seen by the scan are only
    matched when a trigger asks (lazily, once per field); sentence bounds likewise.

    A plain class, not a dataclass: mypyc compiles this __init__, while a dataclass's is made
    at import by the dataclasses module and runs interpreted (measured with perf: ~2 % of an
    item's time went to the two made per item)."""

    __slots__ = (
        "context_pending",
        "context_positions",
        "contexts",
        "hit_starts",
        "hits",
        "local",
        "low",
        "pending",
        "positions",
        "starts",
        "text",
    )

    def __init__(self, text: str, low: str) -> None:
        self.text = text
        self.low = low
        self.positions: list[int] = []  # of `pending`, ascending
        self.pending: list[tuple[Candidate, ...]] = []
        self.context_positions: list[int] = []
        self.context_pending: list[tuple[Candidate, ...]] = []
        self.contexts: dict[str, str] = {}
        self.hits: list[_CueHit] | None = None  # the matched cues and breaks, by start
        self.hit_starts: list[int] = []
        self.starts: list[int] | None = None
        # sentence start -> the state/bloc mentions in that sentence, and their codes
        self.local: dict[int, tuple[list[Mention], tuple[str, ...]]] = {}

    def cue_hits(self) -> list[_CueHit]:
        """Every cue and break that matches where its head was seen. Matched for the whole field
        at the first trigger that needs them: fields with triggers have few cue heads, and one
        sorted list is cheaper to query than a memo per position."""
        if self.hits is None:
            low = self.low
            self.hits = [
                (position, match.end(), candidate.kind, candidate.name)
                for position, candidates in zip(self.positions, self.pending, strict=True)
                for candidate in candidates
                if (match := candidate.pattern.match(low, position)) is not None
            ]
            self.hit_starts = [hit[0] for hit in self.hits]
        return self.hits

    def first_hit(self, begin: int) -> int:
        """Index in `cue_hits()` of the first cue or break starting at or after `begin`."""
        return bisect.bisect_left(self.hit_starts, begin)

    def context(self, name: str) -> str:
        """The words of context `name` in this field, '' when absent (looked up once)."""
        words = self.contexts.get(name)
        if words is None:
            words = ""
            for position, candidates in zip(
                self.context_positions, self.context_pending, strict=True
            ):
                for candidate in candidates:
                    if candidate.name == name:
                        match = candidate.pattern.match(self.low, position)
                        if match is not None:
                            words = match.group()
                            break
                if words:
                    break
            self.contexts[name] = words
        return words

    def bounds(self, position: int) -> tuple[int, int]:
        if self.starts is None:
            self.starts = _sentence_starts(self.text)
        index = bisect.bisect_right(self.starts, position) - 1
        start = self.starts[index]
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.text)
        return start, end

    def sentence_actors(
        self, s_start: int, s_end: int, mentions: list[Mention]
    ) -> tuple[list[Mention], tuple[str, ...]]:
        """The mentions in the sentence starting at `s_start`, and their distinct codes."""
        found = self.local.get(s_start)
        if found is None:
            local = [m for m in mentions if s_start <= m.start < s_end]
            found = self.local[s_start] = (local, tuple(dict.fromkeys(m.code for m in local)))
        return found


def _sentence_starts(text: str) -> list[int]:
    """0 and where each sentence after the first starts (the ends of SENTENCE_END's matches).
    Candidates come from str.find (memchr in C) and only they are looked at: finditer tested
    every character against the regex's class and made a match object per sentence (~6 % of an
    event item's instructions)."""
    candidates: list[int] = []
    for mark in ".!?\n":
        at = text.find(mark)
        while at >= 0:
            candidates.append(at)
            at = text.find(mark, at + 1)
    starts = [0]
    if not candidates:
        return starts
    candidates.sort()
    size = len(text)
    resume = 0  # a match consumed the text before this
    for at in candidates:
        if at < resume:
            continue
        end = at + 1
        if text[at] == "\n":
            while end < size and text[end] == "\n":
                end += 1
        elif at and text[at - 1] in _BEFORE_END:
            while end < size and text[end] in ".!?":
                end += 1
            if end < size and text[end] in _CLOSING_QUOTES:
                end += 1
            spaces = end
            while spaces < size and text[spaces].isspace():
                spaces += 1
            if spaces == end:
                continue  # no space after: not an end ("3.5", "U.S.-led")
            end = spaces
        else:
            continue
        starts.append(end)
        resume = end
    return starts


def _lower(text: str) -> str:
    """Lower-case with offsets preserved (a few characters lower-case to two)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


class Tagger:
    """Compiled rules and gazetteer; `tag` and `explain` are pure and do no I/O."""

    def __init__(self, rules: RuleSet, gazetteer: Gazetteer, version: str) -> None:
        self.rules = rules
        self.gazetteer = gazetteer
        self.version = version
        # Actors and dyads are immutable and few: build each once.
        self._actors: dict[tuple[str, str], Actor] = {}
        self._dyads: dict[tuple[str, str, str], Dyad] = {}
        # Whether a rule's outcome for a label is symmetric, per (rule id, label): rule data.
        self._symmetric: dict[tuple[str, str], bool] = {}
        self._regions_without_actors = frozenset(gazetteer.regions_of(()))

    # ------------------------------------------------------------------ public
    def tag(self, fields: Sequence[tuple[FieldName, str]]) -> Tagging:
        triggers, mentions, places = self._scan(fields, explain=False)
        return self._assemble(triggers, mentions, places)

    def scan(
        self, fields: Sequence[tuple[FieldName, str]]
    ) -> tuple[list[Trigger], list[Mention], set[str]]:
        """Every trigger (kept or suppressed, with why), actor mentions and region places."""
        return self._scan(fields, explain=True)

    def _scan(
        self, fields: Sequence[tuple[FieldName, str]], explain: bool
    ) -> tuple[list[Trigger], list[Mention], set[str]]:
        """Triggers (only kept ones unless `explain`), actor mentions and region places."""
        triggers: list[Trigger] = []
        mentions: list[Mention] = []
        places: set[str] = set()
        lows = [_lower(text) for _, text in fields]
        # One prefilter pass over all fields (a newline apart): a pattern matching across two
        # fields is only one more pattern tried in vain.
        possible = self.rules.prefilter.possible("\n".join(lows))
        for (name, text), low in zip(fields, lows, strict=True):
            if not text:
                continue
            found, field_places = self.gazetteer.scan(text)
            mentions.extend(found)
            places.update(field_places)
            if possible is None or possible:  # else no rule pattern can match: no trigger
                triggers.extend(self._scan_field(name, text, low, possible, found, explain))
        return triggers, mentions, places

    # ------------------------------------------------------------------ matching
    def _attempts(self, low: str, scanned: _Field, possible: set[int] | None) -> list[_Attempt]:
        """Every rule pattern to try in `low`, where its head was seen, in the order that
        resolves overlaps; cue and context heads are noted in `scanned` on the way. Patterns are
        matched later, and only where no earlier match of their family already covers them.
        Only the `possible` patterns (prefilter indexes; None: all) are tried."""
        rules = self.rules
        by_head = rules.by_head
        positions, pending = scanned.positions, scanned.pending
        context_positions, context_pending = scanned.context_positions, scanned.context_pending
        found: list[_Attempt] = []
        # scan[i] is the space before low[i]. On ASCII text (most news) bytes.translate, a
        # 256-byte table, is several times faster than str.translate's lookup per character.
        if low.isascii():
            scan = " " + low.encode("ascii").translate(SCAN_BYTES).decode("ascii")
        else:
            scan = " " + low.translate(SCAN_TABLE)
        for head in rules.heads.finditer(scan):
            start = head.start()
            rule_candidates, cues, contexts = by_head[head.group(1)]
            if cues:  # cues and contexts: matched later, only if a trigger needs them
                positions.append(start)
                pending.append(cues)
            if contexts:
                context_positions.append(start)
                context_pending.append(contexts)
            if len(rule_candidates) == 1:  # most heads: match now, and keep only a hit
                family, order, rule, pattern, index = rule_candidates[0]
                if possible is not None and index not in possible:
                    continue
                if (match := pattern.match(low, start)) is not None:
                    found.append((family, start, order, match.end(), pattern, rule))
                continue
            for family, order, rule, pattern, index in rule_candidates:
                if possible is None or index in possible:
                    found.append((family, start, order, -1, pattern, rule))
        for candidate in rules.always:  # patterns without heads: matched here, over the text
            if candidate.rule is not None and (possible is None or candidate.index in possible):
                for match in candidate.pattern.finditer(low):
                    hit = (candidate.family, match.start(), candidate.order, match.end())
                    found.append((*hit, candidate.pattern, candidate.rule))
        if len(found) > 1:
            found.sort(key=_ATTEMPT_ORDER)
        return found

    def _scan_field(
        self,
        name: FieldName,
        text: str,
        low: str,
        possible: set[int] | None,
        mentions: list[Mention],
        explain: bool,
    ) -> list[Trigger]:
        """Kept triggers (and, if `explain`, suppressed ones) of the `possible` rule patterns
        (prefilter indexes; None: all) in one field; `low` is the field lower-cased."""
        scanned = _Field(text, low)
        found: list[Trigger] = []
        family_end = -1
        family = -1
        for hit_family, start, _, end, pattern, rule in self._attempts(low, scanned, possible):
            if hit_family != family:
                family, family_end = hit_family, -1
            if start < family_end:
                continue  # inside a match of the same family: leftmost, then earlier rule wins
            if end < 0:
                match = pattern.match(low, start)
                if match is None:
                    continue
                end = match.end()
            previous_end, family_end = family_end, end
            while end > start and low[end - 1].isspace():
                end -= 1
            end = min(end, start + SPAN_MAX)
            if (rule.requires or rule.blocked_by) and self._context_blocked(rule, scanned):
                family_end = previous_end  # the words stay free for a later rule of the family
                if explain:
                    why = self._context_reasons(rule, scanned)
                    span = text[start:end]
                    blocked = Trigger(rule, name, start, end, span, (), why, context_blocked=True)
                    found.append(blocked)
                continue
            trigger = self._judge(rule, name, scanned, start, end, mentions, explain)
            if trigger is not None:
                found.append(trigger)
        return found

    @staticmethod
    def _context_blocked(rule: CompiledRule, scanned: _Field) -> bool:
        """A required context is absent, or a blocking one present (read over the whole field:
        a title or a two-sentence lede is one scene)."""
        if rule.requires and not any(scanned.context(c) for c in rule.requires):
            return True
        return any(scanned.context(c) for c in rule.blocked_by)

    @staticmethod
    def _context_reasons(rule: CompiledRule, scanned: _Field) -> tuple[str, ...]:
        why: list[str] = []
        if rule.requires and not any(scanned.context(c) for c in rule.requires):
            why.append(f"needs {' or '.join(rule.requires)} context")
        for context in rule.blocked_by:
            words = scanned.context(context)
            if words:
                why.append(f"{context} context: {words!r}")
        return tuple(why)

    def _judge(
        self,
        rule: CompiledRule,
        name: FieldName,
        scanned: _Field,
        start: int,
        end: int,
        mentions: list[Mention],
        explain: bool,
    ) -> Trigger | None:
        """The trigger of a match its contexts allow: kept with its labels and roles, or (only
        when `explain`) suppressed with the cues that cancelled it."""
        s_start, s_end = scanned.bounds(start)
        window = self._cues_before(scanned, s_start, start)
        labels: list[str] = []
        why: list[str] = []
        for ctag in rule.tags:
            cue = self._cancelled(scanned, window, ctag.cues, start) if window else None
            if cue is None:
                labels.append(ctag.label)
            elif explain:
                cue_start, cue_end, cue_name = cue
                words = scanned.text[cue_start:cue_end]
                why.append(f"{ctag.label} cancelled by {cue_name} {words!r}")
        text = scanned.text[start:end]
        if not labels:
            return Trigger(rule, name, start, end, text, (), tuple(why)) if explain else None
        sources: tuple[str, ...] = ()
        targets: tuple[str, ...] = ()
        partners: tuple[str, ...] = ()
        local, participants = scanned.sentence_actors(s_start, s_end, mentions)
        if local:
            sources, targets, partners = self._roles(scanned.text, local, start, end)
        joint: tuple[str, ...] = ()
        if rule.joint and partners:
            joint = partners
            if "alliance" not in labels:
                labels.append("alliance")
        return Trigger(
            rule, name, start, end, text, tuple(labels), (), joint, sources, targets, participants
        )

    def _cues_before(
        self, scanned: _Field, sentence_start: int, start: int
    ) -> list[tuple[int, int, str]]:
        """(start, end, name) of the cues that may cancel a trigger at `start`: those in its
        window (same sentence, same clause, near), in order."""
        hits = scanned.cue_hits()
        if not hits:
            return []
        begin = max(sentence_start, start - self.rules.window)
        low = scanned.low
        for mark in (";", ":", ", and "):
            at = low.rfind(mark, begin, start)
            if at >= 0:
                begin = at + len(mark)
        first = scanned.first_hit(begin)
        clause = begin  # a clause break in the window moves its start past the break
        for hit_start, hit_end, kind, _ in hits[first:]:
            if hit_start >= start:
                break
            if kind == BREAK and clause < hit_end <= start:
                clause = hit_end
        return [
            (hit_start, hit_end, name)
            for hit_start, hit_end, kind, name in hits[scanned.first_hit(clause) :]
            if hit_start < start and kind == CUE and hit_end <= start
        ]

    def _cancelled(
        self,
        scanned: _Field,
        window: list[tuple[int, int, str]],
        cues: tuple[str, ...],
        start: int,
    ) -> tuple[int, int, str] | None:
        """The first cue in `window` that is one of `cues` (and near enough, if it must be)."""
        for cue_start, cue_end, cue in window:
            if cue not in cues:
                continue
            gap = self.rules.adjacent.get(cue)
            if gap is not None:
                between = scanned.low[cue_end:start].split()
                if len(between) > gap or "and" in between:
                    continue
            return cue_start, cue_end, cue
        return None

    @staticmethod
    def _roles(
        text: str, local: list[Mention], start: int, end: int
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """Who acts (nearest actor before the trigger, with a conjoined partner), on whom (first
        actor after its first word: "struck Houthi targets"), and partners named together right
        before it or joined by "with"."""
        before = [m for m in local if m.end <= start]
        after: list[Mention] = []  # the first two only: the attribution check is a regex
        for mention in local:
            if mention.start > start and not _reports(text, mention.end):
                after.append(mention)
                if len(after) == 2:
                    break
        sources: list[str] = []
        partners: list[str] = []
        if before:
            last = before[-1]
            sources.append(last.code)
            if len(before) > 1:
                prev = before[-2]
                if prev.code != last.code and _CONJUNCTION.fullmatch(text[prev.end : last.start]):
                    sources.insert(0, prev.code)
                    gap = text[last.end : start]
                    if "day" in gap:  # the regex only if it can remove something
                        gap = _DAY.sub("", gap)
                    if len(gap) <= 40 and not _PAIR_GAP_BAD.search(gap.lower()):
                        partners = [prev.code, last.code]
        targets: list[str] = []
        if after:
            first = after[0]
            targets.append(first.code)
            with_gap = _WITH_PARTNER.fullmatch(text[end : first.start])
            if with_gap and sources and first.code not in sources:
                partners = [*(partners or sources[-1:]), first.code]
            if len(after) > 1:
                nxt = after[1]
                if nxt.code != first.code and _CONJUNCTION.fullmatch(text[first.end : nxt.start]):
                    targets.append(nxt.code)
        # Distinct already: a conjoined partner is only added when its code differs.
        return tuple(sources), tuple(targets), tuple(partners)

    # ------------------------------------------------------------------ assembling
    def _assemble(
        self, triggers: list[Trigger], mentions: list[Mention], places: set[str]
    ) -> Tagging:
        if not triggers and not mentions:  # most news: no event, no state named
            return Tagging(regions=sorted(places | self._regions_without_actors))
        merged: dict[tuple[str, str], _TagDraft] = {}
        roles: dict[str, str] = {}
        dyads: dict[tuple[str, str, str], Dyad] = {}
        for trigger in triggers:
            labels = trigger.labels
            rule = trigger.rule
            evidence = _built(  # one object, shared by the tags of this trigger
                Evidence,
                _EVIDENCE_FIELDS,
                {
                    "schema_version": SCHEMA_VERSION,
                    "rule": rule.id,
                    "text": trigger.text,
                    "start": trigger.start,
                    "end": trigger.end,
                    "field": trigger.field,
                },
            )
            for ctag in rule.tags:
                if ctag.label in labels:
                    self._add(merged, ctag, rule, evidence)
            if trigger.joint_with and "alliance" in labels:
                spec = _JOINT_SPEC.get(rule.tags[0].subtype, _JOINT_SPEC["default"])
                self._add(merged, spec, rule, evidence)
            if trigger.participants:  # no actor in its sentence: no roles, no dyads
                for label in labels:
                    self._collect_dyads(trigger, label, roles, dyads)
        tags = sorted((draft.build() for draft in merged.values()), key=_tag_order)
        codes = list(dict.fromkeys(m.code for m in mentions))
        actors = [self._actor(code, roles.get(code, "participant")) for code in codes]
        regions = sorted(places | self.gazetteer.regions_of(codes))
        return Tagging(tags=tags, actors=actors, dyads=list(dyads.values()), regions=regions)

    def _actor(self, code: str, role: str) -> Actor:
        actor = self._actors.get((code, role))
        if actor is None:
            display, kind = self.gazetteer.names[code]
            actor = Actor(code=code, name=display, kind=kind, role=role)
            self._actors[(code, role)] = actor
        return actor

    def _dyad(self, source: str, target: str, label: str) -> Dyad:
        dyad = self._dyads.get((source, target, label))
        if dyad is None:
            dyad = Dyad(source=source, target=target, label=label)
            self._dyads[(source, target, label)] = dyad
        return dyad

    @staticmethod
    def _add(
        merged: dict[tuple[str, str], _TagDraft],
        spec: CompiledTag,
        rule: CompiledRule,
        evidence: Evidence,
    ) -> None:
        key = (spec.label, spec.subtype)
        draft = merged.get(key)
        if draft is None:
            draft = merged[key] = _TagDraft(
                spec.label, spec.subtype, spec.cameo, spec.plover, spec.intensity, {}, []
            )
        draft.add(rule, evidence)

    def _collect_dyads(
        self,
        trigger: Trigger,
        label: str,
        roles: dict[str, str],
        dyads: dict[tuple[str, str, str], Dyad],
    ) -> None:
        symmetric = self._symmetric.get((trigger.rule.id, label))
        if symmetric is None:
            subtypes = {t.subtype for t in trigger.rule.tags if t.label == label}
            symmetric = label in _SYMMETRIC_LABELS or bool(subtypes & _SYMMETRIC_SUBTYPES)
            self._symmetric[(trigger.rule.id, label)] = symmetric
        partners = trigger.joint_with
        if label == "alliance" and partners:
            pairs = [(a, b) for i, a in enumerate(partners) for b in partners[i + 1 :]]
        elif partners:  # acting together against someone else
            pairs = [(s, t) for s in partners for t in trigger.targets if t not in partners]
            for source, target in pairs:
                roles.setdefault(source, "source")
                roles.setdefault(target, "target")
        elif symmetric:
            codes = list(trigger.participants)[:5]
            pairs = [(a, b) for i, a in enumerate(codes) for b in codes[i + 1 :]]
        else:
            pairs = [(s, t) for s in trigger.sources for t in trigger.targets if s != t]
            for code in trigger.sources:
                roles.setdefault(code, "source")
            for code in trigger.targets:
                roles.setdefault(code, "target")
        for source, target in pairs:
            if (target, source, label) not in dyads and (source, target, label) not in dyads:
                dyads[(source, target, label)] = self._dyad(source, target, label)


# Partners acting together (a pair named right before a joint-capable trigger): the alliance side.
_JOINT_SPEC: dict[str, CompiledTag] = {
    "exercise": CompiledTag("alliance", "joint_exercise", "062", "COOPERATE", 6.0, ()),
    "default": CompiledTag("alliance", "military_cooperation", "062", "COOPERATE", 7.0, ()),
}


class _TagDraft:
    """Evidence for one (label, subtype) gathered across rules and fields (a plain class for
    mypyc, as `_Field`)."""

    __slots__ = ("cameo", "confidences", "evidence", "intensity", "label", "plover", "subtype")

    def __init__(
        self,
        label: str,
        subtype: str,
        cameo: str,
        plover: str,
        intensity: float,
        confidences: dict[str, float],
        evidence: list[Evidence],
    ) -> None:
        self.label = label
        self.subtype = subtype
        self.cameo = cameo
        self.plover = plover
        self.intensity = intensity
        self.confidences = confidences
        self.evidence = evidence

    def add(self, rule: CompiledRule, evidence: Evidence) -> None:
        self.confidences[rule.id] = max(self.confidences.get(rule.id, 0.0), rule.confidence)
        if len(self.evidence) < EVIDENCE_PER_TAG:
            self.evidence.append(evidence)

    def build(self) -> Tag:
        # Independent rules agreeing raise confidence; the same rule twice does not.
        doubt = 1.0
        best = 0.0
        for value in self.confidences.values():
            doubt *= 1.0 - value
            best = max(best, value)
        confidence = _rounded(min(0.99, max(1.0 - doubt, best)))
        values = {
            "schema_version": SCHEMA_VERSION,
            "label": self.label,
            "subtype": self.subtype,
            "cameo": self.cameo,
            "plover": self.plover,
            "intensity": self.intensity,
            "confidence": confidence,
            "evidence": self.evidence,
        }
        return _built(Tag, _TAG_FIELDS, values)


# Confidences come from a few rule values and their combinations: round() with ndigits goes
# through a decimal conversion (~2,500 instructions, a sixth of building a tag), a dict does not.
_ROUNDED: Final[dict[float, float]] = {}


def _rounded(value: float) -> float:
    rounded = _ROUNDED.get(value)
    if rounded is None:
        if len(_ROUNDED) >= 4096:
            _ROUNDED.clear()  # many rules agreeing in many ways: start again
        rounded = _ROUNDED[value] = round(value, 3)
    return rounded


_Model = TypeVar("_Model", Tag, Evidence)


def _built(model: type[_Model], fields_set: frozenset[str], values: dict[str, object]) -> _Model:
    """A model from values that are valid by construction, without validating them again.

    Every value of a Tag and its Evidence is: spec fields validated when the rules were compiled,
    spans cut to SPAN_MAX, offsets from the text, confidence clamped to 0..0.99. Validation cost
    ~1.3 µs per object, a tenth of an event item's tagging; this is what `model_construct` does,
    minus its Python loop over defaults (test_tagging_shortcuts checks the two agree)."""
    instance = object.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(fields_set))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def _data(name: str) -> object:
    text = resources.files("blocwatch.processor.tagging").joinpath("data", name).read_text("utf-8")
    return yaml.safe_load(text)


def build_tagger(
    rules: object, actors: object, regions: object, version: str, cache: Path | None = None
) -> Tagger:
    """Validate and compile dictionaries (parsed YAML); ConfigError names the file and entry.
    `cache`: a directory for the compiled rule prefilter (None: compiled every time)."""
    try:
        rules_file = RulesFile.model_validate(rules)
    except ValueError as exc:
        raise ConfigError(f"rules.yaml: {_one_line(exc)}", _FIX) from exc
    try:
        actors_file = ActorsFile.model_validate(actors)
        regions_file = RegionsFile.model_validate(regions)
        gazetteer = Gazetteer(actors_file, regions_file)
    except ValueError as exc:
        raise ConfigError(f"actors.yaml/regions.yaml: {_one_line(exc)}", _FIX) from exc
    return Tagger(compile_rules(rules_file, cache), gazetteer, version)


def _one_line(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
    return str(exc)


_FIX = "correct the entry in services/blocwatch/processor/tagging/data/"


def load_tagger(version: str, cache: Path | None = None) -> Tagger:
    """Read and compile the packaged dictionaries (once per process: callers keep the result)."""
    return build_tagger(
        _data("rules.yaml"), _data("actors.yaml"), _data("regions.yaml"), version, cache
    )
