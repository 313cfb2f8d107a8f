"""The mypyc-compiled modules: built from the current source, and answering exactly as it does."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bench.bench_tagging import make_items

from blocwatch import cli
from blocwatch.compiled import (
    COMPILED,
    DIGESTS_FILE,
    load_source,
    stale_modules,
    status,
    write_digests,
)
from blocwatch.processor import stories
from blocwatch.processor.tagging import default_tagger, plain_python_tagger
from blocwatch.processor.tagging import gazetteer as gazetteer_module
from blocwatch.processor.tagging import tagger as tagger_module

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 6, 19, 8, 0, tzinfo=UTC)


def _compiled(module: ModuleType) -> bool:
    return not str(module.__file__).endswith(".py")


def _texts(shared: Path | None) -> list[tuple[str, str]]:
    """Generated wire-style items (every rule path the benchmark takes) plus, when ../shared is
    there, every labelled dev text."""
    items = make_items(1_500, event_share=0.5, seed=11)
    if shared is not None:
        for name in ("dev.jsonl", "modern_dev.jsonl"):
            path = shared / "eval" / name
            if path.exists():
                lines = path.read_text(encoding="utf-8").splitlines()
                items += [(json.loads(line)["text"], "") for line in lines if line.strip()]
    return items


@pytest.fixture(scope="module")
def shared() -> Path | None:
    path = REPO.parent / "shared"
    return path if path.is_dir() else None


# ------------------------------------------------------------------ built from the current source
def test_the_installed_build_matches_the_source() -> None:
    assert stale_modules() == [], "compiled modules lag their source: run `make install`"


def test_the_makefile_rebuilds_when_a_compiled_source_changes() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    listed = re.search(r"^COMPILED_SOURCES := (.+)$", makefile, re.MULTILINE)
    assert listed is not None
    expected = [f"services/blocwatch/{name.replace('.', '/')}.py" for name in COMPILED]
    assert listed.group(1).split() == expected


def _package(tmp_path: Path) -> Path:
    package = tmp_path / "blocwatch"
    for name in COMPILED:
        source = package.joinpath(*name.split(".")).with_suffix(".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("VALUE = 1\n", encoding="utf-8")
    return package


def _build(package: Path, name: str) -> None:
    """Stands in for the extension module a build leaves beside the source (file name only)."""
    source = package.joinpath(*name.split("."))
    source.with_name(f"{source.name}.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")


def test_status_tells_pure_compiled_and_stale_apart(tmp_path: Path) -> None:
    package = _package(tmp_path)
    assert set(status(package=package).values()) == {"pure"}
    write_digests(package=package)
    for name in COMPILED:
        _build(package, name)
    assert set(status(package=package).values()) == {"compiled"}
    edited = COMPILED[0]
    package.joinpath(*edited.split(".")).with_suffix(".py").write_text("VALUE = 2\n", "utf-8")
    assert stale_modules(package=package) == [edited]


def test_an_extension_without_recorded_digests_counts_as_stale(tmp_path: Path) -> None:
    package = _package(tmp_path)
    _build(package, COMPILED[1])
    assert not (package / DIGESTS_FILE).exists()
    assert stale_modules(package=package) == [COMPILED[1]]


def test_the_cli_refuses_to_run_stale_compiled_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "stale_modules", lambda: ["processor.stories"])
    assert cli.main(["settings"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].endswith("compiled before its source changed: blocwatch.processor.stories")
    assert "make install" in err[1]


# ------------------------------------------------------------------ the same answers as the source
needs_compiled_tagger = pytest.mark.skipif(
    not (_compiled(tagger_module) and _compiled(gazetteer_module)),
    reason="pure-Python build (BLOCWATCH_PURE_PYTHON)",
)
needs_compiled_stories = pytest.mark.skipif(
    not _compiled(stories), reason="pure-Python build (BLOCWATCH_PURE_PYTHON)"
)


def _facts(tagging: Any) -> tuple[Any, ...]:
    return tagging.tags, tagging.actors, tagging.dyads, tagging.regions


def _triggers(found: tuple[list[Any], list[Any], set[str]]) -> tuple[Any, ...]:
    triggers, mentions, places = found
    return [t.fields() for t in triggers], [m.fields() for m in mentions], places


@needs_compiled_tagger
def test_the_compiled_tagger_tags_exactly_as_its_source(shared: Path | None) -> None:
    compiled = default_tagger()
    source = plain_python_tagger()
    assert not _compiled(sys.modules[type(source).__module__])
    assert not _compiled(sys.modules[type(source.gazetteer).__module__])
    differ = []
    for title, summary in _texts(shared):
        fields = [("title", title), ("summary", summary)] if summary else [("text", title)]
        if _facts(compiled.tag(fields)) != _facts(source.tag(fields)):  # type: ignore[arg-type]
            differ.append(title)
        elif _triggers(compiled.scan(fields)) != _triggers(source.scan(fields)):  # type: ignore[arg-type]
            differ.append(f"(explanation) {title}")
    assert differ == []


@needs_compiled_stories
def test_compiled_story_clustering_assigns_exactly_as_its_source() -> None:
    pure = load_source("processor.stories")
    config = stories.StoryConfig(horizon_seconds=3600)
    compiled_index = stories.StoryIndex(config)
    source_index = pure.StoryIndex(pure.StoryConfig(horizon_seconds=3600))
    for n, (title, summary) in enumerate(make_items(1_500, event_share=0.5, seed=5)):
        at = T0 + timedelta(seconds=7 * n)  # 3 h in all: stories expire on the way
        args = (f"item-{n}", title, summary, f"outlet-{n % 9}", at)
        assert stories.signature(stories.shingles(title, summary)) == pure.signature(
            pure.shingles(title, summary)
        )
        mine, theirs = compiled_index.assign(*args), source_index.assign(*args)
        assert (mine.story_id, mine.sources, mine.new) == (
            theirs.story_id,
            theirs.sources,
            theirs.new,
        )
    assert dict(compiled_index.records) == dict(source_index.records)
