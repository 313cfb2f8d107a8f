"""Pure tagging: text in, tags with evidence, actors, dyads and regions out. No I/O.

Interface used by the stream processor (keep it stable):
    tag_text(title, summary="") -> Tagging
    TAGGER_VERSION
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blocwatch.core.models import Actor, Dyad, Tag

__all__ = ["TAGGER_VERSION", "Tagging", "tag_text"]

TAGGER_VERSION = "0.0.0"


@dataclass(frozen=True)
class Tagging:
    """What the tagger found in one item."""

    tags: list[Tag] = field(default_factory=list)
    actors: list[Actor] = field(default_factory=list)
    dyads: list[Dyad] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)


def tag_text(title: str, summary: str = "") -> Tagging:
    """Interface placeholder until the tagger lands (issue 4): tags nothing."""
    return Tagging()
