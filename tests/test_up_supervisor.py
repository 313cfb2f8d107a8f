"""The supervisor with real child processes: restart with backoff, ordered stop, no orphans."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bench.results import process_running

from blocwatch.up.supervisor import Backoff, ChildEvent, ChildSpec, Supervisor

PY = sys.executable


async def _until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


def _script(code: str) -> list[str]:
    return [PY, "-c", code]


# A child that records SIGTERM in a shared file, then exits after a short delay (a drain).
GRACEFUL = """
import signal, sys, time
def stop(*_):
    time.sleep(0.2)
    with open(sys.argv[1], "a") as f:
        f.write(sys.argv[2] + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(sys.argv[3], "w").close()
while True:
    time.sleep(0.05)
"""


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=0.5, max_s=3.0, factor=2.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Supervisor([ChildSpec("a", ["true"]), ChildSpec("a", ["true"])])


async def test_dead_child_is_restarted_with_growing_backoff(tmp_path: Path) -> None:
    events: list[ChildEvent] = []
    crash = ChildSpec("crashy", _script("import sys; sys.exit(3)"), log_path=tmp_path / "c.log")
    steady = ChildSpec("steady", _script("import time; time.sleep(600)"))
    supervisor = Supervisor(
        [crash, steady],
        backoff=Backoff(initial_s=0.05, max_s=0.2, factor=2.0, reset_after_s=60),
        report=events.append,
    )
    async with supervisor:
        steady_pid = supervisor.pid("steady")
        await _until(lambda: supervisor.restarts("crashy") >= 4)
        assert supervisor.pid("steady") == steady_pid  # one crashing child leaves others alone
    exits = [e for e in events if e.name == "crashy" and e.kind == "exited"]
    assert all(e.returncode == 3 for e in exits)
    delays = [e.delay_s for e in events if e.name == "crashy" and e.kind == "restarting"]
    assert delays[:4] == [0.05, 0.1, 0.2, 0.2]
    assert steady_pid is not None
    assert not process_running(steady_pid)


async def test_restarts_stop_at_the_limit(tmp_path: Path) -> None:
    events: list[ChildEvent] = []
    supervisor = Supervisor(
        [ChildSpec("once", _script("raise SystemExit(1)"))],
        backoff=Backoff(initial_s=0.01, max_restarts=2),
        report=events.append,
    )
    async with supervisor:
        await _until(lambda: any(e.kind == "gave_up" for e in events))
    assert supervisor.restarts("once") == 2


async def test_stop_is_ordered_and_waits_for_each_child(tmp_path: Path) -> None:
    order_file = tmp_path / "order"
    specs = [
        ChildSpec(name, [PY, "-c", GRACEFUL, str(order_file), name, str(tmp_path / name)])
        for name in ("alerter", "processor", "collector")
    ]
    events: list[ChildEvent] = []
    supervisor = Supervisor(
        specs, stop_order=["collector", "processor", "alerter"], report=events.append
    )
    await supervisor.start()
    await _until(lambda: all((tmp_path / s.name).exists() for s in specs))  # handlers installed
    pids = {s.name: supervisor.pid(s.name) for s in specs}
    await supervisor.stop()
    assert order_file.read_text().split() == ["collector", "processor", "alerter"]
    stopped = [e for e in events if e.kind == "stopped"]
    assert [e.name for e in stopped] == ["collector", "processor", "alerter"]
    assert all(e.returncode == 0 for e in stopped)
    assert not any(e.kind == "restarting" for e in events)  # a stop is not a crash
    for pid in pids.values():
        assert pid is not None
        assert not process_running(pid)


async def test_child_ignoring_sigterm_is_killed_after_its_timeout() -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    supervisor = Supervisor([ChildSpec("stubborn", _script(stubborn), stop_timeout_s=0.5)])
    await supervisor.start()
    pid = supervisor.pid("stubborn")
    await asyncio.sleep(0.3)  # let it install the handler; the stop below must not depend on it
    await supervisor.stop()
    assert pid is not None
    assert not process_running(pid)


async def test_no_orphans_grandchildren_die_with_their_parent(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # The child starts a grandchild that ignores SIGTERM, then exits on SIGTERM itself: only
    # signalling the whole process group leaves nothing behind.
    parent = f"""
import signal, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open({str(pid_file)!r}, "w").write(str(grandchild.pid))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
time.sleep(600)
"""
    supervisor = Supervisor([ChildSpec("parent", _script(parent), stop_timeout_s=5)])
    await supervisor.start()
    await _until(lambda: pid_file.exists() and pid_file.read_text() != "")
    grandchild = int(pid_file.read_text())
    child = supervisor.pid("parent")
    assert process_running(grandchild)
    await supervisor.stop()
    await _until(lambda: not process_running(grandchild), timeout_s=10)
    assert child is not None
    assert not process_running(child)


async def test_crashed_childs_leftovers_are_reaped_before_restart(tmp_path: Path) -> None:
    pid_file = tmp_path / "left.pid"
    crash_leaving_helper = f"""
import os, subprocess, sys
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
if not os.path.exists({str(pid_file)!r}):
    open({str(pid_file)!r}, "w").write(str(helper.pid))
    os._exit(1)
import time; time.sleep(600)
"""
    supervisor = Supervisor(
        [ChildSpec("leaky", _script(crash_leaving_helper))],
        backoff=Backoff(initial_s=0.01),
    )
    async with supervisor:
        await _until(lambda: supervisor.restarts("leaky") >= 1)
        await _until(lambda: pid_file.exists() and pid_file.read_text() != "")
        await _until(lambda: not process_running(int(pid_file.read_text())), timeout_s=10)


async def test_child_environment_is_passed(tmp_path: Path) -> None:
    out = tmp_path / "env"
    code = f"import os; open({str(out)!r}, 'w').write(os.environ['BLOCWATCH_X'])"
    env = {**os.environ, "BLOCWATCH_X": "42"}
    supervisor = Supervisor([ChildSpec("env", _script(code), env)], backoff=Backoff(60))
    async with supervisor:
        await _until(lambda: out.exists() and out.read_text() == "42")
