"""The feeds file: which feeds to poll, how often, and the hints their items carry.

```yaml
defaults:            # optional, applied to every feed
  poll_interval_s: 600
feeds:
  - name: bbc-world                     # unique; the only per-feed metrics label
    url: https://feeds.bbci.co.uk/news/world/rss.xml
    source: BBC News                    # outlet name on every item (default: name)
    poll_interval_s: 300
    enabled: true
    regions: [global]
    topics: [world]
    language: en
```

Errors name the file, the entry (index and name) and the field, and stop the collector at start.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from blocwatch.core.errors import ConfigError

__all__ = ["Feed", "FeedsFile", "load_feeds", "parse_feeds", "shard"]

FEED_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


HttpUrl = Annotated[str, Field(max_length=2048), AfterValidator(_http_url)]
Hint = Annotated[str, Field(min_length=1, max_length=100)]


class Feed(BaseModel):
    """One feed to poll."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=FEED_NAME_PATTERN, description="Unique name; the metrics label.")
    url: HttpUrl
    source: str = Field(default="", max_length=200, description="Outlet name (default: name).")
    poll_interval_s: float = Field(default=300.0, ge=1.0, le=86400.0)
    enabled: bool = True
    regions: list[Hint] = Field(default_factory=list, max_length=20)
    topics: list[Hint] = Field(default_factory=list, max_length=20)
    language: str | None = Field(default=None, max_length=35)

    @property
    def outlet(self) -> str:
        return self.source or self.name


class FeedsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: dict[str, Any] = Field(default_factory=dict)
    feeds: list[dict[str, Any]]


def load_feeds(path: Path, default_poll_interval_s: float = 300.0) -> list[Feed]:
    """Every feed of a feeds file (disabled ones included); ConfigError names file/entry/field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read feeds file {path}: {exc}",
            "pass an existing YAML file with --feeds or BLOCWATCH_COLLECTOR_FEEDS_FILE",
        ) from exc
    return parse_feeds(text, str(path), default_poll_interval_s)


def parse_feeds(text: str, where: str, default_poll_interval_s: float = 300.0) -> list[Feed]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}", "fix the YAML syntax") from exc
    try:
        layout = FeedsFile.model_validate(document)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        raise ConfigError(
            f"{where}: field {field}: {problem['msg']}",
            "the file needs a top-level `feeds:` list (see README, Collector)",
        ) from exc
    defaults = {"poll_interval_s": default_poll_interval_s, **layout.defaults}
    feeds = [_entry(where, index, defaults, raw) for index, raw in enumerate(layout.feeds)]
    _check_unique(where, feeds)
    return feeds


def _entry(where: str, index: int, defaults: dict[str, Any], raw: dict[str, Any]) -> Feed:
    label = f"entry {index}" + (f" ({raw['name']!r})" if isinstance(raw.get("name"), str) else "")
    try:
        return Feed.model_validate({**defaults, **raw})
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "(entry)"
        raise ConfigError(
            f"{where}: {label}: field {field}: {problem['msg']}",
            "fix that feed entry (see README, Collector, for the fields)",
        ) from exc


def _check_unique(where: str, feeds: list[Feed]) -> None:
    seen: dict[str, int] = {}
    for index, feed in enumerate(feeds):
        if feed.name in seen:
            raise ConfigError(
                f"{where}: entry {index} ({feed.name!r}): field name: duplicate of entry "
                f"{seen[feed.name]}",
                "give every feed a unique name",
            )
        seen[feed.name] = index


def shard(feeds: list[Feed], index: int, count: int) -> list[Feed]:
    """The feeds replica `index` of `count` polls: a stable hash of the name, so every replica
    reading the same file agrees, and adding a feed moves no other feed."""
    return [f for f in feeds if zlib.crc32(f.name.encode()) % count == index]
