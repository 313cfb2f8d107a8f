"""Pure rule evaluation: every rule type and the notification lifecycle, with an explicit clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from blocwatch.alerter.evaluation import Decision, Engine, Observation, event_time, fingerprint
from blocwatch.alerter.messages import render_text
from blocwatch.alerter.silences import Silence
from blocwatch.core.models import TaggedItem

from .alerting import T0, rules, tagged

M = timedelta(minutes=1)
S = timedelta(seconds=1)

SURGE = """
rules:
  - name: surge
    severity: critical
    filter: {labels: [escalation], regions: [Korean Peninsula]}
    count: stories
    threshold: 3
    group_by: [region]
    window: 1h
    cooldown: 10m
    renotify_growth: 2
    resolve: true
"""


def feed(engine: Engine, items: list[TaggedItem]) -> list[Decision]:
    """Ingest items with the clock at each item's own time."""
    out: list[Decision] = []
    for item in items:
        out += engine.ingest(item, event_time(item))
    return out


def story_items(count: int, start: int = 0, **kw: object) -> list[TaggedItem]:
    return [tagged(f"i{n}", at=T0 + M * n, **kw) for n in range(start, start + count)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("items", "fires_at"),
    [
        pytest.param([tagged(f"c{n}", story="same", source=f"s{n}") for n in range(5)], None,
                     id="five copies of one story: never"),
        pytest.param(story_items(2), None, id="two distinct stories: not yet"),
        pytest.param(story_items(3), 2, id="third distinct story: fires"),
        pytest.param(story_items(5), 2, id="more stories: still fires once"),
        pytest.param(story_items(3, regions=("Taiwan Strait",)), None, id="other region: never"),
        pytest.param(story_items(3, label="alliance"), None, id="other label: never"),
    ],
)  # fmt: skip
def test_threshold_counts_distinct_stories(items: list[TaggedItem], fires_at: int | None) -> None:
    engine = Engine(rules(SURGE))
    fired = [n for n, item in enumerate(items) if engine.ingest(item, T0 + M * n)]
    assert fired == ([] if fires_at is None else [fires_at])


def test_alert_carries_counts_group_and_evidence() -> None:
    engine = Engine(rules(SURGE))
    [decision] = feed(engine, story_items(3))
    alert = decision.alert
    assert (alert.status, alert.severity, alert.notification) == ("firing", "critical", 1)
    assert alert.group == {"region": "Korean Peninsula"}
    assert (alert.counts.stories, alert.counts.items, alert.counts.sources) == (3, 3, 1)
    assert alert.fingerprint == fingerprint("surge", (("region", "Korean Peninsula"),))
    assert alert.items[0].tags[0].evidence[0].text == "fired a missile"
    text = render_text(alert)
    summary, first_item = text.splitlines()[0], text.splitlines()[1]
    assert "3 escalation stories in region Korean Peninsula in the last 1h from 1 source" in summary
    assert "Yonhap" in first_item
    assert "Headline" in first_item
    assert "why: escalation/weapons_test (CAMEO 150" in text
    assert 'escalation.weapons_test matched "fired a missile"' in text


def test_alert_items_show_the_tags_that_matched_also_after_a_restore() -> None:
    def joint_drill(item_id: str, minute: int) -> TaggedItem:
        item = tagged(item_id, at=T0 + minute * M)
        alliance = tagged(item_id, label="alliance", subtype="joint_exercise").tags[0]
        return item.model_copy(update={"tags": [alliance, *item.tags]})

    first = Engine(rules(SURGE))
    first.ingest(joint_drill("i0", 0), T0)
    first.ingest(joint_drill("i1", 1), T0 + M)
    window = first.take_changes().items
    second = Engine(rules(SURGE))  # the window as the store gives it back
    second.restore(items=[Observation.of(obs.item, obs.time) for obs in window])
    [decision] = second.ingest(joint_drill("i2", 2), T0 + 2 * M)
    assert len(decision.alert.items) == 3
    for shown in decision.alert.items:  # SURGE filters escalation: the alliance tag is not why
        assert [(t.label, t.subtype) for t in shown.tags] == [("escalation", "weapons_test")]


CORROBORATED = SURGE.replace("resolve: true", "resolve: true\n    corroboration: 2")


def test_corroboration_counts_a_story_once_two_outlets_report_it() -> None:
    engine = Engine(rules(CORROBORATED))
    single = [tagged(f"a{n}", source="Yonhap", at=T0 + M * n) for n in range(3)]
    assert feed(engine, single) == []
    # a second outlet on the third story corroborates only that one story
    assert engine.ingest(tagged("b2", story="story-a2", source="KCNA Watch"), T0 + 4 * M) == []
    # the processor's own story_sources counts as corroboration too
    more = [tagged(f"c{n}", source="NK News", story_sources=3) for n in range(2)]
    decisions = [d for item in more for d in engine.ingest(item, T0 + 5 * M)]
    assert len(decisions) == 1
    assert decisions[0].alert.counts.stories == 3


