"""Board state: Alert and AlertAction events folded into what the watch floor sees (pure)."""

from __future__ import annotations

from datetime import timedelta

from blocwatch.console.state import Board, BoardFilter, default_matchers, sparkline_counts
from tests.alerting import T0
from tests.consoling import action, alert

NOW = T0 + timedelta(hours=1)


def test_firing_first_by_severity_then_age_and_resolved_last() -> None:
    board = Board()
    board.apply_alert(alert("old-warn", severity="warning", first_seen=T0))
    board.apply_alert(alert("new-crit", severity="critical", first_seen=T0 + timedelta(minutes=9)))
    board.apply_alert(alert("old-crit", severity="critical", first_seen=T0))
    board.apply_alert(alert("done", severity="critical", status="resolved"))
    board.apply_alert(alert("info", severity="info"))
    order = [v.fingerprint for v in board.views(NOW)]
    assert order == ["old-crit", "new-crit", "old-warn", "info", "done"]


def test_an_older_notification_never_replaces_a_newer_one() -> None:
    board = Board()
    assert board.apply_alert(alert(notification=2, stories=5))
    assert not board.apply_alert(alert(notification=1, stories=3))
    assert board.alerts["fp-kp"].counts.stories == 5


def test_acknowledged_until_the_alert_grows_then_firing_again() -> None:
    board = Board()
    board.apply_alert(alert(stories=3))
    board.apply_action(action("acknowledge", comment="called the desk"))
    view = board.view("fp-kp", NOW)
    assert view is not None
    assert view.status == "acknowledged"
    assert view.ack is not None
    assert view.ack.comment == "called the desk"
    board.apply_alert(alert(notification=2, stories=3))  # a repeat: nothing new
    assert board.view("fp-kp", NOW).status == "acknowledged"  # type: ignore[union-attr]
    board.apply_alert(alert(notification=3, stories=6))  # grew: needs eyes again
    assert board.view("fp-kp", NOW).status == "firing"  # type: ignore[union-attr]


def test_ack_can_hold_until_resolution_when_configured() -> None:
    board = Board(ack_until_growth=False)
    board.apply_alert(alert(stories=3))
    board.apply_action(action("acknowledge"))
    board.apply_alert(alert(notification=2, stories=9))
    assert board.view("fp-kp", NOW).status == "acknowledged"  # type: ignore[union-attr]


def test_claim_unclaim_and_a_new_episode_starts_clean() -> None:
    board = Board()
    board.apply_alert(alert())
    board.apply_action(action("claim", who="kim", minutes=41))
    assert board.view("fp-kp", NOW).claim.who == "kim"  # type: ignore[union-attr]
    board.apply_action(action("unclaim", who="kim", minutes=42))
    assert board.view("fp-kp", NOW).claim is None  # type: ignore[union-attr]
    board.apply_action(action("claim", who="lee", minutes=43))
    board.apply_action(action("acknowledge", minutes=44))
    later = T0 + timedelta(days=1)
    board.apply_alert(alert(first_seen=later, fired_at=later))  # fired anew
    view = board.view("fp-kp", NOW)
    assert view is not None
    assert view.claim is None
    assert view.ack is None
    assert [a.action for a in view.history] == ["claim", "unclaim", "claim", "acknowledge"]


def test_duplicate_actions_apply_once() -> None:
    board = Board()
    board.apply_alert(alert())
    assert board.apply_action(action("claim"))
    assert not board.apply_action(action("claim"))
    assert len(board.history["fp-kp"]) == 1


def test_silence_matches_by_labels_until_it_ends_or_is_expired() -> None:
    board = Board()
    board.apply_alert(alert())
    board.apply_alert(alert("other", region="Taiwan Strait"))
    ends = T0 + timedelta(hours=2)
    board.apply_action(
        action(
            "silence",
            action_id="s1",
            matchers=default_matchers(board.alerts["fp-kp"]),
            ends_at=ends,
        )
    )
    assert board.view("fp-kp", NOW).status == "silenced"  # type: ignore[union-attr]
    assert board.view("other", NOW).status == "firing"  # type: ignore[union-attr]
    assert board.view("fp-kp", ends).status == "firing"  # type: ignore[union-attr]
    board.apply_action(action("unsilence", action_id="u1", silence_id="s1", minutes=50))
    assert board.view("fp-kp", NOW).status == "firing"  # type: ignore[union-attr]
    assert not board.apply_action(action("unsilence", action_id="u2", silence_id="nope"))


def test_default_matchers_are_rule_and_group() -> None:
    assert default_matchers(alert()) == {"rule": "kp-surge", "region": "Korean Peninsula"}


def test_filters() -> None:
    board = Board()
    board.apply_alert(alert("a", severity="critical"))
    board.apply_alert(alert("b", severity="warning", region="Taiwan Strait"))
    board.apply_alert(alert("c", status="resolved"))

    def shown(**query: str) -> list[str]:
        return [v.fingerprint for v in board.views(NOW, BoardFilter.from_query(query))]

    assert shown(severity="warning") == ["b"]
    assert shown(region="Taiwan Strait") == ["b"]
    assert shown(status="resolved") == ["c"]
    assert shown(label="escalation") == ["a", "b", "c"]
    assert shown(label="alliance") == []


def test_sparkline_counts_items_per_bin_over_the_window() -> None:
    counts = sparkline_counts(alert(stories=4), bins=12)
    assert sum(counts) == 4
    assert len(counts) == 12


def test_board_is_bounded_dropping_oldest_resolved() -> None:
    board = Board(max_alerts=2)
    board.apply_alert(alert("r1", status="resolved", fired_at=T0))
    board.apply_alert(alert("f1"))
    board.apply_alert(alert("f2"))
    assert set(board.alerts) == {"f1", "f2"}


def test_actions_read_before_their_alert_still_apply() -> None:
    board = Board()  # replaying two topics: the action's partition may come first
    board.apply_action(action("acknowledge", comment="seen"))
    board.apply_action(action("claim", who="kim", minutes=41))
    board.apply_alert(alert())
    view = board.view("fp-kp", NOW)
    assert view is not None
    assert view.status == "acknowledged"
    assert view.claim is not None
