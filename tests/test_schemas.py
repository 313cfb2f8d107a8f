"""schemas/ is generated from the models; these tests fail when the two drift apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import Field

from blocwatch.core import schemas
from blocwatch.core.models import NewsItem
from blocwatch.core.topics import TOPICS

from .conftest import REPO

SCHEMA_DIR = REPO / "schemas"


def test_committed_schemas_match_the_models() -> None:
    stale = schemas.stale_schemas(SCHEMA_DIR)
    assert not stale, f"run `blocwatch schemas write`: {stale} differ from their models"


def test_a_model_change_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schemas.write_schemas(tmp_path)
    assert schemas.stale_schemas(tmp_path) == []

    class ChangedNewsItem(NewsItem):
        new_field: str = Field(default="", description="added without regenerating")

    ChangedNewsItem.__name__ = "NewsItem"
    changed = tuple(ChangedNewsItem if m is NewsItem else m for m in schemas.CONTRACTS)
    monkeypatch.setattr(schemas, "CONTRACTS", changed)
    assert schemas.stale_schemas(tmp_path) == ["NewsItem.schema.json"]


def test_every_topic_model_has_a_schema_file() -> None:
    for spec in TOPICS:
        path = SCHEMA_DIR / f"{spec.model.__name__}.schema.json"
        document = json.loads(path.read_text())
        assert document["title"] == spec.model.__name__
        assert "schema_version" in document["properties"]
