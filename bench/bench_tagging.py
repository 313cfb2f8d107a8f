"""Pure tagging throughput: 300-character news items per second on one core.

Goal (issue 4): >= 20,000 items/s. Printed with two ratios measured in the same run: against the
goal, and against a floor baseline — `str.lower()` plus ONE precompiled keyword regex scan over
the same items — which is about the least work any keyword tagger could do per item.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import Measurement
from blocwatch.compiled import status
from blocwatch.processor.tagging import Tagger, default_tagger, plain_python_tagger
from blocwatch.processor.tagging.prefilter import Prefilter

__all__ = ["main", "make_items"]

GOAL_ITEMS_PER_S = 20_000
ITEM_CHARS = 300
SHARED_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"

# Written for this benchmark, in wire style. Event news (alliance or escalation)…
_EVENTS = (
    "Russia and North Korea signed a mutual defence pact in Pyongyang on Wednesday.",
    "North Korea test-fired two ballistic missiles into the sea off its east coast, Seoul said.",
    "South Korea and the United States began joint air drills near the border on Monday.",
    "The European Union adopted a new package of sanctions against Moscow over the war.",
    "Militants attacked a police checkpoint in the north of the province, killing six officers.",
    "Germany will send more air defence systems to Ukraine, the defence minister said.",
    "China held live-fire exercises around Taiwan in what Taipei called a provocation.",
    "Officials denied reports that the country plans to join the alliance next year.",
    "Warplanes struck rebel positions outside the city as fighting spread to the suburbs.",
    "India and Japan agreed to deepen defence cooperation and share intelligence on the navy.",
)
# …and the routine news that makes up most of a real feed.
_ROUTINE = (
    "Heavy rain caused flooding in several districts, and the roads were closed for a day.",
    "The central bank raised interest rates by a quarter point to curb inflation.",
    "The two leaders discussed trade and climate change during a meeting in Geneva.",
    "Thousands of protesters marched in the capital to demand early elections.",
    "The national team won the final on penalties after a goalless draw in extra time.",
    "Shares in the carmaker fell after it cut its profit forecast for the third time.",
    "The ruling party chose a new leader ahead of the general election next spring.",
    "Scientists said the heatwave was made far more likely by climate change.",
    "The airline will add daily flights to three cities from the start of the summer.",
    "Parliament passed the budget after a late-night session on Thursday.",
)


def make_items(count: int, event_share: float = 1.0, seed: int = 7) -> list[tuple[str, str]]:
    """(title, summary) pairs of about ITEM_CHARS characters; `event_share` of them are events
    (every sentence an event), the rest routine news."""
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        pool = _EVENTS if rng.random() < event_share else _ROUTINE
        title = rng.choice(pool)
        summary = ""
        while len(title) + len(summary) < ITEM_CHARS:
            summary += rng.choice(pool) + " "
        items.append((title, summary[: ITEM_CHARS - len(title)]))
    return items


def _best_rates(runs: tuple[Callable[[], None], ...], count: int, repeats: int = 9) -> list[float]:
    """Items/s of each run, best of `repeats`, runs interleaved so that load from other jobs on
    the machine hits them alike (the ratio is the number to trust)."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - started)
    return [count / seconds for seconds in best]


def _compiled_against_source(items: list[tuple[str, str]]) -> Measurement | None:
    """The same items through the compiled tagger and through its plain-Python source, in the
    same run: what mypyc buys (None when this build is not compiled)."""
    if status().get("processor.tagging.tagger") != "compiled":
        return None
    return _versus(
        ("compiled (mypyc)", "plain Python"),
        "compiled / plain-Python tagger",
        (default_tagger(), plain_python_tagger()),
        items,
    )


def _prefilter_against_none(items: list[tuple[str, str]]) -> Measurement | None:
    """The same items with the rule prefilter and with every pattern tried (None when Hyperscan
    is not there)."""
    tagger = default_tagger()
    if not tagger.rules.prefilter.active:
        print("rule prefilter: inactive (no Hyperscan on this machine)")
        return None
    rules = dataclasses.replace(tagger.rules, prefilter=Prefilter(()))
    unfiltered = Tagger(rules, tagger.gazetteer, tagger.version)
    return _versus(
        ("rule prefilter (Hyperscan)", "every pattern tried"),
        "with / without the rule prefilter",
        (tagger, unfiltered),
        items,
    )


