"""HTML for the console, escaped by default.

Every value that reaches the page goes through `html(template, *values)`: values are
`html.escape`d unless they are `Markup` (HTML this module built itself). Templates are string
constants in this file, never feed text. Titles, summaries, outlet names and evidence come from
the internet; nothing from a feed can add markup, attributes or script. The page also ships a
Content-Security-Policy without 'unsafe-inline' (see server.py), so even a slip here cannot run.
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterable, Sequence
from datetime import datetime
from urllib.parse import quote, urlencode, urlsplit

from blocwatch.console.state import (
    AlertView,
    BoardFilter,
    SilenceView,
    default_matchers,
    sparkline_counts,
)
from blocwatch.core.models import AlertAction, AlertItem, Tag

__all__ = [
    "Markup",
    "board_fragment",
    "board_page",
    "detail_fragment",
    "detail_page",
    "highlight",
    "html",
    "safe_url",
    "sparkline",
]

DURATIONS = ("1h", "4h", "12h", "1d", "3d", "7d")


class Markup(str):
    """HTML built by this module: trusted, not escaped again."""

    __slots__ = ()


def _escape(value: object) -> str:
    if isinstance(value, Markup):
        return value
    return _html.escape(str(value), quote=True)


def html(template: str, *values: object) -> Markup:
    """`template.format(*values)` with every non-Markup value escaped."""
    return Markup(template.format(*(_escape(v) for v in values)))


def join(parts: Iterable[Markup], sep: str = "") -> Markup:
    return Markup(sep.join(parts))


def safe_url(url: str) -> str:
    """Links only to http(s): a feed's `javascript:` URL becomes an inert '#'."""
    scheme = urlsplit(url.strip()).scheme.lower()
    return url.strip() if scheme in ("http", "https") else "#"


def _time(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%MZ") if at else "—"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _ago(at: datetime, now: datetime) -> str:
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def highlight(text: str, spans: Sequence[str]) -> Markup:
    """`text` escaped, with each evidence span (case-insensitive, first hit) in <mark>."""
    lowered = text.lower()
    marks: list[tuple[int, int]] = []
    for span in spans:
        needle = span.strip().lower()
        start = lowered.find(needle) if needle else -1
        if start >= 0 and not any(s < start + len(needle) and start < e for s, e in marks):
            marks.append((start, start + len(needle)))
    out: list[Markup] = []
    position = 0
    for start, end in sorted(marks):
        out.append(html("{}<mark>{}</mark>", text[position:start], text[start:end]))
        position = end
    out.append(html("{}", text[position:]))
    return join(out)


def sparkline(counts: Sequence[int], width: int = 120, height: int = 24) -> Markup:
    """Inline SVG polyline of counts per bin (attributes only: no inline style for the CSP)."""
    if not counts:
        return Markup("")
    top = max(max(counts), 1)
    step = width / max(len(counts) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (c / top) * (height - 4):.1f}" for i, c in enumerate(counts)
    )
    label = f"items over the window: {', '.join(str(c) for c in counts)}"
    return html(
        '<svg class="spark" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="{}"><polyline fill="none" stroke="currentColor" stroke-width="2" '
        'points="{}"/></svg>',
        width, height, width, height, label, points,
    )  # fmt: skip


def _tag(tag: Tag) -> Markup:
    evidence = join(
        html('<li><code>{}</code> matched <q class="span">{}</q></li>', e.rule, e.text)
        for e in tag.evidence
    )
    return html(
        '<li class="tag tag-{}"><b>{}</b>/{} · CAMEO <code>{}</code> · PLOVER <code>{}</code> · '
        "intensity {} · confidence {}<ul>{}</ul></li>",
        tag.label, tag.label, tag.subtype, tag.cameo, tag.plover, f"{tag.intensity:+g}",
        f"{tag.confidence:.2f}", evidence,
    )  # fmt: skip


def _item(item: AlertItem) -> Markup:
    spans = [e.text for tag in item.tags for e in tag.evidence]
    tags = join(_tag(tag) for tag in item.tags)
    return html(
        '<li class="item"><a class="headline" href="{}" rel="noopener noreferrer nofollow" '
        'target="_blank">{}</a><div class="meta"><span class="outlet">{}</span> · '
        '<time datetime="{}">{}</time></div><ul class="tags">{}</ul></li>',
        safe_url(item.url), highlight(item.title, spans), item.source,
        item.published_at.isoformat() if item.published_at else "", _time(item.published_at),
        tags,
    )  # fmt: skip


