"""Property tests: no rules file or tagged record crashes the alerter with anything but its own
errors (ConfigError naming the file) or a dead letter."""

from __future__ import annotations

from datetime import timedelta

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from blocwatch.alerter.backtest import backtest
from blocwatch.alerter.rules import load_rules, parse_rules
from blocwatch.alerter.settings import DEFAULT_RULES_FILE
from blocwatch.core.errors import ConfigError

from .alerting import T0, tagged

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 100), st.floats(allow_nan=True), st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
fields = st.sampled_from(
    ["name", "type", "window", "threshold", "group_by", "filter", "cooldown", "hop",
     "window_type", "count", "receivers", "renotify_growth", "labels", "corroboration"]
)  # fmt: skip
rule_dicts = st.dictionaries(fields, values, max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(rule_dicts, max_size=3))
def test_any_rules_document_loads_or_names_the_file(rules: list[dict[str, object]]) -> None:
    text = yaml.safe_dump({"rules": rules})
    try:
        parse_rules(text, "fuzz.yaml")
    except ConfigError as exc:
        message = exc.message
    else:
        return
    assert message.startswith("fuzz.yaml: ")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_load_or_name_the_file(data: bytes) -> None:
    try:
        parse_rules(data.decode("utf-8", "replace"), "fuzz.yaml")
    except ConfigError as exc:
        message = exc.message
    else:
        return
    assert message.startswith("fuzz.yaml")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-3 * 86400, 3 * 86400), st.integers(0, 5), st.integers(1, 4)),
        max_size=40,
    )
)
def test_out_of_order_and_skewed_events_never_crash(events: list[tuple[int, int, int]]) -> None:
    """Items days late, days in the future and in any order are handled by policy."""
    items = [
        tagged(f"e{n}", story=f"s{story}", source=f"o{src}", at=T0 + timedelta(seconds=offset))
        for n, (offset, story, src) in enumerate(events)
    ]
    result = backtest(load_rules(DEFAULT_RULES_FILE), items)
    assert result.events == len(items)
