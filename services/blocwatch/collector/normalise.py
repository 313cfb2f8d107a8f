"""Feed bytes → NewsItems. Pure: no network, no clock (the fetch time is passed in).

Everything here treats its input as hostile: markup and scripts are stripped from every text
field (twice-encoded markup too), fields are capped before any expensive work, DTDs that declare
entities referring to other entities (entity-expansion bombs) are refused before parsing.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser
from pydantic import ValidationError

from blocwatch.collector.feeds import Feed
from blocwatch.core.models import CATEGORIES_MAX, SUMMARY_MAX, TITLE_MAX, NewsItem

__all__ = [
    "FeedParseError",
    "NoTextError",
    "Normalised",
    "canonical_url",
    "item_id",
    "normalise_entries",
    "normalise_entry",
    "parse_feed",
    "plain_text",
]

ID_MAX = 512
URL_MAX = 2048
# Raw text beyond this is never looked at: a 5 MB summary costs no more than a 64 kB one.
RAW_TEXT_MAX = 64 * 1024
PROLOG_SCAN = 64 * 1024
DROP_CONTENT_TAGS = frozenset({"script", "style", "template", "noscript", "iframe", "object"})
BLOCK_TAGS = frozenset({"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "_ga",
     "ocid", "cmpid", "ito", "at_medium", "at_campaign", "smid", "taid"}
)  # fmt: skip
TRACKING_PREFIXES = ("utm_", "at_custom", "__twitter", "mkt_")
_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_TAG_LIKE = re.compile(r"<\s*/?\s*[A-Za-z!?]")
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_ENTITY_DECL = re.compile(rb"<!ENTITY\s+(%\s*)?[^\s>]+\s+(SYSTEM|PUBLIC|\"[^\"]*&|'[^']*&)")


class FeedParseError(ValueError):
    """The bytes are not a feed we can read (or are refused as dangerous)."""


class NoTextError(ValueError):
    """An entry with neither title nor summary: nothing to tag, skipped (not an error)."""


@dataclass(frozen=True)
class Normalised:
    items: list[NewsItem]
    rejected: int  # entries that could not become a valid NewsItem
    skipped: int = 0  # entries without any text


def parse_feed(body: bytes, content_type: str = "") -> Any:
    """feedparser's result for feed bytes; FeedParseError when it is not a feed at all."""
    _refuse_entity_bombs(body)
    headers = {"content-type": content_type} if content_type else {}
    # Our own plain_text() strips every tag and drops script/style content, so feedparser's
    # HTML sanitiser and relative-URI rewriting (a third of its time) are not needed.
    try:
        parsed = feedparser.parse(
            body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
        )
    except Exception as exc:  # feedparser itself fails on some hostile bytes (fuzzing found it)
        raise FeedParseError(f"feedparser failed: {type(exc).__name__}: {exc}"[:300]) from exc
    if not parsed.entries and parsed.get("bozo") and not parsed.get("version"):
        reason = parsed.get("bozo_exception")
        raise FeedParseError(f"not a feed: {type(reason).__name__}: {reason}"[:300])
    return parsed


def _refuse_entity_bombs(body: bytes) -> None:
    """Refuse DTDs declaring nested, parameter or external entities (billion laughs, XXE).

    feedparser keeps only simple entity declarations, but the check is cheap and does not rely
    on its regexes; NUL bytes are dropped so UTF-16/32 documents are checked too.
    """
    head = body[:PROLOG_SCAN].replace(b"\x00", b"")
    first = _FIRST_ELEMENT.search(head)
    prolog = head[: first.start()] if first else head
    if b"<!ENTITY" not in prolog:
        return
    if _ENTITY_DECL.search(prolog) or prolog.count(b"<!ENTITY") > 64 or first is None:
        raise FeedParseError("refused: DTD declares nested, parameter or external entities")


class _TextExtractor(HTMLParser):
    """Collects text, decoding entities, dropping the content of script-like elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_CONTENT_TAGS:
            self.skipping += 1
        elif tag in BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_CONTENT_TAGS and self.skipping:
            self.skipping -= 1
        elif tag in BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _strip_once(text: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(text)
    extractor.close()
    return "".join(extractor.parts)


def plain_text(value: str | None, limit: int) -> str:
    """Markup-free, entity-decoded, whitespace-collapsed text of at most `limit` characters."""
    if not value:
        return ""
    text = value[:RAW_TEXT_MAX]
    # Twice-encoded markup (`&lt;script&gt;`) decodes into markup: strip until nothing is left.
    for _ in range(3):
        text = _strip_once(text)
        if not _TAG_LIKE.search(text):
            break
    else:
        text = _TAG_LIKE.sub(" ", text).replace("<", " ")
    text = _WHITESPACE.sub(" ", _CONTROL.sub("", text)).strip()
    return _cap(text, limit)


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def canonical_url(url: str) -> str:
    """Scheme and host lower-cased, default port and fragment dropped, tracking params removed."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()  # credentials in the URL are dropped here
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not _is_tracking(key)
    ]
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))


