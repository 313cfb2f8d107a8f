"""Rule evaluation: windows, counts and the notification lifecycle. Pure: no Kafka, HTTP or clock.

The `Engine` holds the window state of every rule and the record of what was notified; callers
pass `now` into every call (wall clock in the service, the events' own time in back-tests) and
persist what `take_changes()` hands them. Counting is by distinct stories (near-duplicate
articles share a story_id), optionally requiring corroboration by several outlets.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from blocwatch.alerter.rules import Filter, Rule, RulesFile
from blocwatch.alerter.silences import Silence, is_silenced, match_labels
from blocwatch.core.models import Alert, AlertCounts, AlertItem, Tag, TaggedItem

__all__ = [
    "ARRIVAL_BUCKET_S",
    "Changes",
    "Decision",
    "Engine",
    "GroupCount",
    "Members",
    "NotifyRecord",
    "Observation",
    "count_group",
    "event_time",
    "fingerprint",
    "group_values",
    "matching_tags",
]

ARRIVAL_BUCKET_S = 60  # flatline counts arrivals per minute: bounded state, minute resolution
FUTURE_SKEW = timedelta(minutes=5)
PRUNE_EVERY = timedelta(minutes=1)
MAX_ACTORS_FOR_PAIRS = 4
Status = Literal["firing", "resolved", "ended"]
GroupKey = tuple[tuple[str, str], ...]


def event_time(item: TaggedItem) -> datetime:
    """When the item happened: published_at, but never later than it was fetched (+ skew)."""
    if item.published_at is None:
        return item.fetched_at
    return min(item.published_at, item.fetched_at + FUTURE_SKEW)


@dataclass(frozen=True, slots=True)
class Observation:
    """An item as the window keeps it: what counting and alert text read, plus its JSON for the
    few items an alert shows. A decoded TaggedItem held ~6 KB (tags and evidence as models);
    its JSON ~1 KB — the window holds every matching item for the rules' horizon."""

    id: str
    time: datetime
    story: str
    source: str
    story_sources: int
    fetched_at: datetime
    actors: tuple[str, ...]
    regions: tuple[str, ...]
    payload: bytes  # the TaggedItem as JSON

    @classmethod
    def of(cls, item: TaggedItem, time: datetime, payload: bytes | None = None) -> Observation:
        """`payload`: the item's JSON when the caller has it (the Kafka record it came in)."""
        return cls(
            item.id,
            time,
            item.story_id or item.id,
            item.source,
            item.story_sources,
            item.fetched_at,
            tuple(dict.fromkeys(a.code for a in item.actors)),
            tuple(item.regions),
            payload if payload is not None else item.model_dump_json().encode(),
        )

    @property
    def item(self) -> TaggedItem:
        """The whole item, decoded again (for the items an alert shows, and restores)."""
        return TaggedItem.model_validate_json(self.payload)