def test_min_sources_across_the_group() -> None:
    engine = Engine(rules(SURGE.replace("resolve: true", "resolve: true\n    min_sources: 2")))
    assert feed(engine, story_items(4)) == []
    [decision] = engine.ingest(tagged("x", source="Reuters"), T0 + 5 * M)
    assert decision.alert.counts.sources == 2


def test_regrowth_renotifies_after_cooldown_only() -> None:
    engine = Engine(rules(SURGE))
    assert len(feed(engine, story_items(3))) == 1  # fired at 3 stories, T0+2m
    # doubled to 6 within the cooldown (10m): nothing yet
    assert feed(engine, story_items(3, start=3)) == []
    assert engine.tick(T0 + 5 * M) == []
    # after the cooldown the grown group is re-notified once, numbered 2
    [again] = engine.tick(T0 + 13 * M)
    assert (again.kind, again.alert.notification, again.alert.counts.stories) == ("grown", 2, 6)
    assert engine.tick(T0 + 30 * M) == []


def test_repeat_interval() -> None:
    engine = Engine(rules(SURGE.replace("renotify_growth: 2", "repeat_interval: 20m")))
    feed(engine, story_items(3))
    assert engine.tick(T0 + 20 * M) == []
    [again] = engine.tick(T0 + 23 * M)
    assert again.kind == "repeat"


def test_resolves_when_the_window_clears_and_cooldown_holds_back_a_refire() -> None:
    engine = Engine(rules(SURGE))
    feed(engine, story_items(3))
    [resolved] = engine.tick(T0 + 60 * M + 30 * S)  # the first story left the 1h window
    assert resolved.alert.status == "resolved"
    assert resolved.alert.summary.startswith("RESOLVED surge: 2 escalation stories")
    assert resolved.alert.notification == 2
    # three new stories bring it back within the 10m cooldown after the resolution: held back
    assert feed(engine, [tagged(f"r{n}", at=T0 + (61 + n) * M) for n in range(3)]) == []
    [refire] = engine.tick(T0 + 72 * M)
    assert (refire.alert.status, refire.alert.notification) == ("firing", 1)


def test_no_resolved_notification_when_resolve_is_off() -> None:
    engine = Engine(rules(SURGE.replace("resolve: true", "resolve: false")))
    feed(engine, story_items(3))
    assert engine.tick(T0 + 61 * M) == []
    assert engine.records[next(iter(engine.records))].status == "ended"


def test_redelivered_items_are_ignored() -> None:
    engine = Engine(rules(SURGE))
    items = story_items(2)
    feed(engine, items + items + items)
    assert engine.tick(T0 + 10 * M) == []


def test_lateness_bounds_what_still_counts() -> None:
    engine = Engine(rules(SURGE), lateness=timedelta(minutes=5))
    now = T0 + timedelta(hours=3)
    # older than window + lateness: counted as late and dropped
    assert engine.ingest(tagged("old", at=T0), now) == []
    assert engine.late_items == 1
    # out of order but inside the window: counts
    decisions = [engine.ingest(tagged(f"o{n}", at=now - n * 10 * M), now) for n in (5, 1, 3)]
    assert [bool(d) for d in decisions] == [False, False, True]


def test_future_published_at_is_clamped_to_fetch_time() -> None:
    item = tagged("f", at=T0 + timedelta(days=2), fetched=T0)
    assert event_time(item) == T0 + timedelta(minutes=5)


HOPPING = SURGE.replace("window: 1h", "window: 1h\n    window_type: hopping\n    hop: 1h")


def test_hopping_window_accepts_late_items_for_a_closed_window_within_lateness() -> None:
    engine = Engine(rules(HOPPING), lateness=timedelta(minutes=10))
    for n in range(2):
        engine.ingest(tagged(f"h{n}", at=T0 + 50 * M + n * M), T0 + 55 * M)
    # 13:05: the 12:00–13:00 window closed 5 minutes ago; a late 12:58 item still completes it
    [decision] = engine.ingest(tagged("h-late", at=T0 + 58 * M), T0 + 65 * M)
    assert decision.alert.counts.stories == 3
    engine2 = Engine(rules(HOPPING), lateness=timedelta(minutes=10))
    for n in range(2):
        engine2.ingest(tagged(f"h{n}", at=T0 + 50 * M + n * M), T0 + 55 * M)
    # 13:15: past the lateness, the closed window no longer changes
    assert engine2.ingest(tagged("h-late", at=T0 + 58 * M), T0 + 75 * M) == []


