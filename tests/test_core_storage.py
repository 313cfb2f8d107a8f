"""open_database: every way a state file can fail to open is a ConfigError naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocwatch.core.errors import ConfigError
from blocwatch.core.storage import open_database

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);"


def test_creates_the_directory_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.sqlite"
    db = open_database(path, SCHEMA, what="state", fix="fix it")
    with db:
        db.execute("INSERT INTO t VALUES ('x')")
    db.close()
    again = open_database(path, SCHEMA, what="state", fix="fix it")
    assert again.execute("SELECT k FROM t").fetchall() == [("x",)]
    assert again.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    again.close()


def test_not_a_database_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(ConfigError, match=r"cannot open state .*state\.sqlite") as caught:
        open_database(path, SCHEMA, what="state", fix="set X to a writable directory")
    assert caught.value.fix == "set X to a writable directory"


def test_a_file_where_the_directory_should_be_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file, not a directory")
    with pytest.raises(ConfigError, match="blocked"):
        open_database(tmp_path / "blocked" / "state.sqlite", SCHEMA, what="state", fix="f")
