"""Tagging processes: the stateless half of processing (`prepare`) for whole batches, off the
worker's own process.

A faust worker is one Python process, and tagging is CPU work under the GIL: on its own it
spends about as long tagging a record as faust spends consuming it and our producer sending the
outputs. `processor_tagging_processes` > 0 moves `prepare` (decode, tag, story signature,
serialise) to that many spawned processes, each batch cut into one contiguous slice per
process, while the worker keeps the story index and the Kafka clients. Records come back in
input order; what a process returns is byte for byte what the worker would have made itself.

Each tagging process exits when its worker does, even one killed outright. A tagging process
that dies (killed, out of memory, a crash on one record) breaks the pool, and a batch that takes
longer than `timeout` (a record that sends a regex into a loop) stops the processes: either
way they are restarted and the batch retried one record at a time, so that only a record that
fails again is dead-lettered; the stream goes on.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from blocwatch.processor.processing import Preparation, Rejected, TagFunction, prepare
from blocwatch.processor.tagging import default_tagger, tag_text

__all__ = ["TaggingPool", "prepare_batch", "tagging_processes", "usable_cpus"]

log = logging.getLogger(__name__)
PIPE_SIZE = 1 << 20


def _start_process() -> None:
    """Initialiser of each tagging process: exit with the worker, compile the tagger now."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        # A worker killed outright never shuts its pool down, and a process blocked reading its
        # task queue would wait forever (it holds that pipe's write end too): watch the parent.
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    _warm_up()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def _widen_pipes(executor: ProcessPoolExecutor) -> None:
    """Give the executor's task and result pipes room for a whole batch (Linux; best effort).

    A batch's results (~1.5 kB per record, 300-400 kB) do not fit a pipe's default 64 kB. The
    tagging process then blocks writing them until the executor's reader thread in the worker
    has drained every 64 kB, and that thread needs the GIL for each read while the worker's
    event loop holds it, up to the 5 ms switch interval each time: the tagging process sat
    idle 14-25 ms after each ~40 ms batch (measured). With 1 MB pipes it writes a batch at
    once and goes on to the next (idle 8-9 ms in the worker; 0.8 ms with a plain busy loop).
    The queues are private attributes of ProcessPoolExecutor: anything unexpected leaves the
    default pipes.
    """
    if not hasattr(fcntl, "F_SETPIPE_SZ"):  # pipe sizes are Linux's
        return
    size = _pipe_size()
    for name in ("_result_queue", "_call_queue"):
        reader = getattr(getattr(executor, name, None), "_reader", None)
        try:
            fcntl.fcntl(reader.fileno(), fcntl.F_SETPIPE_SZ, size)  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError) as exc:
            log.debug("tagging pool: %s pipe keeps its default size: %s", name, exc)


def _pipe_size() -> int:
    """1 MB, or the system's limit for unprivileged processes if that is lower."""
    try:
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        limit = PIPE_SIZE
    return min(PIPE_SIZE, limit)


def tagging_processes(setting: int | Literal["auto"]) -> int:
    """The processes `processor_tagging_processes` asks for; "auto" is one if the worker may use
    two CPUs (one for faust, Kafka and the stories, one for tagging), else none. One, not a CPU
    each: the worker's own event loop is then the limit; more throughput takes more workers."""
    if setting != "auto":
        return setting
    return 1 if usable_cpus() >= 2 else 0


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> float:
    """CPUs this process may use: its CPU affinity, capped by a cgroup CPU limit (a container's
    `resources.limits.cpu`) when there is one."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every CPU
    allowed = float(len(affinity(0)) if affinity is not None else os.cpu_count() or 1)
    v2 = _read(cgroup / "cpu.max")
    v1 = _read(cgroup / "cpu" / "cpu.cfs_quota_us"), _read(cgroup / "cpu" / "cpu.cfs_period_us")
    quota = cpu_quota(v2, *v1)
    return allowed if quota is None else min(allowed, quota)


def cpu_quota(cpu_max: str | None, v1_quota: str | None, v1_period: str | None) -> float | None:
    """The CPU limit in CPUs from cgroup v2's cpu.max ("max 100000", "50000 100000") or cgroup
    v1's cfs quota and period (-1: none); None without a limit or anything readable."""
    try:
        if cpu_max is not None:
            quota, period = cpu_max.split()
            return None if quota == "max" else int(quota) / int(period)
        if v1_quota is not None and v1_period is not None and int(v1_quota) > 0:
            return int(v1_quota) / int(v1_period)
    except ValueError:
        log.debug("unreadable cgroup CPU limit %r / %r %r", cpu_max, v1_quota, v1_period)
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "a tagging process took too long"
    return "a tagging process died"