def test_silence_suppresses_then_lets_the_alert_through_when_it_ends() -> None:
    engine = Engine(rules(SURGE))
    silence = Silence(
        id="s1",
        matchers={"rule": "surge", "region": "Korean Peninsula"},
        starts_at=T0,
        ends_at=T0 + 30 * M,
    )
    decisions = [
        d for n, i in enumerate(story_items(4)) for d in engine.ingest(i, T0 + n * M, [silence])
    ]
    assert [d.silenced for d in decisions] == [True]  # reported once, for metrics, not delivered
    assert engine.tick(T0 + 10 * M, [silence]) == []
    [after] = engine.tick(T0 + 31 * M, [silence])
    assert (after.silenced, after.alert.status) == (False, "firing")


def test_silence_for_another_region_does_not_match() -> None:
    engine = Engine(rules(SURGE))
    other = Silence(id="s2", matchers={"region": "Baltic"}, starts_at=T0, ends_at=T0 + M * 60)
    decisions = [
        d for n, i in enumerate(story_items(3)) for d in engine.ingest(i, T0 + n * M, [other])
    ]
    assert [d.silenced for d in decisions] == [False]


def test_group_by_fans_out_over_regions() -> None:
    engine = Engine(rules(SURGE.replace("regions: [Korean Peninsula]", "")))
    items = story_items(3, regions=("Korean Peninsula", "East China Sea"))
    groups = sorted(d.alert.group["region"] for d in feed(engine, items))
    assert groups == ["East China Sea", "Korean Peninsula"]


SPIKE = """
rules:
  - name: spike
    type: spike
    filter: {labels: [escalation]}
    group_by: [region]
    window: 1h
    baseline_windows: 3
    ratio: 3
    threshold: 3
"""


def test_spike_against_the_baseline_of_earlier_windows() -> None:
    engine = Engine(rules(SPIKE), started_at=T0)
    now = T0 + timedelta(hours=4)
    # baseline: 2 stories in each of the three earlier hours → mean 2; 3 now is no spike
    history = [
        tagged(f"b{h}{n}", at=T0 + timedelta(hours=h, minutes=10 + n))
        for h in (0, 1, 2)
        for n in range(2)
    ]
    for item in history:
        engine.ingest(item, now)
    current = [tagged(f"n{n}", at=now - 10 * M + n * M) for n in range(6)]
    fired = [n for n, item in enumerate(current) if engine.ingest(item, now)]
    assert fired == [5]  # 6 ≥ 3 × 2
    decision = engine.tick(now)
    assert decision == []


def test_no_spike_before_a_whole_baseline_was_watched() -> None:
    engine = Engine(rules(SPIKE), started_at=T0)
    burst = [tagged(f"n{n}", at=T0 + 10 * M + n * M) for n in range(6)]
    assert feed(engine, burst) == []  # 3 hours of baseline not seen yet: not a spike


ANY = """
rules:
  - name: pact
    type: any
    severity: critical
    filter: {labels: [alliance], subtypes: [defence_pact], actors: [RUS, PRK]}
    corroboration: 2
    window: 24h
"""


def test_any_fires_per_story_once_corroborated() -> None:
    engine = Engine(rules(ANY))
    pact = {"label": "alliance", "subtype": "defence_pact", "actors": ("RUS", "PRK")}
    assert engine.ingest(tagged("p1", story="pact", source="TASS", **pact), T0) == []  # type: ignore[arg-type]
    [first] = engine.ingest(tagged("p2", story="pact", source="Reuters", **pact), T0 + M)  # type: ignore[arg-type]
    assert first.alert.group == {"story": "pact"}
    assert engine.ingest(tagged("p3", story="pact", source="AP", **pact), T0 + 2 * M) == []  # type: ignore[arg-type]
    assert engine.tick(T0 + timedelta(hours=25)) == []  # ends quietly: nothing to resolve


NEW_DYAD = """
rules:
  - name: dyad
    type: new_dyad
    filter: {labels: [alliance]}
    memory: 30d
    window: 1d
    cooldown: 1h
    renotify_growth: null
"""


def alliance(item_id: str, at: timedelta, pair: tuple[str, str] = ("RUS", "PRK")) -> TaggedItem:
    return tagged(item_id, at=T0 + at, label="alliance", subtype="defence_pact", dyads=(pair,))