def _versus(
    names: tuple[str, str], what: str, taggers: tuple[Any, Any], items: list[tuple[str, str]]
) -> Measurement:
    """Two taggers on the same items, interleaved: the first's rate over the second's."""
    runs = tuple(functools.partial(_tag_all, tagger, items) for tagger in taggers)
    first, second = _best_rates(runs, len(items))
    ratio = first / second
    print(f"{names[0]} {first:,.0f} items/s | {names[1]} {second:,.0f} items/s | ratio {ratio:.2f}")
    note = f"{first:,.0f} vs {second:,.0f} items/s, feed mix"
    return Measurement("tagging", what, ratio, "x", note=note)


def _labelled_texts() -> Measurement | None:
    """Real news sentences: every text of ../shared/eval's dev sets (~210 characters, about half
    of them events), when ../shared is there. No goal: the goal is for 300-character items."""
    texts = []
    for name in ("dev.jsonl", "modern_dev.jsonl"):
        path = SHARED_EVAL / name
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            texts += [(json.loads(line)["text"], "") for line in lines if line.strip()]
    if not texts:
        return None
    tagger = default_tagger()
    tagging = functools.partial(_tag_all, tagger, texts)
    tagging()
    (rate,) = _best_rates((tagging,), len(texts))
    chars = sum(len(text) for text, _ in texts) / len(texts)
    print(f"labelled dev texts ({len(texts)}, ~{chars:.0f} chars): tagger {rate:,.0f} items/s")
    what = f"items/s, real labelled sentences (../shared dev sets, ~{chars:.0f} chars)"
    return Measurement("tagging", what, rate, "items/s")


def _tag_all(tagger: Any, items: list[tuple[str, str]]) -> None:
    for title, summary in items:
        tagger.tag([("title", title), ("summary", summary)])


def main() -> list[Measurement]:
    tagger = default_tagger()
    floor = re.compile(r"\b(?:pact|missile|drills?|sanctions?|attack\w*|strik\w*|treaty)\b")
    build = status().get("processor.tagging.tagger", "pure")
    print(f"items of ~{ITEM_CHARS} chars, one core; tagging = tags, actors, dyads, regions")
    print(f"tagger build: {'compiled with mypyc' if build == 'compiled' else 'plain Python'}")
    cases = (
        (0.3, "feed mix, 30% event items"),
        (1.0, "every sentence an event"),
        (0.0, "routine news only"),
    )
    measurements = []
    for share, what in cases:
        items = make_items(5_000, share)

        def baseline(items: list[tuple[str, str]] = items) -> None:
            for title, summary in items:
                floor.findall(f"{title} {summary}".lower())

        tagging = functools.partial(_tag_all, tagger, items)
        tagging()  # warm caches, as a long-running processor would be
        base_rate, tag_rate = _best_rates((baseline, tagging), len(items))
        print(
            f"{what}: tagger {tag_rate:,.0f} items/s | baseline lower()+one regex scan "
            f"{base_rate:,.0f} items/s | ratio to baseline {tag_rate / base_rate:.3f} | "
            f"ratio to goal {GOAL_ITEMS_PER_S:,}/s {tag_rate / GOAL_ITEMS_PER_S:.2f}"
        )
        floor_ratio = f"{tag_rate / base_rate:.3f} of a lower()+regex floor"
        measurements.append(
            Measurement("tagging", f"items/s, {what}", tag_rate, "items/s", GOAL_ITEMS_PER_S,
                        note=floor_ratio)
        )  # fmt: skip
    extras = (
        _labelled_texts(),
        _prefilter_against_none(make_items(5_000, 0.3)),
        _compiled_against_source(make_items(5_000, 0.3)),
    )
    return [*measurements, *(extra for extra in extras if extra is not None)]


if __name__ == "__main__":
    main()