def _warm_up() -> None:
    default_tagger()  # compile the rules once per process, not on its first batch


def prepare_batch(
    values: Sequence[bytes | None], tag: TagFunction, tagger_version: str, now: datetime
) -> list[Preparation]:
    """`prepare` every record of a batch (runs in a tagging process)."""
    return [prepare(value, tag=tag, tagger_version=tagger_version, now=now) for value in values]


class TaggingPool:
    """`processes` spawned tagging processes; `tag` must be picklable (a module-level function)."""

    def __init__(
        self,
        processes: int,
        tagger_version: str,
        tag: TagFunction = tag_text,
        on_restart: Callable[[], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError("a tagging pool needs at least one process")
        self.processes = processes
        self.tagger_version = tagger_version
        self.tag = tag
        self.restarts = 0
        self.on_restart = on_restart
        self.timeout = timeout  # seconds a batch may take; None: no limit
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker runs threads (faust's consumer) that fork would copy mid-air
        executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_process,
        )
        _widen_pipes(executor)
        return executor

    async def prepare(self, values: Sequence[bytes | None], now: datetime) -> list[Preparation]:
        """`prepare` for each record, in order, in the tagging processes."""
        try:
            return await self._run(values, now)
        except (BrokenProcessPool, TimeoutError) as exc:
            log.error("%s: restarting the tagging processes, retrying record by record", _why(exc))
            await self._restart()
        results: list[Preparation] = []
        for value in values:  # one at a time: only a record that fails a process again is lost
            try:
                results += await self._run([value], now)
            except (BrokenProcessPool, TimeoutError) as exc:
                await self._restart()
                results.append(Rejected(f"{_why(exc)} on this record", type(exc).__name__))
        return results

    async def warm_up(self) -> None:
        """Start every process and compile its tagger now, not on the first batches."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, _warm_up) for _ in range(self.processes))
        )

    async def _run(self, values: Sequence[bytes | None], now: datetime) -> list[Preparation]:
        """The batch's results, within `timeout` seconds (TimeoutError otherwise)."""
        return await asyncio.wait_for(self._slices(values, now), self.timeout)

    async def _slices(self, values: Sequence[bytes | None], now: datetime) -> list[Preparation]:
        """One task per process, each a contiguous slice, so the order is kept."""
        loop = asyncio.get_running_loop()
        step = -(-len(values) // self.processes)  # ceiling: at most `processes` slices
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(
                    self._executor,
                    prepare_batch,
                    list(values[at : at + step]),
                    self.tag,
                    self.tagger_version,
                    now,
                )
                for at in range(0, len(values), step)
            )
        )
        return [result for part in parts for result in part]

    async def _restart(self) -> None:
        """New processes, warmed up before the next timed batch; the old ones stopped."""
        self.restarts += 1
        if self.on_restart is not None:
            self.on_restart()
        old, self._executor = self._executor, self._new_executor()
        # A process stuck on one record would keep running after shutdown: stop them all.
        # (concurrent.futures has no public way before Python 3.14's terminate_workers.)
        processes: dict[int, Any] = getattr(old, "_processes", None) or {}
        for process in list(processes.values()):
            process.terminate()
        old.shutdown(wait=False, cancel_futures=True)
        await self.warm_up()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