def test_new_dyad_fires_for_a_pair_not_seen_for_memory_days() -> None:
    engine = Engine(rules(NEW_DYAD))
    [first] = engine.ingest(alliance("d1", timedelta(0)), T0)
    assert first.alert.group == {"dyad": "PRK-RUS"}
    assert (
        engine.ingest(alliance("d2", timedelta(days=3), ("PRK", "RUS")), T0 + timedelta(days=3))
        == []
    )
    later = timedelta(days=34)  # 31 days after the last sighting
    [again] = engine.ingest(alliance("d3", later), T0 + later)
    assert again.alert.status == "firing"
    [other] = engine.ingest(alliance("d4", later, ("CHN", "IRN")), T0 + later)
    assert other.alert.group == {"dyad": "CHN-IRN"}


def test_new_dyad_warmup_learns_known_pairs_first() -> None:
    engine = Engine(rules(NEW_DYAD.replace("cooldown: 1h", "cooldown: 1h\n    warmup: 2h")))
    assert engine.ingest(alliance("w1", timedelta(0)), T0) == []
    assert engine.ingest(alliance("w2", timedelta(hours=3)), T0 + timedelta(hours=3)) == []
    [new] = engine.ingest(
        alliance("w3", timedelta(hours=3), ("USA", "PHL")), T0 + timedelta(hours=3)
    )
    assert new.alert.group == {"dyad": "PHL-USA"}


FLATLINE = """
rules:
  - name: quiet
    type: flatline
    severity: critical
    threshold: 1
    window: 30m
    cooldown: 1h
  - name: quiet-feed
    type: flatline
    group_by: [feed]
    threshold: 1
    window: 30m
"""


def test_flatline_of_the_pipeline_and_of_one_feed() -> None:
    engine = Engine(rules(FLATLINE), started_at=T0)
    assert engine.tick(T0 + 20 * M) == []  # not watched for a whole window yet
    engine.ingest(tagged("a", feed="yonhap", tags=False), T0 + 21 * M)
    engine.ingest(tagged("b", feed="kcna", tags=False), T0 + 21 * M)
    assert engine.tick(T0 + 45 * M) == []
    engine.ingest(tagged("c", feed="yonhap", tags=False), T0 + 50 * M)
    [feed_quiet] = engine.tick(T0 + 55 * M)
    assert (feed_quiet.alert.rule, feed_quiet.alert.group) == ("quiet-feed", {"feed": "kcna"})
    assert "kcna delivered 0 items in the last 30m" in feed_quiet.alert.summary
    decisions = engine.tick(T0 + 90 * M)
    assert {(d.alert.rule, d.alert.status) for d in decisions} == {
        ("quiet", "firing"),
        ("quiet-feed", "firing"),
    }
    resolved = engine.ingest(tagged("d", feed="kcna", tags=False), T0 + 95 * M)
    resolved += engine.tick(T0 + 95 * M)
    assert {(d.alert.rule, d.alert.status) for d in resolved} >= {("quiet", "resolved")}


def test_restored_engine_keeps_windows_and_does_not_renotify() -> None:
    first = Engine(rules(SURGE))
    feed(first, story_items(3))
    changes = first.take_changes()
    second = Engine(rules(SURGE))
    second.restore(items=changes.items, records=changes.records.values())
    assert second.ingest(tagged("i3", at=T0 + 3 * M), T0 + 3 * M) == []  # already notified
    third = Engine(rules(SURGE))
    third.restore(items=changes.items[:2])  # window kept, nothing notified yet
    assert len(third.ingest(tagged("i9", at=T0 + 3 * M), T0 + 3 * M)) == 1


def test_replayed_window_is_decided_once_whole_not_half_way() -> None:
    """A lost data dir: the record came back from `alerts`, the window is re-read from Kafka."""
    first = Engine(rules(SURGE))
    feed(first, story_items(3))
    records = first.take_changes().records.values()
    now = T0 + 15 * M  # past the cooldown: a half-read window would resolve the alert
    naive = Engine(rules(SURGE))
    naive.restore(records=records)
    assert [d.alert.status for d in naive.ingest(story_items(1)[0], now)] == ["resolved"]
    replay = Engine(rules(SURGE))
    replay.restore(records=records)
    for item in story_items(4):  # the three notified stories and one that came while down
        assert replay.ingest(item, now, defer=True) == []
    assert replay.settle(now) == []  # 4 stories: still firing, below 2 × 3 to renotify
    assert replay.tick(now) == []
    for item in story_items(2, start=4):
        replay.ingest(item, now, defer=True)
    [grown] = replay.settle(now)
    assert (grown.alert.status, grown.alert.notification, grown.kind) == ("firing", 2, "grown")


def test_fingerprint_is_stable_and_group_specific() -> None:
    kp = (("region", "Korean Peninsula"),)
    assert fingerprint("surge", kp) == fingerprint("surge", kp)
    assert fingerprint("surge", kp) != fingerprint("surge", (("region", "Baltic"),))
    assert fingerprint("surge", kp) != fingerprint("other", kp)
