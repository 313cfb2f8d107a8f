"""Pure tests: normalising entries, feeds files, settings, scheduling arithmetic."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocwatch.collector.feeds import Feed, load_feeds, parse_feeds, shard
from blocwatch.collector.fetch import AddressGuard, parse_retry_after
from blocwatch.collector.normalise import (
    FeedParseError,
    canonical_url,
    item_id,
    normalise_entries,
    parse_feed,
    plain_text,
)
from blocwatch.collector.service import backoff_delay
from blocwatch.collector.settings import DEFAULT_FEEDS_FILE, CollectorSettings
from blocwatch.core.errors import ConfigError
from blocwatch.core.models import CATEGORIES_MAX, SUMMARY_MAX, TITLE_MAX, NewsItem
from blocwatch.core.settings import load_settings

from .feedserver import rss

FEED = Feed(name="test", url="https://news.example.org/feed", regions=["korean-peninsula"])
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def normalise(body: bytes) -> list[NewsItem]:
    return list(normalise_entries(parse_feed(body), FEED, NOW).items)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "HTTPS://News.Example.ORG:443/a/b?utm_source=x&id=7&fbclid=y#frag",
            "https://news.example.org/a/b?id=7",
        ),
        ("http://Example.org", "http://example.org/"),
        ("http://example.org:8080/x?UTM_Medium=a", "http://example.org:8080/x"),
    ],
)
def test_canonical_url(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


def test_item_id_prefers_guid_and_scopes_opaque_guids() -> None:
    assert item_id("abc-1", "https://x.org/a", FEED, "t") == "test:abc-1"
    assert item_id("https://X.org/a?utm_campaign=z", "", FEED, "t") == "https://x.org/a"
    assert item_id("", "https://x.org/b#top", FEED, "t") == "https://x.org/b"
    assert item_id("", "", FEED, "t") == item_id("", "", FEED, "t")
    long_id = item_id("g" * 2000, "", FEED, "t")
    assert len(long_id) <= 512


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<p>Pact <b>signed</b></p><script>alert(1)</script>", "Pact signed"),
        ("AT&amp;T &eacute;t&#233; &#x263A;", "AT&T été ☺"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;Drills", "Drills"),
        ("a\n\n\t b\u200b  c", "a b c"),
        ("<style>p{}</style><iframe src=x>inner</iframe>ok", "ok"),
        ("<img src=x onerror=alert(1)>Missile test", "Missile test"),
    ],
)
def test_plain_text_strips_markup_and_decodes(raw: str, expected: str) -> None:
    assert plain_text(raw, 500) == expected


def test_entries_become_news_items() -> None:
    items = normalise(rss([("g1", "Pact &amp; <b>drills</b>", "<p>Summary</p>")]))
    assert len(items) == 1
    item = items[0]
    assert item.id == "test:g1"
    assert item.title == "Pact & drills"
    assert item.summary == "Summary"
    assert item.url == "https://news.example.org/g1"
    assert item.published_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert item.region_hints == ["korean-peninsula"]


def test_future_and_missing_times_fall_back_to_fetch_time() -> None:
    future = rss([("g1", "t", "s")]).replace(
        b"Mon, 23 Nov 2026 10:00:00", b"Mon, 23 Nov 2027 10:00:00"
    )
    missing = rss([("g1", "t", "s")]).replace(
        b"<pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate>", b""
    )
    for body in (future, missing):
        (item,) = normalise_entries(parse_feed(body), FEED, NOW).items
        assert item.published_at == NOW
    skewed = rss([("g1", "t", "s")]).replace(
        b"Mon, 23 Nov 2026 10:00:00", b"Mon, 23 Nov 2026 12:02:00"
    )
    (item,) = normalise_entries(parse_feed(skewed), FEED, NOW, timedelta(minutes=5)).items
    assert item.published_at == NOW + timedelta(minutes=2)


def test_oversized_fields_are_capped() -> None:
    categories = "".join(f"<category>c{i}</category>" for i in range(10_000))
    body = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>x</title><item>"
        f"<guid>g</guid><title>{'T' * 100_000}</title><description>{'word ' * 1_000_000}"
        f"</description>{categories}</item></channel></rss>"
    ).encode()
    (item,) = normalise_entries(parse_feed(body), FEED, NOW).items
    assert len(item.title) <= TITLE_MAX
    assert len(item.summary) <= SUMMARY_MAX
    assert len(item.categories) <= CATEGORIES_MAX


def test_entity_expansion_bomb_is_refused() -> None:
    lines = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    bomb = (
        "<?xml version='1.0'?>\n<!DOCTYPE rss [\n" + "\n".join(lines) + "\n]>\n"
        "<rss version='2.0'><channel><title>&lol9;</title><item><title>&lol9;</title>"
        "</item></channel></rss>"
    )
    for encoding in ("utf-8", "utf-16"):
        with pytest.raises(FeedParseError, match="entities"):
            parse_feed(bomb.encode(encoding))
    external = b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><rss/>"
    with pytest.raises(FeedParseError):
        parse_feed(external)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body><p>Not a feed</p></body></html>",
        b"\xff\xfe\x00garbage<<<",
        b"{}",
        b"<?encoding='\x80'?>",  # feedparser raises UnicodeDecodeError on these (found by fuzzing)
        b"<?encoding='\x00'?>",
    ],
)
def test_non_feeds_yield_no_items(body: bytes) -> None:
    try:
        parsed = parse_feed(body)
    except FeedParseError:
        return
    assert normalise_entries(parsed, FEED, NOW).items == []


def test_shipped_feeds_file_loads() -> None:
    feeds = load_feeds(DEFAULT_FEEDS_FILE)
    assert len(feeds) >= 15
    assert all(f.url.startswith("https://") for f in feeds)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("feeds:\n  - {name: a, url: 'ftp://x.org/f'}\n", "entry 0 ('a'): field url"),
        ("feeds:\n  - {name: a, url: 'https://x.org'}\n  - {name: b}\n",
         "entry 1 ('b'): field url"),
        ("feeds:\n  - {name: 'bad name', url: 'https://x.org'}\n", "field name"),
        ("feeds:\n  - {name: a, url: 'https://x.org', colour: red}\n", "field colour"),
        ("feeds:\n  - {name: a, url: 'https://x.org', poll_interval_s: 0}\n", "poll_interval_s"),
        ("feeds:\n  - {name: a, url: 'https://x.org'}\n  - {name: a, url: 'https://y.org'}\n",
         "entry 1 ('a'): field name: duplicate"),
        ("fedds: []\n", "field feeds"),
        ("feeds: [\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_invalid_feeds_file_names_file_entry_and_field(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_feeds(text, "feeds.yaml")
    assert "feeds.yaml" in str(caught.value)
    assert fragment in str(caught.value)


def test_missing_feeds_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read feeds file"):
        load_feeds(tmp_path / "nope.yaml")


def test_settings_defaults_and_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CollectorSettings()
    assert settings.metrics_port == 9401
    assert not settings.collector_allow_private_addresses
    monkeypatch.setenv("BLOCWATCH_COLLECTOR_ALLOWED_CIDRS", "10.0.0.0/8, fd00::/8")
    assert len(load_settings(CollectorSettings).allowed_networks) == 2
    monkeypatch.setenv("BLOCWATCH_COLLECTOR_ALLOWED_CIDRS", "10.0.0.0/33")
    with pytest.raises(ConfigError, match="BLOCWATCH_COLLECTOR_ALLOWED_CIDRS"):
        load_settings(CollectorSettings)


@pytest.mark.parametrize(
    ("address", "default", "opted_in"),
    [
        ("93.184.216.34", True, True),
        ("127.0.0.1", False, True),
        ("10.1.2.3", False, True),
        ("169.254.169.254", False, True),
        ("::1", False, True),
        ("::ffff:127.0.0.1", False, True),
        ("fe80::1", False, True),
        ("224.0.0.1", False, True),
    ],
)
def test_address_guard(address: str, default: bool, opted_in: bool) -> None:
    assert AddressGuard().permits(address) is default
    assert AddressGuard(allow_private=True).permits(address) is opted_in


def test_address_guard_cidr_allow_list() -> None:
    settings = CollectorSettings(collector_allowed_cidrs="10.1.0.0/16")
    guard = AddressGuard.from_settings(settings)
    assert guard.permits("10.1.2.3")
    assert not guard.permits("10.2.0.1")


def test_retry_after_forms() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after("Mon, 23 Nov 2026 12:01:00 GMT", NOW) == 60
    assert parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", NOW) == 0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("999999999", NOW) == 24 * 3600


def test_backoff_grows_with_jitter_and_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 60, 3600, rng) for n in range(1, 10)]
    assert all(30 <= d <= 3600 for d in delays)
    assert delays[3] > delays[0]
    assert backoff_delay(20, 60, 3600, rng) <= 3600


def test_feeds_file_defaults_apply() -> None:
    text = "defaults: {regions: [asia]}\nfeeds:\n  - {name: a, url: 'https://x.org/f'}\n"
    (feed,) = parse_feeds(text, "f.yaml", default_poll_interval_s=42)
    assert (feed.poll_interval_s, feed.regions, feed.outlet) == (42, ["asia"], "a")


FEED_SAMPLE = rss([("g1", "Pact <b>signed</b>", "Drills &amp; tests"), ("g2", "Second", "x")])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.builds(
            lambda cut, junk: FEED_SAMPLE[:cut] + junk + FEED_SAMPLE[cut:],
            st.integers(0, len(FEED_SAMPLE)),
            st.binary(max_size=40),
        ),
        st.builds(lambda n: FEED_SAMPLE[:n], st.integers(0, len(FEED_SAMPLE))),
    )
)
def test_random_and_mutated_bytes_never_crash_the_parse_path(data: bytes) -> None:
    try:
        parsed = parse_feed(data)
    except FeedParseError:
        return
    for item in normalise_entries(parsed, FEED, NOW).items:
        assert "<b>" not in item.title


def test_shards_split_the_feeds_without_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    feeds = [Feed(name=f"feed-{i}", url=f"https://x.org/{i}") for i in range(50)]
    parts = [shard(feeds, index, 3) for index in range(3)]
    assert sorted(f.name for part in parts for f in part) == sorted(f.name for f in feeds)
    assert all(parts)
    assert shard(feeds, 0, 1) == feeds
    monkeypatch.setenv("BLOCWATCH_COLLECTOR_SHARD_COUNT", "2")
    monkeypatch.setenv("BLOCWATCH_COLLECTOR_SHARD_INDEX", "2")
    with pytest.raises(ConfigError, match="SHARD"):
        load_settings(CollectorSettings)
