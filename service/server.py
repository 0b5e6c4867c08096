"""Running the service: migrations once, then one or more worker processes on one port.

Every worker is a full instance (its own event loop, database pool and broker connection;
the first one also runs the outbox relay) listening on its own SO_REUSEPORT socket; the
kernel spreads connections over them. The parent only supervises: it forwards SIGTERM and
SIGINT, restarts a worker that dies on its own, and exits 0 once every worker has shut down
cleanly.

Nothing here imports prometheus_client (or the app, which does) before the metrics
directory of the workers is set: the library picks its storage at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

from service.config import Config

log = structlog.get_logger(__name__)

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Time a worker gets, beyond shutdown_timeout for requests, to stop its relay and close
# its pool and broker connection before it is abandoned.
CLEANUP_GRACE_SECONDS = 5.0
RESTART_DELAY_SECONDS = 1.0


def resolve_workers(requested: int | None, config: Config) -> int:
    """--workers, else WORKERS, else one per CPU core."""
    count = requested if requested is not None else config.workers
    if count < 0:
        raise ValueError("--workers must not be negative")
    return count or os.cpu_count() or 1


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(coro)
    result: int = uvloop.run(coro)
    return result


def serve(config: Config, *, workers: int | None = None, migrate_first: bool = True) -> int:
    try:
        count = resolve_workers(workers, config)
    except ValueError as exc:
        print(f"order-service: {exc}", file=sys.stderr)
        return 2
    if migrate_first and config.migrate_on_start:
        from service.migrations import migrate

        async def apply() -> int:
            await migrate(config.database_url)
            return 0

        # Once, here: workers that all migrated at start would only queue on the lock.
        run_async(apply())
    if count == 1:
        return run_async(serve_worker(config, config.port, reuse_port=False))
    return Supervisor(config, count).run()


async def serve_worker(config: Config, port: int, *, reuse_port: bool) -> int:
    """One instance: serves until SIGTERM or SIGINT, then shuts down gracefully."""
    from aiohttp import web

    from service.app import create_app
    from service.heap import freeze_startup_heap

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    runner = web.AppRunner(
        create_app(config), access_log=None, shutdown_timeout=config.shutdown_timeout
    )
    await runner.setup()
    freeze_startup_heap()
    try:
        site = web.TCPSite(runner, config.host, port, reuse_port=reuse_port)
        await site.start()
    except OSError as exc:
        log.error("listen_failed", host=config.host, port=port, error=str(exc))
        await runner.cleanup()
        return 1
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("serving", host=config.host, port=bound, pid=os.getpid())

    await stop.wait()
    # Stop accepting, let in-flight requests finish (up to shutdown_timeout), then run the
    # cleanup contexts: the relay finishes its batch, the broker and the pool close.
    log.info("shutdown_started", pid=os.getpid())
    try:
        async with asyncio.timeout(config.shutdown_timeout + CLEANUP_GRACE_SECONDS):
            await runner.cleanup()
    except TimeoutError:
        log.error("shutdown_timed_out", pid=os.getpid())
        return 1
    log.info("shutdown_complete", pid=os.getpid())
    return 0


def _worker_main(config: Config, port: int) -> None:
    # The parent's Python-level handlers came along with the fork; the worker's event loop
    # installs its own.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _stop_with_parent()
    sys.exit(run_async(serve_worker(config, port, reuse_port=True)))


def _stop_with_parent() -> None:
    """Linux: SIGTERM this worker (a graceful stop) if the supervisor dies, e.g. by SIGKILL,
    instead of leaving it serving as an orphan."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM))


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening SO_REUSEPORT socket: fixes the port (port 0 picks one) for
    the workers' sockets to share, and takes no connections itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    """Forks the workers, keeps them running and stops them together."""

    def __init__(self, config: Config, count: int) -> None:
        self.config = config
        self.count = count
        self.context = multiprocessing.get_context("fork")
        self.workers: dict[int, BaseProcess] = {}
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        metrics_dir = tempfile.mkdtemp(prefix="order-service-metrics-")
        os.environ[METRICS_DIR_ENV] = metrics_dir
        if "prometheus_client.values" in sys.modules:
            log.warning("metrics_not_multiprocess", reason="prometheus_client imported early")
        # Imported once here, after the metrics directory is set, so every fork shares it.
        import service.app  # noqa: F401

        reservation = reserve_port(self.config.host, self.config.port)
        port = reservation.getsockname()[1]
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for slot in range(self.count):
                self._start(slot, port)
            log.info(
                "supervising",
                workers=self.count,
                port=port,
                pid=os.getpid(),
                metrics_dir=metrics_dir,
            )
            self._wait(port)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            reservation.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("stopped", clean=not self.failed)
        return 1 if self.failed else 0

    def _start(self, slot: int, port: int) -> None:
        # One relay per instance, in the first worker: relays of one machine would only
        # split the same outbox into smaller batches (SKIP LOCKED keeps them correct, not
        # cheap). A restarted first worker brings it back.
        config = self.config if slot == 0 else replace(self.config, relay_enabled=False)
        process = self.context.Process(
            target=_worker_main, args=(config, port), name=f"order-service-worker-{slot}"
        )
        process.start()
        self.workers[slot] = process

    def _on_signal(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            log.info("stopping_workers", signal=signal.Signals(signum).name)
        self.stopping = True
        for process in self.workers.values():
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signum)

    def _wait(self, port: int) -> None:
        from prometheus_client import multiprocess

        deadline: float | None = None
        while self.workers:
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.config.shutdown_timeout
                deadline += CLEANUP_GRACE_SECONDS + 1
            if deadline is not None and time.monotonic() > deadline:
                self._kill_remaining()
            sentinels = {p.sentinel: slot for slot, p in self.workers.items()}
            for ready in wait(list(sentinels), timeout=0.5):
                slot = sentinels[ready]  # type: ignore[index]
                process = self.workers.pop(slot)
                process.join()
                if process.pid is not None:
                    # Its live gauges (pool size, in use) no longer count.
                    multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                self._exited(slot, process, port)

    def _exited(self, slot: int, process: BaseProcess, port: int) -> None:
        if self.stopping:
            if process.exitcode != 0:
                self.failed = True
                log.error("worker_stopped_uncleanly", pid=process.pid, exitcode=process.exitcode)
            return
        log.error("worker_died", pid=process.pid, exitcode=process.exitcode)
        time.sleep(RESTART_DELAY_SECONDS)
        if not self.stopping:
            self._start(slot, port)

    def _kill_remaining(self) -> None:
        self.failed = True
        for process in self.workers.values():
            if process.exitcode is None and process.pid is not None:
                log.error("worker_killed_after_timeout", pid=process.pid)
                os.kill(process.pid, signal.SIGKILL)