def _badges(view: AlertView) -> Markup:
    parts = [html('<span class="badge status-{}">{}</span>', view.status, view.status)]
    if view.ack is not None:
        parts.append(
            html(
                '<span class="badge ack" title="{}">acknowledged by {}</span>',
                view.ack.comment,
                view.ack.who,
            )
        )
    if view.claim is not None:
        parts.append(html('<span class="badge claim">claimed by {}</span>', view.claim.who))
    return join(parts, " ")


def card(view: AlertView, now: datetime, *, link: bool = True) -> Markup:
    alert = view.alert
    counts = alert.counts
    where = ", ".join(alert.regions) or ", ".join(f"{k}={v}" for k, v in alert.group.items())
    title = (
        html('<a href="/alerts/{}">{}</a>', quote(alert.fingerprint, safe=""), alert.rule)
        if link
        else html("{}", alert.rule)
    )
    return html(
        '<article class="alert sev-{} st-{}" data-fingerprint="{}" data-status="{}">'
        '<header><span class="sev">{}</span> <h2>{}</h2> {}</header>'
        '<p class="summary">{}</p>'
        '<dl class="facts"><div><dt>stories</dt><dd class="n-stories">{}</dd></div>'
        "<div><dt>sources</dt><dd>{}</dd></div><div><dt>items</dt><dd>{}</dd></div>"
        "<div><dt>window</dt><dd>{}</dd></div><div><dt>where</dt><dd>{}</dd></div>"
        "<div><dt>actors</dt><dd>{}</dd></div><div><dt>first seen</dt><dd>{}</dd></div>"
        "<div><dt>notified</dt><dd>#{} · {}</dd></div></dl>{}</article>",
        alert.severity, view.status, alert.fingerprint, view.status, alert.severity.upper(),
        title, _badges(view), alert.summary, counts.stories, counts.sources, counts.items,
        _duration(alert.window_seconds), where or "—", ", ".join(alert.actors) or "—",
        _time(alert.first_seen), alert.notification, _ago(alert.fired_at, now),
        sparkline(sparkline_counts(alert)),
    )  # fmt: skip


def board_fragment(views: Sequence[AlertView], now: datetime) -> Markup:
    """The live part of the board: summary line and cards (re-sent on every change)."""
    firing = sum(1 for v in views if v.alert.status == "firing")
    unhandled = sum(1 for v in views if v.status == "firing" and v.claim is None)
    summary = html(
        '<p class="board-summary"><b>{}</b> firing · <b>{}</b> unhandled · {} shown · '
        "updated {}</p>",
        firing, unhandled, len(views), now.strftime("%H:%M:%SZ"),
    )  # fmt: skip
    if not views:
        return join([summary, Markup('<p class="empty">No alerts match.</p>')])
    return join([summary, *(card(v, now) for v in views)])


def _action_log(history: Sequence[AlertAction]) -> Markup:
    rows = join(
        html(
            "<li><time>{}</time> <b>{}</b> {}{}</li>",
            _time(a.at),
            a.who,
            a.action,
            html(": {}", a.comment) if a.comment else "",
        )
        for a in reversed(history)
    )
    return html('<section class="history"><h3>History</h3><ul>{}</ul></section>', rows)


def _silence_list(silences: Sequence[SilenceView]) -> Markup:
    if not silences:
        return Markup("")
    rows = join(
        html(
            '<li>{} until {} by {} ({}) <form class="action" method="post" '
            'action="/silences/{}/expire"><button type="submit">Expire</button></form></li>',
            ", ".join(f"{k}={v}" for k, v in s.matchers.items()),
            _time(s.ends_at),
            s.who,
            s.comment,
            quote(s.id, safe=""),
        )
        for s in silences
    )
    return html('<section class="silences"><h3>Silenced</h3><ul>{}</ul></section>', rows)


def detail_fragment(view: AlertView, now: datetime) -> Markup:
    items = join(_item(item) for item in view.alert.items)
    return join(
        [
            card(view, now, link=False),
            _silence_list(view.silences),
            html('<section class="items"><h3>Evidence</h3><ol>{}</ol></section>', items),
            _action_log(view.history),
        ]
    )


