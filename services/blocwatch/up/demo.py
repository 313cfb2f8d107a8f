"""A local news feed server: the bundled demo sample for `blocwatch up --demo`, and test feeds.

Each outlet gets one RSS 2.0 feed at `/feeds/<slug>.xml`; an item appears in it once its release
time has passed, so the pipeline sees news arrive over a couple of minutes as it would live.
Articles are served at `/articles/<id>` so every link in an alert resolves, even offline.
Rendering and release are pure functions of the items and the elapsed time; the server only adds
the clock and the sockets.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from blocwatch.core.codec import describe_validation_error
from blocwatch.core.errors import ConfigError
from blocwatch.core.serving import serve_app

__all__ = [
    "DemoItem",
    "DemoSample",
    "FeedServer",
    "Outlet",
    "feeds_document",
    "load_sample",
    "released",
    "render_rss",
]

SAMPLE_RESOURCE = "demo_news.yaml"


class Outlet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str
    region_hints: list[str] = Field(default_factory=list)


class DemoItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    outlet: str
    at: float = Field(default=0.0, ge=0, description="Seconds after start when it appears.")
    title: str
    summary: str = ""


class DemoSample(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    outlets: list[Outlet]
    items: list[DemoItem]

    def outlet(self, slug: str) -> Outlet:
        for outlet in self.outlets:
            if outlet.slug == slug:
                return outlet
        raise KeyError(slug)


def load_sample(path: Path | None = None) -> DemoSample:
    """The bundled sample (package data), or a file in the same format."""
    if path is None:
        text = resources.files("blocwatch.up").joinpath(SAMPLE_RESOURCE).read_text("utf-8")
        where = f"blocwatch/up/{SAMPLE_RESOURCE}"
    else:
        text, where = path.read_text("utf-8"), str(path)
    try:
        sample = DemoSample.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        detail = describe_validation_error(exc) if isinstance(exc, ValidationError) else exc
        raise ConfigError(f"invalid demo sample {where}: {detail}", "fix the file") from exc
    unknown = {item.outlet for item in sample.items} - {o.slug for o in sample.outlets}
    if unknown:
        raise ConfigError(f"{where}: items name unknown outlets {sorted(unknown)}", "add them")
    return sample


def released(items: Iterable[DemoItem], elapsed_s: float) -> list[DemoItem]:
    """Items whose release time has come, newest first (the order feeds list entries in)."""
    return sorted((i for i in items if i.at <= elapsed_s), key=lambda i: (-i.at, i.id))


def render_rss(
    outlet: Outlet, items: Sequence[DemoItem], base_url: str, started: datetime
) -> bytes:
    """An RSS 2.0 document for one outlet; pubDate is the item's release time."""
    rss = ET.Element("rss", version="2.0")
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = outlet.name
    ET.SubElement(channel, "link").text = f"{base_url}/"
    ET.SubElement(channel, "description").text = f"{outlet.name} (blocwatch demo sample)"
    ET.SubElement(channel, "language").text = "en"
    for item in items:
        entry = ET.SubElement(channel, "item")
        ET.SubElement(entry, "title").text = item.title
        ET.SubElement(entry, "link").text = f"{base_url}/articles/{item.id}"
        ET.SubElement(entry, "guid", isPermaLink="false").text = f"blocwatch-demo:{item.id}"
        ET.SubElement(entry, "description").text = item.summary
        when = started + timedelta(seconds=item.at)
        ET.SubElement(entry, "pubDate").text = format_datetime(when, usegmt=True)
    body: bytes = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    return body


def feeds_document(
    sample: DemoSample, base_url: str, interval_s: float, slugs: Iterable[str] | None = None
) -> dict[str, Any]:
    """The collector's feeds file for this server: one feed per outlet."""
    wanted = list(slugs) if slugs is not None else [o.slug for o in sample.outlets]
    feeds = []
    for slug in wanted:
        outlet = sample.outlet(slug)
        feed: dict[str, Any] = {
            "name": slug,
            "url": f"{base_url}/feeds/{slug}.xml",
            "source": outlet.name,
            "poll_interval_s": interval_s,
            "language": "en",
        }
        if outlet.region_hints:
            feed["regions"] = list(outlet.region_hints)
        feeds.append(feed)
    return {"feeds": feeds}


@dataclass
class FeedServer:
    """Serves a sample's outlets as RSS feeds, releasing items as time passes.

    Tests add items while it runs (`add`), and read `available_at` to time the pipeline from the
    moment an item could first be fetched.
    """

    sample: DemoSample
    host: str = "127.0.0.1"
    port: int = 0
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    requests: int = 0
    _items: list[DemoItem] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _started: float = 0.0
    _started_wall: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self._items = list(self.sample.items)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def feed_url(self, slug: str) -> str:
        return f"{self.base_url}/feeds/{slug}.xml"

    def elapsed(self) -> float:
        return self.clock() - self._started

    def add(self, item: DemoItem) -> DemoItem:
        """Publish an item now (its `at` is replaced by the current elapsed time)."""
        if item.outlet not in {o.slug for o in self.sample.outlets}:
            raise KeyError(item.outlet)
        now_item = item.model_copy(update={"at": self.elapsed()})
        self._items.append(now_item)
        return now_item

    def available_at(self, item_id: str) -> datetime | None:
        """Wall-clock time the item became visible in its feed."""
        for item in self._items:
            if item.id == item_id:
                return self._started_wall + timedelta(seconds=item.at)
        return None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/feeds/{slug}.xml", self._feed)
        app.router.add_get("/articles/{item_id}", self._article)
        return app

    async def _index(self, _: web.Request) -> web.Response:
        links = "".join(
            f'<li><a href="/feeds/{o.slug}.xml">{escape(o.name)}</a></li>'
            for o in self.sample.outlets
        )
        return web.Response(
            text=f"<h1>blocwatch demo feeds</h1><ul>{links}</ul>", content_type="text/html"
        )

    async def _feed(self, request: web.Request) -> web.Response:
        self.requests += 1
        slug = request.match_info["slug"]
        try:
            outlet = self.sample.outlet(slug)
        except KeyError:
            raise web.HTTPNotFound() from None
        mine = [i for i in self._items if i.outlet == slug]
        body = render_rss(outlet, released(mine, self.elapsed()), self.base_url, self._started_wall)
        return web.Response(body=body, content_type="application/rss+xml", charset="utf-8")

    async def _article(self, request: web.Request) -> web.Response:
        item_id = request.match_info["item_id"]
        for item in released(self._items, self.elapsed()):
            if item.id == item_id:
                page = f"<h1>{escape(item.title)}</h1><p>{escape(item.summary)}</p>"
                return web.Response(text=page, content_type="text/html")
        raise web.HTTPNotFound()

    async def start(self) -> None:
        self._runner, self.port = await serve_app(
            self._app(),
            self.host,
            self.port,
            what="demo feeds",
            fix="choose another port with BLOCWATCH_UP_DEMO_PORT",
        )
        self._started = self.clock()
        self._started_wall = self.wall_clock()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FeedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
