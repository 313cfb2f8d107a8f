"""Every command has --help; errors are one readable line plus the fix."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from blocwatch.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


@pytest.mark.parametrize("command", _commands(build_parser()), ids=" ".join)
def test_every_command_has_help(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: blocwatch" in capsys.readouterr().out


def test_config_error_is_one_line_and_a_fix() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "blocwatch", "topics", "list"],
        env={"BLOCWATCH_TOPIC_PARTITIONS": "-1", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("blocwatch: error: invalid setting BLOCWATCH_TOPIC_PARTITIONS")
    assert lines[1].startswith("  fix: ")
    assert "Traceback" not in done.stderr


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`blocwatch tag --text … | head -0`: the pipe is closed before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "blocwatch", "tag", "--text", "Iran test-fired a missile."],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert done.stderr == ""
