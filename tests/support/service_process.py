"""`order-service` run as a real subprocess, its JSON log lines captured."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from service.config import Config

ROOT = Path(__file__).resolve().parents[2]


def service_env(config: Config, **overrides: str) -> dict[str, str]:
    """The environment that runs the service against the test config's resources."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORKERS", "PORT")}
    env.update(
        DATABASE_URL=config.database_url,
        AMQP_URL=config.amqp_url,
        EVENTS_EXCHANGE=config.events_exchange,
        JWT_SECRET=config.jwt_secret or "",
        MIGRATE_ON_START="false",
        HOST="127.0.0.1",
        PORT="0",
        RELAY_HTTP_PORT="0",
        LOG_LEVEL="info",
        LOG_FORMAT="json",
        OUTBOX_POLL_INTERVAL="0.2",
        SHUTDOWN_TIMEOUT="10",
    )
    env.update(overrides)
    return env


class ServiceProcess:
    """One `order-service <args>` process. `lines` holds every stdout line, `events` the
    ones that parsed as JSON objects."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.args = list(args)
        self.env = dict(env)
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self._new_line = asyncio.Event()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    async def start(self) -> ServiceProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.cli",
            *self.args,
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group: kill() takes the workers of `serve --workers N` too.
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            with contextlib.suppress(ValueError):
                parsed = json.loads(text)
                if isinstance(parsed, dict):
                    self.events.append(parsed)
            self._new_line.set()
        self._new_line.set()

    async def wait_for_event(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0, start: int = 0
    ) -> dict[str, Any]:
        """The first logged event from index `start` on that `match`es."""
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for event in self.events[seen:]:
                if match(event):
                    return event
            seen = max(seen, len(self.events))
            if self._reader is not None and self._reader.done():
                raise AssertionError(f"process exited; output:\n{self.output()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching log event; output:\n{self.output()}")
            self._new_line.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_line.wait(), remaining)

    async def serving_port(self, timeout: float = 20.0) -> int:
        event = await self.wait_for_event(lambda e: e.get("event") == "serving", timeout)
        return int(event["port"])

    async def relay_http_port(self, timeout: float = 20.0) -> int:
        """The port `order-service relay` answers its probes and metrics on."""
        event = await self.wait_for_event(lambda e: e.get("event") == "relay_http_serving", timeout)
        return int(event["port"])

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code."""
        if self.returncode is None:
            self.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def kill(self) -> None:
        """SIGKILL to the process and every worker it forked (to its process group, so also
        to workers left behind by a process that has exited); then its output is read to
        the end, so no pipe outlives the test's event loop."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.wait(10)

    def output(self) -> str:
        return "\n".join(self.lines[-60:])
