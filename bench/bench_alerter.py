"""Alerter evaluation throughput with the shipped rules, against decoding the same records.

Prints items/s for: decoding TaggedItems alone (the baseline), decoding + evaluating every
shipped rule, and decoding + evaluating + persisting to the SQLite state in batches of 500. And
the memory the window state takes per item it holds (traced allocations), against holding the
decoded items alone: the window keeps every matching item for the rules' horizon.
"""

from __future__ import annotations

import random
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.results import Measurement
from blocwatch.alerter.evaluation import Engine
from blocwatch.alerter.rules import RulesFile, load_rules
from blocwatch.alerter.settings import DEFAULT_RULES_FILE
from blocwatch.alerter.store import StateStore
from blocwatch.core.codec import decode, encode
from blocwatch.core.models import Actor, Dyad, Evidence, Tag, TaggedItem

N = 20_000
MEMORY_N = 5_000  # traced allocations cost memory themselves: a sample is enough
T0 = datetime(2026, 11, 23, tzinfo=UTC)
REGIONS = ["Korean Peninsula", "Taiwan Strait", "Baltic", "Black Sea", "Middle East", "Sahel"]
ACTORS = ["PRK", "KOR", "RUS", "CHN", "USA", "JPN", "IRN", "UKR", "NATO"]


def synthetic(n: int, rng: random.Random) -> list[bytes]:
    """One item per second; stories reported by ~3 outlets; 40 % escalation, 30 % alliance."""
    out = []
    for i in range(n):
        roll = rng.random()
        label = "escalation" if roll < 0.4 else "alliance" if roll < 0.7 else None
        tags = []
        if label:
            subtype = "weapons_test" if label == "escalation" else "defence_pact"
            tags = [
                Tag(
                    label=label,
                    subtype=subtype,
                    cameo="150",
                    plover="MOBILIZE" if label == "escalation" else "AGREE",
                    intensity=-7 if label == "escalation" else 6,
                    confidence=0.8,
                    evidence=[Evidence(rule="r", text="missile", start=0, end=7)],
                )
            ]
        a, b = rng.sample(ACTORS, 2)
        at = T0 + timedelta(seconds=i)
        item = TaggedItem(
            id=f"i{i}",
            url=f"https://news.example/{i}",
            title=f"Headline {i} about {a} and {b}",
            source=f"outlet{rng.randrange(20)}",
            feed=f"feed{rng.randrange(20)}",
            published_at=at,
            fetched_at=at,
            tags=tags,
            actors=[Actor(code=a), Actor(code=b)],
            dyads=[Dyad(source=a, target=b)],
            regions=[rng.choice(REGIONS)],
            story_id=f"s{i // 3}",
            story_sources=1 + i % 3,
            tagged_at=at,
            tagger_version="bench",
        )
        out.append(encode(item))
    return out


def _rate(seconds: float) -> float:
    return N / seconds if seconds else float("inf")


def main() -> list[Measurement]:
    rng = random.Random(7)
    records = synthetic(N, rng)
    rules = load_rules(DEFAULT_RULES_FILE)

    started = time.perf_counter()
    items = [decode(TaggedItem, r) for r in records]
    decode_s = time.perf_counter() - started

    engine = Engine(rules)
    started = time.perf_counter()
    alerts = 0
    for raw in records:
        item = decode(TaggedItem, raw)
        alerts += len(engine.ingest(item, item.fetched_at, payload=raw))
        if int(item.id[1:]) % 60 == 0:  # a tick per minute of stream time, as back-tests do
            alerts += len(engine.tick(item.fetched_at))
    evaluate_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp, StateStore(Path(tmp) / "state.sqlite3") as store:
        engine = Engine(rules)
        started = time.perf_counter()
        for start in range(0, N, 500):
            for raw in records[start : start + 500]:
                item = decode(TaggedItem, raw)
                engine.ingest(item, item.fetched_at, payload=raw)
                if int(item.id[1:]) % 60 == 0:
                    engine.tick(item.fetched_at)
            store.commit(engine.take_changes(), [], items[start].fetched_at)
        persist_s = time.perf_counter() - started

    del items, engine  # the peak RSS reported for this module is the service's, not ours
    held_kb, decoded_kb = _window_memory(rules, records[:MEMORY_N])

    print(f"items: {N} synthetic tagged items, 1/s event time, shipped rules ({len(rules.rules)})")
    print(f"decode only (baseline):        {_rate(decode_s):>9,.0f} items/s")
    print(
        f"decode + evaluate:             {_rate(evaluate_s):>9,.0f} items/s  "
        f"(ratio {decode_s / evaluate_s:.2f}; {alerts} decisions)"
    )
    print(
        f"decode + evaluate + persist:   {_rate(persist_s):>9,.0f} items/s  "
        f"(ratio {decode_s / persist_s:.2f})"
    )
    print(
        f"window memory per held item:   {held_kb:>9.2f} KB  (decoded items alone "
        f"{decoded_kb:.2f} KB; ratio {held_kb / decoded_kb:.2f})"
    )
    note = f"decode alone {_rate(decode_s):,.0f}/s"
    return [
        Measurement("alerter", "items/s evaluated, shipped rules", _rate(evaluate_s), "items/s",
                    note=note),
        Measurement("alerter", "items/s evaluated + state committed", _rate(persist_s),
                    "items/s", note=note),
        Measurement("alerter", "window memory per held item", held_kb, "KB",
                    note=f"decoded TaggedItem alone {decoded_kb:.2f} KB"),
    ]  # fmt: skip


def _window_memory(rules: RulesFile, records: list[bytes]) -> tuple[float, float]:
    """KB per item the engine holds after evaluating `records`, and KB per decoded item."""
    tracemalloc.start()
    try:
        engine = Engine(rules)
        for raw in records:
            item = decode(TaggedItem, raw)
            engine.ingest(item, item.fetched_at, payload=raw)
        engine.take_changes()
        del item
        held = tracemalloc.get_traced_memory()[0] / max(1, len(engine.items)) / 1024
        del engine
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        items = [decode(TaggedItem, raw) for raw in records]
        decoded = (tracemalloc.get_traced_memory()[0] - before) / len(items) / 1024
    finally:
        tracemalloc.stop()
    return held, decoded
