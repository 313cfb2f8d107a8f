"""Rendering: feed text is escaped everywhere, evidence is highlighted, links are http(s) only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from blocwatch.console.render import (
    Markup,
    board_page,
    detail_page,
    highlight,
    html,
    safe_url,
    sparkline,
)
from blocwatch.console.state import Board, BoardFilter
from tests.alerting import T0
from tests.consoling import HOSTILE_TITLE, action, alert, alert_item

NOW = T0 + timedelta(hours=1)


def test_values_are_escaped_unless_markup() -> None:
    assert html("<b>{}</b>", "<i>x</i>") == "<b>&lt;i&gt;x&lt;/i&gt;</b>"
    assert html("<b>{}</b>", Markup("<i>x</i>")) == "<b><i>x</i></b>"
    assert html('<a title="{}">', '" onmouseover="x') == '<a title="&quot; onmouseover=&quot;x">'


def test_highlight_marks_evidence_and_escapes_the_rest() -> None:
    out = highlight("North Korea <b>fired</b> a Missile: fired a missile", ["FIRED A MISSILE"])
    assert out == "North Korea &lt;b&gt;fired&lt;/b&gt; a Missile: <mark>fired a missile</mark>"
    assert highlight("no match here", ["absent"]) == "no match here"
    assert highlight("<x>", ["<x>"]) == "<mark>&lt;x&gt;</mark>"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://news.example/a", "https://news.example/a"),
        ("http://news.example/a", "http://news.example/a"),
        ("javascript:alert(1)", "#"),
        (" JAVASCRIPT:alert(1)", "#"),
        ("data:text/html,<script>", "#"),
    ],
)
def test_links_are_http_only(url: str, expected: str) -> None:
    assert safe_url(url) == expected


def test_sparkline_is_plain_svg_without_style() -> None:
    svg = sparkline([0, 2, 1])
    assert svg.startswith("<svg")
    assert "style" not in svg
    assert "<polyline" in svg


def _hostile_board() -> Board:
    board = Board()
    hostile = alert_item(1, HOSTILE_TITLE, evidence='<img src=x onerror="window.__pwned = 2">')
    board.apply_alert(alert(items=[hostile, alert_item(2)], stories=2))
    board.apply_action(action("acknowledge", who="<script>x</script>", comment="<b onclick=1>"))
    return board


def test_no_feed_or_user_markup_reaches_the_pages() -> None:
    board = _hostile_board()
    view = board.view("fp-kp", NOW)
    assert view is not None
    pages = [
        detail_page(view, NOW, "tok", ""),
        board_page(board.views(NOW), NOW, BoardFilter(), ["Korean Peninsula"], "tok", ""),
    ]
    for page in pages:
        assert "<script>window" not in page
        assert "<script>x" not in page
        assert "<img" not in page
        assert "<b onclick" not in page
        assert page.count("<script") == 1  # only the console's own, external script
        assert '<script src="/static/console.js"></script>' in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in pages[0]
    assert "<mark>&lt;img src=x onerror=&quot;window.__pwned = 2&quot;&gt;</mark>" in pages[0]


def test_detail_shows_evidence_with_codes_and_intensity() -> None:
    board = Board()
    board.apply_alert(alert())
    view = board.view("fp-kp", NOW)
    assert view is not None
    page = detail_page(view, NOW, "tok", "")
    assert "<mark>fired a missile</mark>" in page
    assert "CAMEO <code>150</code>" in page
    assert "PLOVER <code>MOBILIZE</code>" in page
    assert "intensity -7" in page
    assert "esc.weapons_test" in page
    assert 'href="https://news.example/item-0"' in page
    assert "Outlet 0" in page
    assert "rule=kp-surge\nregion=Korean Peninsula" in page  # prefilled silence matchers