@functools.lru_cache(maxsize=65536)
def fingerprint(rule: str, group: GroupKey) -> str:
    """Stable hash of rule + group values: the alert's identity and Kafka key."""
    payload = json.dumps([rule, [list(pair) for pair in group]], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------- matching


def _tag_ok(tag: Tag, flt: Filter) -> bool:
    if flt.labels and tag.label not in flt.labels:
        return False
    if flt.subtypes and tag.subtype not in flt.subtypes:
        return False
    if flt.min_intensity is not None and tag.intensity < flt.min_intensity:
        return False
    if flt.max_intensity is not None and tag.intensity > flt.max_intensity:
        return False
    if flt.min_magnitude is not None and abs(tag.intensity) < flt.min_magnitude:
        return False
    return tag.confidence >= flt.min_confidence


def matching_tags(flt: Filter, item: TaggedItem) -> list[Tag] | None:
    """The tags that satisfy the filter, or None when the item does not match at all."""
    if flt.regions and not set(flt.regions) & set(item.regions):
        return None
    if flt.actors and not set(flt.actors) & {a.code.upper() for a in item.actors}:
        return None
    if flt.dyads and not set(flt.dyads) & set(_dyads(item)):
        return None
    if flt.sources and item.source not in flt.sources:
        return None
    if flt.feeds and (item.feed or item.source) not in flt.feeds:
        return None
    if item.story_sources < flt.min_story_sources:
        return None
    tags = [tag for tag in item.tags if _tag_ok(tag, flt)]
    if flt.needs_tag and not tags:
        return None
    return tags


def _dyads(item: TaggedItem) -> list[str]:
    """Unordered actor pairs `A-B`; from the tagger's dyads, else from the actors it found."""
    if item.dyads:
        pairs = {"-".join(sorted((d.source.upper(), d.target.upper()))) for d in item.dyads}
    else:
        codes = sorted({a.code.upper() for a in item.actors})
        if len(codes) > MAX_ACTORS_FOR_PAIRS:  # a round-up of the world is not a dyad
            return []
        pairs = {f"{a}-{b}" for a, b in itertools.combinations(codes, 2)}
    return sorted(p for p in pairs if p.split("-")[0] != p.split("-")[1])


def group_values(rule: Rule, item: TaggedItem, tags: Sequence[Tag]) -> list[GroupKey]:
    """Every group the item belongs to under the rule (the product over its group keys)."""
    flt = rule.filter
    options: list[list[tuple[str, str]]] = []
    for key in rule.groups:
        values: Iterable[str]
        if key == "region":
            values = [r for r in item.regions if not flt.regions or r in flt.regions]
        elif key == "actor":
            codes = {a.code.upper() for a in item.actors}
            values = sorted(c for c in codes if not flt.actors or c in flt.actors)
        elif key == "dyad":
            values = [d for d in _dyads(item) if not flt.dyads or d in flt.dyads]
        elif key == "tag":
            values = sorted({t.label for t in tags})
        elif key == "subtype":
            values = sorted({t.subtype for t in tags})
        elif key == "source":
            values = [item.source]
        elif key == "feed":
            values = [item.feed or item.source]
        else:  # story
            values = [item.story_id or item.id]
        unique = list(dict.fromkeys(values))
        if not unique:
            return []
        options.append([(key, value) for value in unique])
    return [tuple(combo) for combo in itertools.product(*options)]


# ---------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class GroupCount:
    """What a group's window holds: the counts, the counted observations, the window."""

    items: int
    stories: int
    sources: int
    start: datetime
    end: datetime
    members: tuple[Observation, ...] = ()
    baseline: float | None = None

    def value(self, count_by: str) -> int:
        return {"items": self.items, "stories": self.stories, "sources": self.sources}[count_by]


class Members:
    """One group's observations sorted by time, with each story's outlets kept incrementally.

    Windows are slices found by bisection, so counting costs the window, not the whole history.
    """

    def __init__(self, observations: Iterable[Observation] = ()) -> None:
        self.obs: list[Observation] = []
        self.times: list[float] = []
        self._outlets: dict[str, Counter[str]] = {}
        self._reported: dict[str, Counter[int]] = {}
        self._corroboration: dict[str, int] = {}
        for obs in observations:
            self.add(obs)

    def __len__(self) -> int:
        return len(self.obs)

    def add(self, obs: Observation) -> None:
        at = obs.time.timestamp()
        index = bisect.bisect_right(self.times, at)
        self.times.insert(index, at)
        self.obs.insert(index, obs)
        self._outlets.setdefault(obs.story, Counter())[obs.source] += 1
        self._reported.setdefault(obs.story, Counter())[obs.story_sources] += 1
        self._update(obs.story)

    def _update(self, story: str) -> None:
        outlets = self._outlets.get(story)
        if not outlets:
            self._corroboration.pop(story, None)
            return
        self._corroboration[story] = max(len(outlets), max(self._reported[story]))

    def prune(self, cutoff: datetime) -> None:
        """Forget observations at or before the cutoff."""
        index = bisect.bisect_right(self.times, cutoff.timestamp())
        touched = {obs.story for obs in self.obs[:index]}
        for obs in self.obs[:index]:
            outlets, reported = self._outlets[obs.story], self._reported[obs.story]
            outlets[obs.source] -= 1
            reported[obs.story_sources] -= 1
            if outlets[obs.source] <= 0:
                del outlets[obs.source]
            if reported[obs.story_sources] <= 0:
                del reported[obs.story_sources]
            if not outlets:
                del self._outlets[obs.story], self._reported[obs.story]
        del self.obs[:index], self.times[:index]
        for story in touched:
            self._update(story)

    def between(self, start: datetime, end: datetime) -> list[Observation]:
        """Observations with start < time ≤ end."""
        lo = bisect.bisect_right(self.times, start.timestamp())
        hi = bisect.bisect_right(self.times, end.timestamp())
        return self.obs[lo:hi]

    def corroborated(self, story: str) -> int:
        """Outlets behind a story: max(distinct outlets seen, the processor's story_sources)."""
        return self._corroboration.get(story, 1)

    def count(self, start: datetime, end: datetime, corroboration: int) -> GroupCount:
        """Distinct items/stories/sources in (start, end]; a story counts once corroborated."""
        inside = self.between(start, end)
        if corroboration > 1:
            known = self._corroboration
            inside = [m for m in inside if known.get(m.story, 1) >= corroboration]
        stories = {m.story for m in inside}
        sources = {m.source for m in inside}
        return GroupCount(len(inside), len(stories), len(sources), start, end, tuple(inside))


def count_group(
    members: Iterable[Observation], start: datetime, end: datetime, corroboration: int
) -> GroupCount:
    """Count a window over any observations (corroboration may come from outside the window)."""
    return Members(members).count(start, end, corroboration)


def _hopping_ends(now: datetime, hop: timedelta, lateness: timedelta) -> list[datetime]:
    """Ends of the hopping windows still open at `now`: the current one, then those that ended
    less than `lateness` ago (a late item may still complete them)."""
    step = hop.total_seconds()
    end = math.floor(now.timestamp() / step) * step + step
    ends = [datetime.fromtimestamp(end, UTC)]
    end -= step
    while end > now.timestamp() - lateness.total_seconds():
        ends.append(datetime.fromtimestamp(end, UTC))
        end -= step
    return ends


# ---------------------------------------------------------------------------- lifecycle


@dataclass(frozen=True)
class NotifyRecord:
    """What was notified for one fingerprint: survives restarts (the duplicate guard)."""

    fingerprint: str
    rule: str
    group: GroupKey
    status: Status
    episode_start: datetime
    last_notified_at: datetime
    notification: int
    notified_count: int
    silenced: bool = False

    def to_json(self) -> str:
        data = {
            **self.__dict__,
            "group": [list(p) for p in self.group],
            "episode_start": self.episode_start.isoformat(),
            "last_notified_at": self.last_notified_at.isoformat(),
        }
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> NotifyRecord:
        data = json.loads(text)
        data["group"] = tuple(tuple(p) for p in data["group"])
        data["episode_start"] = datetime.fromisoformat(data["episode_start"])
        data["last_notified_at"] = datetime.fromisoformat(data["last_notified_at"])
        return cls(**data)


@dataclass(frozen=True)
class Decision:
    """An alert the engine decided on; silenced ones are reported but not delivered."""

    alert: Alert
    kind: Literal["firing", "grown", "repeat", "resolved"]
    silenced: bool = False
    origin: datetime | None = None  # newest contributing fetched_at: end-to-end latency start


@dataclass
class Changes:
    """State changed since the last take_changes(): what the service persists in one step."""

    items: list[Observation] = field(default_factory=list)
    records: dict[str, NotifyRecord] = field(default_factory=dict)
    dyads: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    arrivals: dict[tuple[str, int], int] = field(default_factory=dict)
    dropped_records: set[str] = field(default_factory=set)
    dropped_dyads: set[str] = field(default_factory=set)
    pruned_before: datetime | None = None


@dataclass
class _RuleState:
    rule: Rule
    groups: dict[GroupKey, Members] = field(default_factory=dict)
    # (group, item id) → which of the item's tags matched the filter (indexes into item.tags)
    tags: dict[tuple[GroupKey, str], tuple[int, ...]] = field(default_factory=dict)


class Engine:
    """Window state + notification records for a rules file; every method takes `now`."""

    def __init__(
        self,
        rules: RulesFile,
        *,
        lateness: timedelta = timedelta(minutes=5),
        started_at: datetime | None = None,
        learning_since: datetime | None = None,
        max_items: int = 10,
    ) -> None:
        self.rules = rules
        self.lateness = lateness
        self.horizon = rules.horizon(lateness)
        # started_at: this process's start (flatline needs a full window of watching);
        # learning_since: the first start ever (new_dyad warm-up survives restarts).
        self.started_at = started_at
        self.learning_since = learning_since or started_at
        self.rule_errors: dict[str, int] = {}
        self.max_items = max_items
        self.items: dict[str, Observation] = {}
        self.records: dict[str, NotifyRecord] = {}
        # dyad → (last seen, start of its current "new" period)
        self.dyads: dict[str, tuple[datetime, datetime]] = {}
        # (feed, bucket start in epoch seconds) → items that arrived in that minute
        self.arrivals: dict[tuple[str, int], int] = {}
        self.late_items = 0
        self.memory = max(
            (r.memory for r in rules.active_rules if r.type == "new_dyad"), default=timedelta(0)
        )
        self.keep_records = max([r.cooldown for r in rules.active_rules] + [self.horizon])
        self._state = {r.name: _RuleState(r) for r in rules.active_rules}
        self._baselines: dict[tuple[str, GroupKey], tuple[int, float]] = {}
        self._held: set[str] = set()  # resolved groups that got items during their cooldown
        self._first_tick = True
        self._last_prune: datetime | None = None
        self._changes = Changes()

    # -- state in and out

    def restore(
        self,
        *,
        items: Iterable[Observation] = (),
        records: Iterable[NotifyRecord] = (),
        dyads: dict[str, tuple[datetime, datetime]] | None = None,
        arrivals: dict[tuple[str, int], int] | None = None,
    ) -> None:
        """Load persisted state (no notifications are decided while loading)."""
        for record in records:
            self.records[record.fingerprint] = record
        self.dyads.update(dyads or {})
        self.arrivals.update(arrivals or {})
        for obs in sorted(items, key=lambda o: o.time):
            self._add(obs, obs.item, remember_dyads=False)
        self._changes = Changes()

    @property
    def changes(self) -> Changes:
        """Changes since the last take_changes(), left in place (take them once persisted)."""
        return self._changes

    def take_changes(self) -> Changes:
        changes, self._changes = self._changes, Changes()
        return changes

    # -- input

    def ingest(
        self,
        item: TaggedItem,
        now: datetime,
        silences: Sequence[Silence] = (),
        *,
        defer: bool = False,
        payload: bytes | None = None,
    ) -> list[Decision]:
        """Add one item and decide for the groups it touched. Redeliveries are ignored.

        `payload`: the item's JSON if at hand (else it is encoded again). `defer`: replaying
        history into a rebuilt window, where a group seen half-way would look cleared: nothing
        is decided until `settle`, once the replay is complete.
        """
        self._start(now)
        if item.id in self.items:
            return []
        bucket = (item.feed or item.source, int(now.timestamp()) // ARRIVAL_BUCKET_S)
        self.arrivals[bucket] = self.arrivals.get(bucket, 0) + 1
        self._changes.arrivals[bucket] = self.arrivals[bucket]
        self._changes.arrivals[("", bucket[1])] = self._bump_pipeline(bucket[1])
        when = min(event_time(item), now)  # ahead of our clock (skew): it happened now
        if when <= now - self.horizon:
            self.late_items += 1  # too late for every window: counted, not evaluated
            return []
        obs = Observation.of(item, when, payload)
        touched = self._add(obs, item, remember_dyads=True)
        if not touched:  # no rule wants it: keep neither memory nor disk for it
            del self.items[item.id]
            return []
        self._changes.items.append(obs)
        if defer:
            return []
        return self._decide_touched(touched, now, silences)

    def settle(self, now: datetime, silences: Sequence[Silence] = ()) -> list[Decision]:
        """Decide every group in the windows, as the last of a replay (see `ingest`). Every
        group, not only those the replay touched: a replay interrupted and started again skips
        the items the first one stored, and their groups must be decided too."""
        groups = [(name, group) for name, state in self._state.items() for group in state.groups]
        return self._decide_touched(groups, now, silences)

    def _decide_touched(
        self, touched: Iterable[tuple[str, GroupKey]], now: datetime, silences: Sequence[Silence]
    ) -> list[Decision]:
        decisions = []
        for rule_name, group in touched:
            state = self._state[rule_name]
            if not self._may_notify(state.rule, fingerprint(rule_name, group), now):
                continue
            decisions += self._safe_decide(state, group, now, silences)
        return decisions

    def _may_notify(self, rule: Rule, fp: str, now: datetime) -> bool:
        """Whether a new item could lead to a notification now (counting is the costly part).

        A new item cannot clear a condition, so inside the cooldown (and before the repeat
        interval) there is nothing to decide until the next tick.
        """
        record = self.records.get(fp)
        if record is None or record.silenced:
            return True
        since = now - record.last_notified_at
        if since >= rule.cooldown:
            return True
        if rule.repeat_interval is not None and since >= rule.repeat_interval:
            return True
        self._held.add(fp)  # the next tick after the cooldown decides it
        return False

    def _safe_decide(
        self, state: _RuleState, group: GroupKey, now: datetime, silences: Sequence[Silence]
    ) -> list[Decision]:
        """One rule's failure (a bug, odd data) must not stop the other rules or the stream."""
        try:
            return self._decide(state, group, now, silences)
        except (ArithmeticError, ValueError, KeyError, TypeError, IndexError):
            name = state.rule.name
            self.rule_errors[name] = self.rule_errors.get(name, 0) + 1
            return []

    def _start(self, now: datetime) -> None:
        if self.started_at is None:
            self.started_at = now
        if self.learning_since is None:
            self.learning_since = now

    def _bump_pipeline(self, minute: int) -> int:
        key = ("", minute)
        self.arrivals[key] = self.arrivals.get(key, 0) + 1
        return self.arrivals[key]

    def _add(
        self, obs: Observation, item: TaggedItem, *, remember_dyads: bool
    ) -> list[tuple[str, GroupKey]]:
        self.items[obs.id] = obs
        touched = []
        for state in self._state.values():
            rule = state.rule
            if rule.type == "flatline":
                continue
            tags = matching_tags(rule.filter, item)
            if tags is None:
                continue
            matched = tuple(i for i, tag in enumerate(item.tags) if any(tag is t for t in tags))
            for group in group_values(rule, item, tags):
                if rule.type == "new_dyad" and remember_dyads:
                    self._remember_dyad(rule, group[0][1], obs.time)
                state.groups.setdefault(group, Members()).add(obs)
                state.tags[(group, obs.id)] = matched
                touched.append((rule.name, group))
        return touched

    def _remember_dyad(self, rule: Rule, dyad: str, when: datetime) -> None:
        key = f"{rule.name}|{dyad}"
        last, novel = self.dyads.get(key, (None, None))
        if last is None or novel is None or when - last > rule.memory:
            novel = when
        last = when if last is None else max(last, when)
        self.dyads[key] = (last, novel)
        self._changes.dyads[key] = (last, novel)

    # -- periodic

    def tick(self, now: datetime, silences: Sequence[Silence] = ()) -> list[Decision]:
        """Re-evaluate what time alone can change, then drop expired state.

        Time changes a group with a record (it may clear, repeat, leave its cooldown or its
        silence), a spike's baseline, and flatlines; every other group can only change with a
        new item, which ingest() evaluates.
        """
        self._start(now)
        decisions: list[Decision] = []
        recorded: dict[str, set[GroupKey]] = {}
        for record in self.records.values():
            if self._needs_tick(record, now):
                recorded.setdefault(record.rule, set()).add(record.group)
        self._first_tick = False
        for state in self._state.values():
            groups = recorded.get(state.rule.name, set())
            if state.rule.type == "spike":
                groups |= set(state.groups)
            if state.rule.type == "flatline":
                groups |= self._flatline_groups(state.rule, now)
            for group in sorted(groups):
                decisions += self._safe_decide(state, group, now, silences)
        self._prune(now)
        return decisions

    def _needs_tick(self, record: NotifyRecord, now: datetime) -> bool:
        """Whether time alone may change this record's group (counting is what ticks cost).

        Silenced groups and firing groups that send a resolution are checked every tick; a
        quiet-ending firing group (any, new_dyad, resolve: false) once its window has passed or
        a repeat is due; a resolved one only if an item arrived during its cooldown.
        """
        state = self._state.get(record.rule)
        if state is None:
            return False
        if record.silenced or self._first_tick or record.fingerprint in self._held:
            return True
        if record.status != "firing":
            return False
        rule = state.rule
        if self._resolves(rule):
            return True
        since = now - record.last_notified_at
        repeat = rule.repeat_interval
        return since >= rule.window or (repeat is not None and since >= repeat)

    @staticmethod
    def _resolves(rule: Rule) -> bool:
        return rule.resolve and rule.type not in ("any", "new_dyad")

    def _prune(self, now: datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        for fp, record in list(self.records.items()):
            if record.status != "firing" and now - record.last_notified_at > self.keep_records:
                del self.records[fp]  # past every cooldown: the record guards nothing any more
                self._changes.dropped_records.add(fp)
        for key, (last, _) in list(self.dyads.items()):
            if now - last > self.memory:
                del self.dyads[key]
                self._changes.dropped_dyads.add(key)
        cutoff = now - self.horizon
        if not any(obs.time <= cutoff for obs in self.items.values()):
            return
        self.items = {k: o for k, o in self.items.items() if o.time > cutoff}
        for state in self._state.values():
            for group, members in list(state.groups.items()):
                members.prune(cutoff)
                if not members:
                    del state.groups[group]
            state.tags = {k: v for k, v in state.tags.items() if k[1] in self.items}
        minute = int(cutoff.timestamp()) // ARRIVAL_BUCKET_S
        self.arrivals = {k: v for k, v in self.arrivals.items() if k[1] >= minute}
        self._changes.pruned_before = cutoff

    # -- conditions

    def _flatline_groups(self, rule: Rule, now: datetime) -> set[GroupKey]:
        if not rule.group_by:
            return {()}
        feeds = {feed for feed, _ in self.arrivals if feed}
        if rule.filter.feeds:
            feeds |= set(rule.filter.feeds)
        return {(("feed", feed),) for feed in feeds}

    def condition(self, rule: Rule, group: GroupKey, now: datetime) -> GroupCount | None:
        """The group's count when the rule's condition holds at `now`, else None."""
        members = self._state[rule.name].groups.get(group) or Members()
        if rule.type == "flatline":
            return self._flatline(rule, group, now)
        if rule.type == "new_dyad":
            return self._new_dyad(rule, group, members, now)
        if rule.type == "spike":
            return self._spike(rule, group, members, now)
        ends = [now]
        if rule.window_type == "hopping" and rule.hop is not None:
            ends = _hopping_ends(now, rule.hop, self.lateness)
        for end in ends:
            if len(members.between(end - rule.window, end)) < rule.threshold:
                continue  # stories and sources never exceed items: skip the distinct counting
            count = members.count(end - rule.window, end, rule.corroboration)
            if self._holds(rule, count):
                return count
        return None

    @staticmethod
    def _holds(rule: Rule, count: GroupCount) -> bool:
        return count.value(rule.count) >= rule.threshold and count.sources >= rule.min_sources

    def _spike(
        self, rule: Rule, group: GroupKey, members: Members, now: datetime
    ) -> GroupCount | None:
        history = rule.window * rule.baseline_windows
        if self.learning_since is None or now - self.learning_since < history:
            return None  # no baseline yet: everything would look like a spike after a first start
        current = members.count(now - rule.window, now, rule.corroboration)
        if not self._holds(rule, current):
            return None
        baseline = self._baseline(rule, group, members, now)
        if current.value(rule.count) < rule.ratio * baseline:
            return None
        return replace(current, baseline=baseline)

    def _baseline(self, rule: Rule, group: GroupKey, members: Members, now: datetime) -> float:
        """Mean count of the earlier windows; recomputed at most once a minute per group."""
        minute = int(now.timestamp()) // 60
        cached = self._baselines.get((rule.name, group))
        if cached is not None and cached[0] == minute:
            return cached[1]
        earlier = [
            members.count(
                now - rule.window * (k + 1), now - rule.window * k, rule.corroboration
            ).value(rule.count)
            for k in range(1, rule.baseline_windows + 1)
        ]
        baseline = sum(earlier) / len(earlier)
        self._baselines[(rule.name, group)] = (minute, baseline)
        return baseline

    def _new_dyad(
        self, rule: Rule, group: GroupKey, members: Members, now: datetime
    ) -> GroupCount | None:
        if not group:
            return None
        _, novel = self.dyads.get(f"{rule.name}|{group[0][1]}", (None, None))
        if novel is None or now - novel >= rule.window:
            return None
        if self.learning_since is not None and novel - self.learning_since < rule.warmup:
            return None  # still learning which pairs are already known
        count = members.count(
            max(novel - timedelta(microseconds=1), now - rule.window), now, rule.corroboration
        )
        return count if self._holds(rule, count) else None

    def _flatline(self, rule: Rule, group: GroupKey, now: datetime) -> GroupCount | None:
        if self.started_at is None or now - self.started_at < max(rule.window, rule.warmup):
            return None  # a fresh alerter has not watched long enough to call anything quiet
        count = self._flatline_count(rule, group, now)
        return count if count.items < rule.threshold else None

    def _flatline_count(self, rule: Rule, group: GroupKey, now: datetime) -> GroupCount:
        """Items that arrived from the feed ('' = every feed) in the window, at minute buckets."""
        feed = group[0][1] if group else ""
        first = int((now - rule.window).timestamp()) // ARRIVAL_BUCKET_S + 1
        last = int(now.timestamp()) // ARRIVAL_BUCKET_S
        total = sum(self.arrivals.get((feed, m), 0) for m in range(first, last + 1))
        return GroupCount(total, total, 1 if total else 0, now - rule.window, now)

    # -- notification lifecycle

    def _decide(
        self, state: _RuleState, group: GroupKey, now: datetime, silences: Sequence[Silence]
    ) -> list[Decision]:
        rule = state.rule
        fp = fingerprint(rule.name, group)
        record = self.records.get(fp)
        count = self.condition(rule, group, now)
        if (
            record is not None
            and record.status != "firing"
            and now - record.last_notified_at >= rule.cooldown
        ):
            self._held.discard(fp)
        labels = match_labels(rule.name, rule.severity, rule.type, dict(group), rule.labels)
        silenced = is_silenced(silences, labels, now)
        if count is None:
            return self._clear(state, group, record, now, silenced)
        value = count.value(rule.count)
        kind = self._notify_kind(rule, record, value, now)
        if kind is None:
            return []
        if silenced:
            if record is not None and record.silenced and record.status == "firing":
                return []
            return [self._silence(rule, fp, group, record, count, now, kind)]
        episode = record.episode_start if record and kind != "firing" else now
        number = record.notification + 1 if record and kind != "firing" else 1
        alert = self._alert(state, group, fp, count, now, "firing", number, episode)
        self._store(NotifyRecord(fp, rule.name, group, "firing", episode, now, number, value))
        origin = max((m.fetched_at for m in count.members), default=None)
        return [Decision(alert, kind, origin=origin)]

    @staticmethod
    def _notify_kind(
        rule: Rule, record: NotifyRecord | None, value: int, now: datetime
    ) -> Literal["firing", "grown", "repeat"] | None:
        if record is None:
            return "firing"
        since = now - record.last_notified_at
        if record.status != "firing" or record.silenced:
            if record.silenced and record.status == "firing":
                return "firing"  # the silence ended while the condition still holds
            return "firing" if since >= rule.cooldown else None
        growth = rule.renotify_growth
        if (
            growth is not None
            and value >= record.notified_count * growth
            and since >= rule.cooldown
        ):
            return "grown"
        if rule.repeat_interval is not None and since >= rule.repeat_interval:
            return "repeat"
        return None

    def _silence(
        self,
        rule: Rule,
        fp: str,
        group: GroupKey,
        record: NotifyRecord | None,
        count: GroupCount,
        now: datetime,
        kind: Literal["firing", "grown", "repeat"],
    ) -> Decision:
        state = self._state[rule.name]
        base = record or NotifyRecord(fp, rule.name, group, "firing", now, now, 0, 0)
        self._store(replace(base, status="firing", silenced=True))
        alert = self._alert(state, group, fp, count, now, "firing", 1, now)
        return Decision(alert, kind, silenced=True)

    def _clear(
        self,
        state: _RuleState,
        group: GroupKey,
        record: NotifyRecord | None,
        now: datetime,
        silenced: bool,
    ) -> list[Decision]:
        if record is None or record.status != "firing":
            return []
        rule = state.rule
        quiet = record.silenced or not self._resolves(rule)
        if quiet:
            self._store(replace(record, status="ended"))
            return []
        if rule.type == "flatline":
            count = self._flatline_count(rule, group, now)
        else:
            members = state.groups.get(group) or Members()
            count = members.count(now - rule.window, now, rule.corroboration)
        alert = self._alert(
            state, group, record.fingerprint, count, now, "resolved", record.notification + 1,
            record.episode_start,
        )  # fmt: skip
        self._store(replace(record, status="resolved", last_notified_at=now))
        return [Decision(alert, "resolved", silenced=silenced)]

    def _store(self, record: NotifyRecord) -> None:
        self.records[record.fingerprint] = record
        self._changes.records[record.fingerprint] = record

    # -- building the alert

    def _alert(
        self,
        state: _RuleState,
        group: GroupKey,
        fp: str,
        count: GroupCount,
        now: datetime,
        status: Literal["firing", "resolved"],
        number: int,
        episode: datetime,
    ) -> Alert:
        rule = state.rule
        members = sorted(count.members, key=lambda m: m.time, reverse=True)
        limit = rule.max_items or self.max_items
        chosen = _top_items(members, limit)
        items = [_alert_item(m, state.tags.get((group, m.id))) for m in chosen]
        times = [m.time for m in members] or [count.start, count.end]
        return Alert(
            fingerprint=fp,
            rule=rule.name,
            rule_type=rule.type,
            severity=rule.severity,
            status=status,
            group=dict(group),
            summary=summarize(rule, group, count, status),
            counts=AlertCounts(items=count.items, stories=count.stories, sources=count.sources),
            threshold=rule.threshold,
            window_seconds=rule.window.total_seconds(),
            first_seen=min(min(times), episode),
            last_seen=max(times),
            items=items,
            actors=sorted({code for m in members for code in m.actors}),
            regions=sorted({r for m in members for r in m.regions}),
            labels=dict(rule.labels),
            notification=number,
            fired_at=now,
        )


def _alert_item(obs: Observation, matched: tuple[int, ...] | None) -> AlertItem:
    """An item as an alert shows it, with the tags that matched the rule (else all)."""
    item = obs.item
    tags = item.tags if matched is None else [item.tags[i] for i in matched]
    return AlertItem(
        id=item.id,
        title=item.title,
        url=item.url,
        source=item.source,
        published_at=obs.time,
        story_id=obs.story,
        tags=tags,
    )


def _top_items(members: Sequence[Observation], limit: int) -> list[Observation]:
    """One item per story first (newest stories first), then further reports of them."""
    firsts: dict[str, Observation] = {}
    for m in members:
        firsts.setdefault(m.story, m)
    rest = [m for m in members if firsts[m.story] is not m]
    return (list(firsts.values()) + rest)[:limit]


def human_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_UNIT = {"stories": "story", "items": "item", "sources": "source"}


def _n(count: int, noun: str) -> str:
    """`1 story`, `3 stories`, `2 sources`: summaries are read by people."""
    if count == 1:
        return f"1 {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{count} {plural}"


def summarize(
    rule: Rule, group: GroupKey, count: GroupCount, status: Literal["firing", "resolved"]
) -> str:
    """One line for a person at 3 a.m.: what, where, how many stories and sources, window."""
    regions = sorted({r for m in count.members for r in m.regions})
    where = ", ".join(f"{k} {v}" for k, v in group if k != "story")
    where = where or ", ".join(regions[:3]) or "all news"
    window = human_duration(rule.window)
    what = "/".join(rule.filter.subtypes or rule.filter.labels) or "matching"
    prefix = "RESOLVED " if status == "resolved" else ""
    if rule.type == "flatline":
        feed = dict(group).get("feed", "the whole pipeline")
        return (
            f"{prefix}{rule.name}: {feed} delivered {_n(count.items, 'item')} in the last {window} "
            f"(expected ≥ {rule.threshold:g})"
        )[:1000]
    if rule.type == "new_dyad":
        pair = dict(group).get("dyad", "?")
        return (
            f"{prefix}{rule.name}: new {what} pair {pair} — {_n(count.stories, 'story')} from "
            f"{_n(count.sources, 'source')}, first in {human_duration(rule.memory)}"
        )[:1000]
    head = (
        f"{prefix}{rule.name}: {_n(count.stories, what + ' story')} in {where} in the last "
        f"{window} from {_n(count.sources, 'source')} ({_n(count.items, 'article')}; threshold "
        f"{rule.threshold:g} {_UNIT[rule.count] if rule.threshold == 1 else rule.count})"
    )
    if count.baseline is not None:
        head += f", baseline {count.baseline:.1f} per {window}"
    return head[:1000]