def _is_tracking(key: str) -> bool:
    lowered = key.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def item_id(guid: str, link: str, feed: Feed, title: str) -> str:
    """Stable id: a URL-like guid or the link canonicalised; an opaque guid scoped to its feed."""
    guid = guid.strip()
    if guid and _is_http(guid):
        key = canonical_url(guid)
    elif guid:
        key = f"{feed.name}:{guid}"
    elif link and _is_http(link):
        key = canonical_url(link)
    else:  # neither guid nor link: the title within the feed is the best we have
        key = f"{feed.name}:title:{hashlib.sha256(title.encode()).hexdigest()[:32]}"
    if len(key) > ID_MAX:
        key = f"{feed.name}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def _utc(value: time.struct_time | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _published(entry: Mapping[str, Any], fetched_at: datetime, skew: timedelta) -> datetime:
    """Entry time in UTC; the fetch time when missing or implausibly far in the future."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: feedparser's own get() maps missing date keys onto each other with a
        # DeprecationWarning; we choose the fallback order ourselves.
        raw = dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)
        when = _utc(raw)
        if when is not None:
            return fetched_at if when > fetched_at + skew else when
    return fetched_at


def _categories(entry: Mapping[str, Any]) -> list[str]:
    terms: list[str] = []
    for tag in list(entry.get("tags") or [])[: CATEGORIES_MAX * 4]:
        term = plain_text(_text(tag.get("term") or tag.get("label")), 100)
        if term and term not in terms:
            terms.append(term)
        if len(terms) >= CATEGORIES_MAX:
            break
    return terms


def _merge(first: list[str], second: list[str]) -> list[str]:
    merged = list(first)
    merged.extend(term for term in second if term not in merged)
    return merged[:CATEGORIES_MAX]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _summary(entry: Mapping[str, Any]) -> str:
    summary = _text(entry.get("summary"))
    if not summary:
        content = entry.get("content") or []
        if content and isinstance(content[0], Mapping):
            summary = _text(content[0].get("value"))
    return plain_text(summary, SUMMARY_MAX)


def normalise_entry(
    entry: Mapping[str, Any],
    feed: Feed,
    *,
    source: str,
    feed_language: str | None,
    fetched_at: datetime,
    skew: timedelta,
) -> NewsItem:
    """One feedparser entry as a NewsItem; ValidationError/ValueError when it cannot be one."""
    title = plain_text(_text(entry.get("title")), TITLE_MAX)
    summary = _summary(entry)
    link = _text(entry.get("link")).strip()
    guid = _text(entry.get("id"))
    if not title and not summary:
        raise NoTextError("entry has neither title nor summary")
    url = canonical_url(link) if _is_http(link) else ""
    if not url and _is_http(guid):
        url = canonical_url(guid)
    language = feed.language or _language(entry) or feed_language
    return NewsItem(
        id=item_id(guid, link, feed, title or summary),
        url=(url or feed.url)[:URL_MAX],
        title=title or _cap(summary, 120),
        summary=summary,
        source=source[:200],
        feed=feed.name,
        feed_url=feed.url,
        published_at=_published(entry, fetched_at, skew),
        fetched_at=fetched_at,
        language=(language or None) and language[:35],
        # The feed's configured topic hints travel with the entry's own categories.
        categories=_merge(_categories(entry), feed.topics),
        region_hints=list(feed.regions),
    )


def _language(entry: Mapping[str, Any]) -> str | None:
    detail = entry.get("title_detail")
    language = detail.get("language") if isinstance(detail, Mapping) else None
    return language if isinstance(language, str) and language else None


def normalise_entries(
    parsed: Any, feed: Feed, fetched_at: datetime, skew: timedelta = timedelta(minutes=5)
) -> Normalised:
    """Every entry of a parsed feed that makes a valid NewsItem; the rest are counted."""
    feed_meta = parsed.get("feed") or {}
    source = feed.source or plain_text(_text(feed_meta.get("title")), 200) or feed.name
    feed_language = _text(feed_meta.get("language")) or None
    items: list[NewsItem] = []
    rejected = skipped = 0
    for entry in _entries(parsed):
        try:
            items.append(
                normalise_entry(
                    entry,
                    feed,
                    source=source,
                    feed_language=feed_language,
                    fetched_at=fetched_at,
                    skew=skew,
                )
            )
        except NoTextError:
            skipped += 1
        except (ValidationError, ValueError, TypeError, AttributeError):
            rejected += 1
    return Normalised(items, rejected, skipped)


def _entries(parsed: Any) -> Iterable[Mapping[str, Any]]:
    for entry in parsed.get("entries") or []:
        if isinstance(entry, Mapping):
            yield entry
