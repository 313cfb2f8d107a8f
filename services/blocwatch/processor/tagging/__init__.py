"""Pure tagging: text in, tags with evidence, actors, dyads and regions out. No I/O.

Interface used by the stream processor (keep it stable):
    tag_text(title, summary="") -> Tagging
    TAGGER_VERSION

The dictionaries (data/*.yaml) are read and compiled on first use and kept for the life of the
process; after that, tagging touches no file, clock or network. The compiled rule prefilter is
kept in `cache_dir()` between processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from blocwatch.compiled import load_source
from blocwatch.processor.tagging.dictionaries import ActorsFile, RegionsFile
from blocwatch.processor.tagging.tagger import FieldName, Tagger, Tagging, load_tagger

__all__ = [
    "TAGGER_VERSION",
    "FieldName",
    "Tagger",
    "Tagging",
    "cache_dir",
    "default_tagger",
    "plain_python_tagger",
    "tag_fields",
    "tag_text",
]

# Bump on any change to rules or dictionaries: consumers see it on every TaggedItem.
TAGGER_VERSION = "1.0.1"


def cache_dir() -> Path | None:
    """Where compiled rules are kept between processes: $BLOCWATCH_CACHE_DIR ("off": nowhere),
    else $XDG_CACHE_HOME/blocwatch, else ~/.cache/blocwatch; None without a home directory."""
    chosen = os.environ.get("BLOCWATCH_CACHE_DIR", "")
    if chosen:
        return None if chosen == "off" else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME", "")
    if base:
        return Path(base) / "blocwatch"
    try:
        return Path.home() / ".cache" / "blocwatch"
    except RuntimeError:  # no home directory (some containers)
        return None


@cache
def default_tagger() -> Tagger:
    """The packaged rules and dictionaries, compiled once (the prefilter kept in `cache_dir`)."""
    return load_tagger(TAGGER_VERSION, cache_dir())


def plain_python_tagger() -> Any:
    """The packaged tagger run from its Python source even where the build compiled it (the
    tagger and its gazetteer): what the tests and the benchmark compare the compiled one with."""
    tagger = load_source("processor.tagging.tagger")
    gazetteer = load_source("processor.tagging.gazetteer")
    actors = ActorsFile.model_validate(tagger._data("actors.yaml"))
    regions = RegionsFile.model_validate(tagger._data("regions.yaml"))
    compiled = default_tagger()  # the rules are not compiled by mypyc: share them
    return tagger.Tagger(compiled.rules, gazetteer.Gazetteer(actors, regions), TAGGER_VERSION)


def tag_fields(fields: Sequence[tuple[FieldName, str]]) -> Tagging:
    """Tag named text fields; evidence spans point into the field they came from."""
    return default_tagger().tag(fields)


def tag_text(title: str, summary: str = "") -> Tagging:
    """Tag one news item from its title and summary."""
    return default_tagger().tag([("title", title), ("summary", summary)])