def _actions(view: AlertView) -> Markup:
    fp = quote(view.fingerprint, safe="")
    matchers = "\n".join(f"{k}={v}" for k, v in default_matchers(view.alert).items())
    durations = join(html('<option value="{}">{}</option>', d, d) for d in DURATIONS)
    return html(
        '<section class="actions"><h3>Act</h3>'
        '<form class="action" method="post" action="/alerts/{}/actions">'
        '<input type="hidden" name="action" value="acknowledge">'
        '<input name="comment" placeholder="comment (what you did, who you told)" '
        'aria-label="acknowledge comment" maxlength="2000">'
        '<button type="submit" data-action="acknowledge">Acknowledge</button></form>'
        '<form class="action" method="post" action="/alerts/{}/actions">'
        '<input type="hidden" name="action" value="claim">'
        '<button type="submit" data-action="claim">Claim (I have it)</button></form>'
        '<form class="action" method="post" action="/alerts/{}/actions">'
        '<input type="hidden" name="action" value="unclaim">'
        '<button type="submit" data-action="unclaim">Un-claim</button></form>'
        '<form class="action silence" method="post" action="/alerts/{}/actions">'
        '<input type="hidden" name="action" value="silence">'
        '<label>matchers (key=value per line)<textarea name="matchers" rows="3">{}</textarea>'
        '</label><label>for <select name="duration">{}</select></label>'
        '<input name="comment" placeholder="why" aria-label="silence comment" maxlength="2000">'
        '<button type="submit" data-action="silence">Silence</button></form></section>',
        fp, fp, fp, fp, matchers, durations,
    )  # fmt: skip


def _filters(board_filter: BoardFilter, regions: Sequence[str]) -> Markup:
    def select(name: str, current: str, options: Sequence[str]) -> Markup:
        opts = join(
            html(
                '<option value="{}"{}>{}</option>',
                o,
                Markup(" selected") if o == current else "",
                o or "any",
            )
            for o in ("", *options)
        )
        return html('<label>{} <select name="{}">{}</select></label>', name, name, opts)

    return html(
        '<form class="filters" method="get" action="/">{}{}{}{}'
        '<button type="submit">Filter</button></form>',
        select("severity", board_filter.severity, ("critical", "warning", "info")),
        select("region", board_filter.region, regions),
        select("label", board_filter.label, ("alliance", "escalation")),
        select("status", board_filter.status, ("firing", "acknowledged", "silenced", "resolved")),
    )  # fmt: skip


def _page(title: str, csrf: str, user: str, body: Markup) -> Markup:
    return html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="csrf-token" content="{}"><title>{}</title>'
        '<link rel="stylesheet" href="/static/console.css"></head>'
        '<body data-user="{}"><header class="top"><a class="brand" href="/">blocwatch</a>'
        '<span id="conn" class="conn">connecting…</span>'
        '<label class="who">your name <input id="who-name" autocomplete="nickname" '
        'maxlength="100"></label></header><p id="flash" role="status"></p>{}'
        '<script src="/static/console.js"></script></body></html>',
        csrf, title, user, body,
    )  # fmt: skip


def board_page(
    views: Sequence[AlertView],
    now: datetime,
    board_filter: BoardFilter,
    regions: Sequence[str],
    csrf: str,
    user: str,
) -> Markup:
    query = {k: v for k, v in board_filter.__dict__.items() if v}
    stream = "/events?" + urlencode({"view": "board", **query})
    body = html(
        '<main>{}<div id="live" data-stream="{}">{}</div></main>',
        _filters(board_filter, regions), stream, board_fragment(views, now),
    )  # fmt: skip
    return _page("blocwatch — watch board", csrf, user, body)


def detail_page(view: AlertView, now: datetime, csrf: str, user: str) -> Markup:
    stream = "/events?" + urlencode({"view": "alert", "fp": view.fingerprint})
    body = html(
        '<main class="detail"><p><a href="/">← board</a></p>'
        '<div id="live" data-stream="{}">{}</div>{}</main>',
        stream, detail_fragment(view, now), _actions(view),
    )  # fmt: skip
    return _page(f"blocwatch — {view.alert.rule}", csrf, user, body)
