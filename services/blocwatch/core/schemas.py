"""Generate `schemas/<Model>.schema.json` from the contracts, and find drift."""

from __future__ import annotations

import json
from pathlib import Path

from blocwatch.core.models import Alert, AlertAction, Contract, DeadLetter, NewsItem, TaggedItem

__all__ = ["CONTRACTS", "render_schemas", "stale_schemas", "write_schemas"]

CONTRACTS: tuple[type[Contract], ...] = (NewsItem, TaggedItem, Alert, AlertAction, DeadLetter)
SCHEMA_ID_BASE = "https://github.com/blocwatch/blocwatch/schemas/"


def render_schemas() -> dict[str, str]:
    """File name → JSON Schema text, deterministic so the files diff cleanly."""
    documents = {}
    for model in CONTRACTS:
        schema = model.model_json_schema(mode="serialization")
        name = f"{model.__name__}.schema.json"
        document = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID_BASE + name,
            **schema,
        }
        documents[name] = json.dumps(document, indent=2, sort_keys=True) + "\n"
    return documents


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(directory: Path) -> list[str]:
    """Schema files that are missing or differ from their model."""
    stale = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale
