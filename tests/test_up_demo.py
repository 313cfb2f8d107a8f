"""The demo sample, the feed server (real aiohttp on loopback) and the console views."""

from __future__ import annotations

import calendar
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import feedparser
import pytest
from rich.console import Console

from blocwatch.core.errors import ConfigError
from blocwatch.core.models import Alert, AlertCounts, AlertItem, Evidence, NewsItem, Tag
from blocwatch.up.demo import (
    DemoItem,
    FeedServer,
    feeds_document,
    load_sample,
    released,
    render_rss,
)
from blocwatch.up.view import alert_panel, decode_record, model_for_topic, record_json, record_line

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_bundled_sample_is_valid_and_sized_for_the_demo() -> None:
    sample = load_sample()
    assert 40 <= len(sample.items) <= 60
    assert len({i.id for i in sample.items}) == len(sample.items)
    assert max(i.at for i in sample.items) <= 150  # released over about two minutes
    # The alert has to fire within a minute: several outlets on the peninsula, early on.
    korean = [i for i in sample.items if i.at <= 35 and "Korea" in i.title + i.summary]
    assert len(korean) >= 10
    assert len({i.outlet for i in korean}) >= 4


def test_release_schedule_is_pure_and_newest_first() -> None:
    items = [
        DemoItem(id="a", outlet="o", at=0, title="A"),
        DemoItem(id="b", outlet="o", at=5, title="B"),
        DemoItem(id="c", outlet="o", at=10, title="C"),
    ]
    assert [i.id for i in released(items, 0)] == ["a"]
    assert [i.id for i in released(items, 7.5)] == ["b", "a"]
    assert [i.id for i in released(items, 60)] == ["c", "b", "a"]


def test_rss_is_parsed_by_feedparser_with_escaped_text() -> None:
    sample = load_sample()
    outlet = sample.outlets[0]
    hostile = DemoItem(
        id="x1", outlet=outlet.slug, at=3, title="A <b>bold</b> & risky", summary="<"
    )
    body = render_rss(outlet, [hostile], "http://127.0.0.1:1", NOW)
    parsed = feedparser.parse(body)
    assert not parsed.bozo
    [entry] = parsed.entries
    assert entry.title == "A <b>bold</b> & risky"
    assert entry.id == "blocwatch-demo:x1"
    assert entry.link == "http://127.0.0.1:1/articles/x1"
    published = datetime.fromtimestamp(calendar.timegm(entry.published_parsed), UTC)
    assert published == NOW + timedelta(seconds=3)


def test_feeds_document_has_one_feed_per_outlet() -> None:
    sample = load_sample()
    document = feeds_document(sample, "http://127.0.0.1:9", 3.0)
    assert [f["name"] for f in document["feeds"]] == [o.slug for o in sample.outlets]
    first = document["feeds"][0]
    assert first["url"] == f"http://127.0.0.1:9/feeds/{sample.outlets[0].slug}.xml"
    assert first["poll_interval_s"] == 3.0


async def test_feed_server_releases_items_over_time() -> None:
    sample = load_sample()
    elapsed = [0.0]
    server = FeedServer(sample, clock=lambda: elapsed[0])
    async with server, aiohttp.ClientSession() as session:
        slug = sample.outlets[0].slug

        async def titles() -> list[str]:
            async with session.get(server.feed_url(slug)) as response:
                assert response.status == 200
                return [e.title for e in feedparser.parse(await response.read()).entries]

        assert await titles() == []
        elapsed[0] = 1000.0
        everything = await titles()
        assert len(everything) == len([i for i in sample.items if i.outlet == slug])
        added = server.add(DemoItem(id="new-1", outlet=slug, title="Fresh headline"))
        assert (await titles())[0] == "Fresh headline"
        assert server.available_at(added.id) is not None
        async with session.get(f"{server.base_url}/articles/new-1") as response:
            assert "Fresh headline" in await response.text()
        async with session.get(f"{server.base_url}/feeds/nope.xml") as response:
            assert response.status == 404
        assert server.requests >= 3


def _alert() -> Alert:
    tag = Tag(
        label="escalation",
        subtype="weapons_test",
        cameo="150",
        plover="MOBILIZE",
        intensity=-6,
        confidence=0.9,
        evidence=[
            Evidence(rule="esc.missile_test", text="fired two ballistic missiles", start=0, end=5)
        ],
    )
    item = AlertItem(
        id="i1",
        title="[bold]Pyongyang[/bold] fires missiles",
        url="https://example.org/a",
        source="Example Wire",
        published_at=NOW,
        tags=[tag],
    )
    return Alert(
        fingerprint="f" * 16,
        rule="korean-peninsula-escalation",
        severity="critical",
        status="firing",
        group={"region": "Korean Peninsula"},
        summary="6 distinct escalation stories on the Korean Peninsula in 60 min, 4 outlets",
        counts=AlertCounts(items=9, stories=6, sources=4),
        threshold=3,
        window_seconds=3600,
        first_seen=NOW,
        last_seen=NOW,
        items=[item] * 7,
        fired_at=NOW,
    )


def _render(renderable: object) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_alert_panel_shows_summary_counts_items_and_why() -> None:
    text = _render(alert_panel(_alert()))
    assert "CRITICAL FIRING korean-peninsula-escalation" in text
    assert "6 distinct escalation stories" in text
    assert "6 stories, 4 sources, 9 items in 60 min" in text
    assert "[bold]Pyongyang[/bold] fires missiles" in text  # markup from a feed shown as text
    assert "escalation/weapons_test" in text
    assert "fired two ballistic" in text
    assert "and 2 more items" in text


def test_tail_views_decode_known_topics_and_show_poison_safely() -> None:
    assert model_for_topic("t1.news.raw", "t1.") is NewsItem
    assert model_for_topic("alerts") is Alert
    assert model_for_topic("t1.events.escalation", "t1.") is not None
    assert model_for_topic("t1.news.raw.dlq", "t1.") is not None
    assert model_for_topic("something.else") is None

    poison = b'\xff\x00{"id": 1 [red]x[/red]'
    decoded = decode_record(NewsItem, poison)
    assert decoded.message is None
    line = _render(record_line("news.raw", 0, 7, b"k", decoded, poison))
    assert "news.raw[0]@7" in line
    assert "invalid NewsItem" in line
    assert "\\xff\\x00" in line
    assert "[red]x[/red]" in line
    envelope = json.loads(record_json("news.raw", 0, 7, b"k", decoded, poison))
    assert envelope["offset"] == 7
    assert envelope["value_base64"] == "/wB7ImlkIjogMSBbcmVkXXhbL3JlZF0="

    item = NewsItem(id="n1", url="https://e.org/1", title="T", source="S", fetched_at=NOW)
    good = decode_record(NewsItem, item.model_dump_json().encode())
    assert good.message == item
    assert json.loads(record_json("news.raw", 0, 1, None, good, None))["id"] == "n1"
    assert decode_record(None, b"{}").error == "unknown topic: no contract to decode with"
    assert decode_record(NewsItem, None).error == "tombstone (no value)"


async def test_feed_server_port_in_use_is_a_readable_error() -> None:
    sample = load_sample()
    async with FeedServer(sample) as first:
        with pytest.raises(ConfigError, match="cannot serve demo feeds"):
            await FeedServer(sample, port=first.port).start()
