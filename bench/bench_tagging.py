"""Pure tagging throughput: 300-character news items per second on one core.

Goal (issue 4): >= 20,000 items/s. Printed with two ratios measured in the same run: against the
goal, and against a floor baseline — `str.lower()` plus ONE precompiled keyword regex scan over
the same items — which is about the least work any keyword tagger could do per item.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

from blocwatch.processor.tagging import default_tagger

__all__ = ["main", "make_items"]

GOAL_ITEMS_PER_S = 20_000
ITEM_CHARS = 300

# Written for this benchmark: a mix of alliance, escalation and neither news in wire style.
_SENTENCES = (
    "Russia and North Korea signed a mutual defence pact in Pyongyang on Wednesday.",
    "North Korea test-fired two ballistic missiles into the sea off its east coast, Seoul said.",
    "South Korea and the United States began joint air drills near the border on Monday.",
    "The European Union adopted a new package of sanctions against Moscow over the war.",
    "Militants attacked a police checkpoint in the north of the province, killing six officers.",
    "Heavy rain caused flooding in several districts, and the roads were closed for a day.",
    "The central bank raised interest rates by a quarter point to curb inflation.",
    "Germany will send more air defence systems to Ukraine, the defence minister said.",
    "China held live-fire exercises around Taiwan in what Taipei called a provocation.",
    "The two leaders discussed trade and climate change during a meeting in Geneva.",
    "Officials denied reports that the country plans to join the alliance next year.",
    "Thousands of protesters marched in the capital to demand early elections.",
    "Warplanes struck rebel positions outside the city as fighting spread to the suburbs.",
    "India and Japan agreed to deepen defence cooperation and share intelligence on the navy.",
)


def make_items(count: int, seed: int = 7) -> list[tuple[str, str]]:
    """(title, summary) pairs of about ITEM_CHARS characters in total."""
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        title = rng.choice(_SENTENCES)
        summary = ""
        while len(title) + len(summary) < ITEM_CHARS:
            summary += rng.choice(_SENTENCES) + " "
        items.append((title, summary[: ITEM_CHARS - len(title)]))
    return items


def _rate(run: Callable[[], None], count: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> None:
    tagger = default_tagger()
    items = make_items(20_000)
    floor = re.compile(r"\b(?:pact|missile|drills?|sanctions?|attack\w*|strik\w*|treaty)\b")

    def baseline() -> None:
        for title, summary in items:
            floor.findall(f"{title} {summary}".lower())

    def tagging() -> None:
        for title, summary in items:
            tagger.tag([("title", title), ("summary", summary)])

    tagging()  # warm caches, as a long-running processor would be
    base_rate = _rate(baseline, len(items))
    tag_rate = _rate(tagging, len(items))
    print(f"items: {len(items)} of ~{ITEM_CHARS} chars, one core")
    print(f"baseline lower()+one regex scan: {base_rate:,.0f} items/s")
    print(f"tagger (tags, actors, dyads, regions): {tag_rate:,.0f} items/s")
    print(f"ratio to goal {GOAL_ITEMS_PER_S:,}/s: {tag_rate / GOAL_ITEMS_PER_S:.2f}")
    print(f"ratio to baseline: {tag_rate / base_rate:.3f}")


if __name__ == "__main__":
    main()
