"""Supervised child processes: start in order, restart with backoff, stop in order, no orphans.

Generic on purpose: a child is an argv, an environment and a log file. Each child runs in its own
process group (session), so a Ctrl-C in the terminal reaches only `blocwatch up`, which then stops
the children one by one in the order it chose (upstream first, so downstream can drain), and a
child's own helpers (grandchildren) die with it: the whole group is signalled, not just the pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["Backoff", "ChildEvent", "ChildSpec", "Supervisor"]

EventKind = Literal["started", "exited", "restarting", "stopped", "gave_up"]


@dataclass(frozen=True)
class Backoff:
    """Exponential restart delays; a child that stayed up `reset_after_s` starts over."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    reset_after_s: float = 30.0
    max_restarts: int | None = None  # None: keep trying for as long as we run

    def delay(self, failures: int) -> float:
        """Delay before restart number `failures` (1 = first restart after a crash)."""
        return float(min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1)))


@dataclass(frozen=True)
class ChildSpec:
    """One supervised command."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    log_path: Path | None = None
    stop_timeout_s: float = 10.0


@dataclass(frozen=True)
class ChildEvent:
    """Something that happened to a child, for the console and for tests."""

    name: str
    kind: EventKind
    pid: int | None = None
    returncode: int | None = None
    delay_s: float | None = None
    restarts: int = 0


Report = Callable[[ChildEvent], None]


def _ignore(_: ChildEvent) -> None:
    return None


class _Child:
    """Runtime state of one spec: the current process and its restart history."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.process: asyncio.subprocess.Process | None = None
        self.failures = 0
        self.restarts = 0
        self.started_at = 0.0
        self.monitor: asyncio.Task[None] | None = None
        self.stopping = False


class Supervisor:
    """Runs children in the order given; `stop()` ends them in `stop_order` (default: given)."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        backoff: Backoff = Backoff(),
        report: Report = _ignore,
        stop_order: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        self._children = {spec.name: _Child(spec) for spec in specs}
        self._stop_order = list(stop_order) if stop_order is not None else names
        self._backoff = backoff
        self._report = report
        self._clock = clock
        self._stopping = False

    def pid(self, name: str) -> int | None:
        """Current pid of a running child (None while it is down or restarting)."""
        process = self._children[name].process
        if process is None or process.returncode is not None:
            return None
        return process.pid

    def restarts(self, name: str) -> int:
        return self._children[name].restarts

    async def start(self) -> None:
        for child in self._children.values():
            await self._spawn(child)
            child.monitor = asyncio.create_task(self._watch(child), name=f"watch-{child.spec.name}")

    async def _spawn(self, child: _Child) -> None:
        spec = child.spec
        # a local file opened for append does not block in any way that matters here
        log = open(spec.log_path, "ab") if spec.log_path else None  # noqa: SIM115, ASYNC230
        try:
            child.process = await asyncio.create_subprocess_exec(
                *spec.argv,
                env=dict(spec.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log if log is not None else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # own process group: see the module docstring
            )
        finally:
            if log is not None:
                log.close()  # the child holds its own descriptor now
        child.started_at = self._clock()
        self._report(ChildEvent(spec.name, "started", child.process.pid, restarts=child.restarts))

    async def _watch(self, child: _Child) -> None:
        """Wait for the child to exit; unless we are stopping, restart it after a backoff."""
        while True:
            assert child.process is not None
            code = await child.process.wait()
            _kill_group(child.process.pid, signal.SIGKILL)  # its leftovers must not outlive it
            if child.stopping or self._stopping:
                return
            self._report(ChildEvent(child.spec.name, "exited", child.process.pid, code))
            if self._clock() - child.started_at >= self._backoff.reset_after_s:
                child.failures = 0
            child.failures += 1
            limit = self._backoff.max_restarts
            if limit is not None and child.restarts >= limit:
                self._report(ChildEvent(child.spec.name, "gave_up", restarts=child.restarts))
                return
            delay = self._backoff.delay(child.failures)
            self._report(
                ChildEvent(child.spec.name, "restarting", delay_s=delay, restarts=child.restarts)
            )
            await asyncio.sleep(delay)
            if child.stopping or self._stopping:
                return
            child.restarts += 1
            await self._spawn(child)

    async def stop(self) -> None:
        """Stop every child in stop order: SIGTERM to its group, SIGKILL after its timeout."""
        self._stopping = True
        ordered = [self._children[n] for n in self._stop_order if n in self._children]
        ordered += [c for c in self._children.values() if c not in ordered]
        for child in ordered:
            await self._stop_child(child)

    async def _stop_child(self, child: _Child) -> None:
        child.stopping = True
        if child.monitor is not None:
            child.monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await child.monitor
        process = child.process
        if process is None:
            return
        if process.returncode is None:
            _kill_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), child.spec.stop_timeout_s)
            except TimeoutError:
                _kill_group(process.pid, signal.SIGKILL)
                await process.wait()
        _kill_group(process.pid, signal.SIGKILL)  # grandchildren that ignored SIGTERM
        self._report(ChildEvent(child.spec.name, "stopped", process.pid, process.returncode))

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a whole process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
