"""Tagging processes (processor.pool): real spawned processes, the results the worker itself
would compute, and a process that dies on one record costing only that record."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from blocwatch.core.errors import ConfigError
from blocwatch.core.settings import load_settings
from blocwatch.processor.pool import (
    TaggingPool,
    _pipe_size,
    cpu_quota,
    tagging_processes,
    usable_cpus,
)
from blocwatch.processor.processing import Prepared, Rejected, prepare
from blocwatch.processor.settings import ProcessorSettings
from blocwatch.processor.tagging import TAGGER_VERSION, Tagging, tag_text
from tests.processor_workers import news_bytes

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DEATH = "this headline kills the tagging process"
HANG = "this headline sends the tagger into an endless loop"

RECORDS: list[bytes | None] = [
    news_bytes("p1", "North Korea fires ballistic missile into the sea off its east coast"),
    news_bytes("p2", "Russia and North Korea sign mutual defence pact in Pyongyang"),
    b"\xff not json",
    None,
    news_bytes("p3", "Foreign ministers meet in Geneva to discuss a humanitarian corridor"),
    news_bytes("p4", "Philippines and Japan sign access agreement for joint exercises"),
]


def dies_on_marker(title: str, summary: str) -> Tagging:
    """A tagger whose process dies (no exception, no cleanup) on one headline."""
    if title == DEATH:
        os._exit(3)
    return tag_text(title, summary)


def hangs_on_marker(title: str, summary: str) -> Tagging:
    """A tagger that never returns on one headline (as a regex caught backtracking would)."""
    while title == HANG:
        time.sleep(1)
    return tag_text(title, summary)


@pytest.mark.parametrize("processes", [1, 2])
async def test_pool_results_equal_the_workers_own(processes: int) -> None:
    pool = TaggingPool(processes, TAGGER_VERSION)
    try:
        await pool.warm_up()
        results = await pool.prepare(RECORDS, NOW)
    finally:
        pool.close()
    here = [prepare(v, tag=tag_text, tagger_version=TAGGER_VERSION, now=NOW) for v in RECORDS]
    assert results == here  # same order, same bytes, same rejections
    kinds = [Prepared, Prepared, Rejected, Rejected, Prepared, Prepared]
    assert [type(r) for r in results] == kinds
    assert {label for r in results if isinstance(r, Prepared) for label in r.labels} == {
        "alliance",
        "escalation",
    }


async def test_a_process_dying_on_one_record_loses_only_that_record() -> None:
    records = [*RECORDS[:2], news_bytes("dead", DEATH), *RECORDS[4:]]
    restarts: list[int] = []
    pool = TaggingPool(1, TAGGER_VERSION, tag=dies_on_marker, on_restart=lambda: restarts.append(1))
    try:
        results = await pool.prepare(records, NOW)
        assert pool.restarts >= 2  # the batch broke the pool, then the record alone did again
        assert len(restarts) == pool.restarts  # what the worker counts in its metrics
        after = await pool.prepare(RECORDS[:1], NOW)  # the rebuilt pool works
    finally:
        pool.close()
    assert [type(r) for r in results] == [Prepared, Prepared, Rejected, Prepared, Prepared]
    dead = results[2]
    assert isinstance(dead, Rejected)
    assert "died" in dead.error
    assert dead.error_type == "BrokenProcessPool"
    assert [r.item_id for r in results if isinstance(r, Prepared)] == ["p1", "p2", "p3", "p4"]
    assert isinstance(after[0], Prepared)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are Linux's")
async def test_a_whole_batch_fits_the_pools_pipes() -> None:
    """A batch of results (300-400 kB) is written at once instead of 64 kB at a time: the
    tagging process stalled on each chunk (see processor.pool._widen_pipes). Also after a
    restart, whose executor is new."""
    pool = TaggingPool(1, TAGGER_VERSION)
    try:
        for _ in range(2):
            executor: Any = pool._executor
            for queue in (executor._result_queue, executor._call_queue):
                assert fcntl.fcntl(queue._reader.fileno(), fcntl.F_GETPIPE_SZ) == _pipe_size()
            await pool._restart()
    finally:
        pool.close()


def test_a_pool_needs_a_process() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TaggingPool(0, TAGGER_VERSION)


async def test_a_record_that_hangs_a_process_is_dead_lettered_after_the_timeout() -> None:
    records = [RECORDS[0], news_bytes("hang", HANG), RECORDS[1]]
    pool = TaggingPool(1, TAGGER_VERSION, tag=hangs_on_marker, timeout=3.0)
    try:
        await pool.warm_up()
        results = await pool.prepare(records, NOW)
        after = await pool.prepare(RECORDS[:1], NOW)  # the restarted processes work
    finally:
        pool.close()
    assert [type(r) for r in results] == [Prepared, Rejected, Prepared]
    stuck = results[1]
    assert isinstance(stuck, Rejected)
    assert stuck.error == "a tagging process took too long on this record"
    assert stuck.error_type == "TimeoutError"
    assert pool.restarts == 2  # the batch timed out, then the record alone did again
    assert isinstance(after[0], Prepared)


@pytest.mark.parametrize(
    ("cpu_max", "v1_quota", "v1_period", "cpus"),
    [
        ("max 100000", None, None, None),  # cgroup v2, no limit
        ("250000 100000", None, None, 2.5),
        ("25000 100000", None, None, 0.25),  # resources.limits.cpu: 250m
        (None, "-1", "100000", None),  # cgroup v1, no limit
        (None, "150000", "100000", 1.5),
        (None, None, None, None),  # nothing readable
        ("garbage", None, None, None),
    ],
)
def test_cpu_limit_from_cgroup_files(
    cpu_max: str | None, v1_quota: str | None, v1_period: str | None, cpus: float | None
) -> None:
    assert cpu_quota(cpu_max, v1_quota, v1_period) == cpus


def test_usable_cpus_is_the_affinity_capped_by_the_cgroup_limit(tmp_path: Path) -> None:
    allowed = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path) == allowed  # no cgroup files: the affinity
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cpus(tmp_path) == 0.5
    (tmp_path / "cpu.max").write_text(f"{400_000 * allowed} 100000\n")
    assert usable_cpus(tmp_path) == allowed  # a limit above the affinity changes nothing


def test_auto_tagging_processes_follow_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tagging_processes(0) == 0
    assert tagging_processes(3) == 3
    monkeypatch.setattr("blocwatch.processor.pool.usable_cpus", lambda: 1.5)
    assert tagging_processes("auto") == 0
    monkeypatch.setattr("blocwatch.processor.pool.usable_cpus", lambda: 2.0)
    assert tagging_processes("auto") == 1
    monkeypatch.setattr("blocwatch.processor.pool.usable_cpus", lambda: 16.0)
    assert tagging_processes("auto") == 1


@pytest.mark.parametrize(("value", "parsed"), [("auto", "auto"), ("0", 0), ("2", 2)])
def test_tagging_processes_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, parsed: int | str
) -> None:
    assert ProcessorSettings().processor_tagging_processes == "auto"  # the default
    monkeypatch.setenv("BLOCWATCH_PROCESSOR_TAGGING_PROCESSES", value)
    assert load_settings(ProcessorSettings).processor_tagging_processes == parsed


@pytest.mark.parametrize("value", ["-1", "65", "many"])
def test_bad_tagging_processes_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BLOCWATCH_PROCESSOR_TAGGING_PROCESSES", value)
    with pytest.raises(ConfigError, match="BLOCWATCH_PROCESSOR_TAGGING_PROCESSES"):
        load_settings(ProcessorSettings)
