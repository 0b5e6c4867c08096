"""Running the service: migrations once, then one or more worker processes on one port.

Every worker is a full instance (its own event loop, database pool and broker connection;
the first one also runs the outbox relay) listening on its own SO_REUSEPORT socket; the
kernel spreads connections over them. The parent only supervises: it forwards SIGTERM and
SIGINT, restarts a worker that dies on its own, and exits 0 once every worker has shut down
cleanly.

A worker's stop has a budget: SHUTDOWN_TIMEOUT for the requests in flight, then
CLEANUP_GRACE_SECONDS for its clean-up, whose steps share a deadline a little short of it
(service.cleanup_deadline): a database or broker that stops answering makes them give up
what they wait for, and a worker whose clean-up had to abandon something on the way (the
relay's batch, the broker's or the pool's close, a background task) exits 1. A worker
still running at the end of the budget (its event loop blocked, say) ends there with
status 1, whatever it is doing. A single worker (`--workers 1`) has no parent to kill it:
the bound holds by itself.

Nothing here imports prometheus_client (or the app, which does) before the metrics
directory of the workers is set: the library picks its storage at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from service.config import MAX_WORKERS, Config
from service.metrics_dir import make_metrics_directory, remove_abandoned
from service.outside_failures import OUTSIDE_FAILURES, describe

if TYPE_CHECKING:
    from aiohttp import web

log = structlog.get_logger(__name__)

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Time a worker gets, beyond shutdown_timeout for requests, to stop its relay and close
# its pool and broker connection; one still running then ends with status 1 (HardStop).
CLEANUP_GRACE_SECONDS = 5.0
# What a worker ending at its deadline waits for its last log line to be written.
HARD_STOP_LOG_SECONDS = 0.2
# What the clean-up's own deadline (service.cleanup_deadline) keeps before the hard stop:
# the event loop's end, and the shortest waits its steps get past their deadline.
CLEANUP_DEADLINE_MARGIN_SECONDS = 0.5
# aiohttp's shutdown_timeout for SHUTDOWN_TIMEOUT=0: its own 0 means no limit.
SHORTEST_REQUEST_WAIT_SECONDS = 0.001
# A worker that dies is started again after RESTART_DELAY_SECONDS, doubled for every death
# in a row of one that had not yet served STABLE_AFTER_SECONDS (a crash loop, e.g.
# DB_POOL_MIN > 0 with the database down), up to MAX_RESTART_DELAY_SECONDS.
RESTART_DELAY_SECONDS = 1.0
MAX_RESTART_DELAY_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0


def resolve_workers(requested: int | None, config: Config) -> int:
    """--workers, else WORKERS, else one per CPU this process may use (at most
    MAX_WORKERS)."""
    count = requested if requested is not None else config.workers
    if not 0 <= count <= MAX_WORKERS:
        raise ValueError(f"--workers must be between 0 and {MAX_WORKERS}")
    return count or min(usable_cpus(), MAX_WORKERS)


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path | None = None) -> int:
    """The CPUs this process may run on (its affinity: taskset, a cpuset), fewer if its
    cgroup v2 CPU quota (a container's CPU limit) allows less time than that. os.cpu_count()
    is the host's: a container limited to one CPU on a 64-core node would start 64
    workers, each with a pool of DB_POOL_MAX connections."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, period = (cpu_max or CGROUP_CPU_MAX).read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    try:
        return max(1, min(cpus, math.ceil(int(quota) / int(period))))
    except (ValueError, ZeroDivisionError):
        return cpus


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
    # The workers size their order writers by how many of them there are.
    config = replace(config, workers=count)
    from service.auth.bearer import unverifiable_reason

    reason = unverifiable_reason(config)
    if reason is not None:
        log.warning(
            "bearer_tokens_unverifiable", reason=reason, endpoint="/external/api/v1/me/order"
        )
    if migrate_first and config.migrate_on_start:
        from service.migrations import migrate

        async def apply() -> int:
            await migrate(config.database_url)
            return 0

        # Once, here: workers that all migrated at start would only queue on the lock.
        run_async(apply())
    if count == 1:
        return run_worker(config, config.port, reuse_port=False)
    return Supervisor(config, count).run()


def run_worker(config: Config, port: int, *, reuse_port: bool) -> int:
    """serve_worker in an event loop of its own. Its HardStop is disarmed only once the
    loop has ended: the end of a loop (it cancels and awaits every task left) has no bound
    of its own."""
    hard_stop = HardStop()
    try:
        return run_async(serve_worker(config, port, reuse_port=reuse_port, hard_stop=hard_stop))
    finally:
        hard_stop.disarm()


async def serve_worker(config: Config, port: int, *, reuse_port: bool, hard_stop: HardStop) -> int:
    """One instance: serves until SIGTERM or SIGINT, then shuts down gracefully; 0 when
    the shutdown was clean, 1 when its clean-up abandoned something (see shut_down).
    `hard_stop`, armed when the shutdown starts, ends the process with status 1 at the end
    of the shutdown's budget: SHUTDOWN_TIMEOUT plus CLEANUP_GRACE_SECONDS."""
    from aiohttp import web

    from service.app import create_app
    from service.heap import freeze_startup_heap
    from service.http_protocol import OrderServiceRunner

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    if not reuse_port:
        # A taken port is found before the app starts: a second `serve` on it would
        # otherwise open a pool and run a relay of its own before it failed to listen.
        try:
            check_port_free(config.host, port)
        except OSError as exc:
            log.error("listen_failed", host=config.host, port=port, error=str(exc))
            return 1

    # aiohttp waits for a request in flight twice: up to its shutdown_timeout, then (after
    # cancelling only the request's body) up to shutdown_timeout again before it cancels
    # the handler. Half of SHUTDOWN_TIMEOUT each makes the whole wait SHUTDOWN_TIMEOUT.
    # aiohttp reads 0 as no limit: SHUTDOWN_TIMEOUT=0 (cut requests off at once) would
    # have let a request run on until the worker's deadline.
    request_wait = max(config.shutdown_timeout / 2, SHORTEST_REQUEST_WAIT_SECONDS)
    runner = OrderServiceRunner(create_app(config), access_log=None, shutdown_timeout=request_wait)
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
    log.info("shutdown_started", pid=os.getpid())
    # Not asyncio.timeout around the clean-up, as before: aiohttp catches the cancellation
    # of one cleanup context and runs the next ones, and a wait that suppresses
    # CancelledError swallows it, so the stop ran on past its budget and still exited 0.
    # Nor a timeout and a return: the event loop's end then awaits whatever is left, and a
    # database that stops answering holds that up too.
    budget = config.shutdown_timeout + CLEANUP_GRACE_SECONDS
    hard_stop.arm(budget)
    return await shut_down(runner, budget - CLEANUP_DEADLINE_MARGIN_SECONDS)


async def shut_down(runner: web.AppRunner, cleanup_within: float | None = None) -> int:
    """Stops accepting, lets in-flight requests finish (up to shutdown_timeout), then runs
    the cleanup contexts: the relay finishes its batch, the broker and the pool close. With
    `cleanup_within`, all of it ends within that many seconds: each step of the clean-up
    takes less than its own limit if the steps after it would not fit otherwise.

    0 when all of it is done; 1 if the cleanup had to abandon something on the way
    (app.CLEANUP_ABANDONED). Nothing is lost either way: no order was answered before it
    committed, and rows left unsent in the outbox go out with the next relay.
    """
    from service.app import CLEANUP_ABANDONED
    from service.background import left_behind
    from service.state import CLEANUP_DEADLINE

    already_left = len(left_behind())
    if cleanup_within is not None:
        runner.app[CLEANUP_DEADLINE].set(cleanup_within)
    await runner.cleanup()
    # A background task that would not stop (a connection's close a frozen database never
    # answers) is named as abandoned too.
    abandoned = runner.app[CLEANUP_ABANDONED] + [
        f"task:{name}" for name in left_behind()[already_left:]
    ]
    if abandoned:
        log.error("shutdown_unclean", pid=os.getpid(), abandoned=abandoned)
        return 1
    log.info("shutdown_complete", pid=os.getpid())
    return 0


class HardStop:
    """Ends the process with status 1 if it still runs `seconds` after arm(), whatever its
    event loop is doing (a thread's timer, not the loop's): for a single worker, what the
    supervisor's SIGKILL is for one of several, and a second earlier for those.

    What the clean-up had not finished is abandoned as by a SIGKILL: the database's
    connections drop (PostgreSQL rolls back what they left open), the relay's batch stays
    unsent in the outbox for the next relay, a request still open gets no answer.
    """

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None

    def arm(self, seconds: float) -> None:
        self.disarm()
        self._timer = threading.Timer(seconds, self._fire, args=(seconds,))
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @staticmethod
    def _fire(seconds: float) -> None:
        # Not held up by its own log line either (a stdout that nobody reads blocks it).
        fallback = threading.Timer(HARD_STOP_LOG_SECONDS, os._exit, args=(1,))
        fallback.daemon = True
        fallback.start()
        log.error("shutdown_timed_out", pid=os.getpid(), seconds=seconds)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os._exit(1)


def _worker_main(config: Config, port: int) -> None:
    # The parent's Python-level handlers and wake-up socket came along with the fork; the
    # worker's event loop installs its own.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # A stop signal sent while the supervisor forked us was held back for this moment; a
    # worker that has not started serving just ends.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    _stop_with_parent()
    try:
        code = run_worker(config, port, reuse_port=True)
    except OUTSIDE_FAILURES as exc:
        log.error("worker_failed", pid=os.getpid(), error=describe(exc))
        code = 1
    sys.exit(code)


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


def check_port_free(host: str, port: int) -> None:
    """Raises OSError if `host`:`port` cannot be bound now (taken, or a host that is not
    this machine's). The port is not held: the site binds it once the app has started."""
    if port == 0:
        return
    with _tcp_socket(host) as probe:
        probe.bind((host, port))


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening SO_REUSEPORT socket: fixes the port (port 0 picks one) for
    the workers' sockets to share, and takes no connections itself."""
    sock = _tcp_socket(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _tcp_socket(host: str) -> socket.socket:
    """A TCP socket for `host` with SO_REUSEADDR, as asyncio's servers bind: a port left
    in TIME_WAIT is free, one another socket listens on is not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


class Supervisor:
    """Forks the workers, keeps them running and stops them together."""

    def __init__(self, config: Config, count: int) -> None:
        self.config = config
        self.count = count
        self.context = multiprocessing.get_context("fork")
        self.workers: dict[int, BaseProcess] = {}
        self.started_at: dict[int, float] = {}
        self.deaths_in_a_row: dict[int, int] = {}
        self.restart_at: dict[int, float] = {}  # slot -> when its replacement starts
        # Workers already sent SIGKILL after the shutdown deadline: _wait checks the deadline
        # on every tick, and one SIGKILL is all a process needs until it is reaped.
        self.killed: set[int] = set()
        # Signals received and not yet handled: the handler only records them (see
        # _on_signal); the wake-up socket's byte interrupts the loop's wait at once.
        self.signals: list[int] = []
        self.wake_read, self.wake_write = socket.socketpair()
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        try:
            reservation = reserve_port(self.config.host, self.config.port)
        except OSError as exc:
            log.error("listen_failed", host=self.config.host, port=self.config.port, error=str(exc))
            return 1
        port = reservation.getsockname()[1]
        abandoned = remove_abandoned()
        if abandoned:
            log.info("metrics_directories_removed", paths=abandoned)
        metrics = make_metrics_directory()
        metrics_dir = metrics.path
        os.environ[METRICS_DIR_ENV] = metrics_dir
        if "prometheus_client.values" in sys.modules:
            log.warning("metrics_not_multiprocess", reason="prometheus_client imported early")
        # Imported once here, after the metrics directory is set, so every fork shares it.
        import service.app  # noqa: F401

        self.wake_write.setblocking(False)
        previous_wakeup = signal.set_wakeup_fd(self.wake_write.fileno(), warn_on_full_buffer=False)
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
            signal.set_wakeup_fd(previous_wakeup)
            self.wake_read.close()
            self.wake_write.close()
            reservation.close()
            metrics.remove()
        log.info("stopped", clean=not self.failed)
        return 1 if self.failed else 0

    def _start(self, slot: int, port: int) -> None:
        # One relay per instance, in the first worker: relays of one machine would only
        # split the same outbox into smaller batches (SKIP LOCKED keeps them correct, not
        # cheap). A restarted first worker brings it back.
        config = (
            self.config
            if slot == 0
            else replace(self.config, relay_enabled=False, instance_relay=self.config.relay_enabled)
        )
        process = self.context.Process(
            target=_worker_main, args=(config, port), name=f"order-service-worker-{slot}"
        )
        # Blocked across the fork: a signal must not reach the child while it still has the
        # supervisor's handler, which would swallow it (the child unblocks them itself).
        # The previous mask is put back, not the two unblocked: a caller that had them
        # blocked keeps them blocked.
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        self.workers[slot] = process
        self.started_at[slot] = time.monotonic()

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Only recorded: the handler runs in the main thread between any two bytecodes, and
        # one that logged while the loop was writing a log line would wait forever for the
        # lock that very line holds.
        self.signals.append(signum)

    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if not self.stopping:
                log.info("stopping_workers", signal=signal.Signals(signum).name)
            self.stopping = True
            for process in self.workers.values():
                if process.pid is not None and process.exitcode is None:
                    os.kill(process.pid, signum)

    def _wait(self, port: int) -> None:
        from prometheus_client import multiprocess

        deadline: float | None = None
        while True:
            self._handle_signals()
            if not (self.workers or (self.restart_at and not self.stopping)):
                break
            self._restart_due(port)
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.config.shutdown_timeout
                deadline += CLEANUP_GRACE_SECONDS + 1
            if deadline is not None and time.monotonic() > deadline:
                self._kill_remaining()
            sentinels = {p.sentinel: slot for slot, p in self.workers.items()}
            for ready in wait([*sentinels, self.wake_read], timeout=0.5):
                if ready is self.wake_read:
                    with contextlib.suppress(BlockingIOError):
                        self.wake_read.recv(64, socket.MSG_DONTWAIT)
                    continue
                slot = sentinels[ready]  # type: ignore[index]
                process = self.workers.pop(slot)
                process.join()
                if process.pid is not None:
                    # Its live gauges (pool size, in use) no longer count.
                    multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                self._exited(slot, process, port)

    def _exited(self, slot: int, process: BaseProcess, port: int) -> None:
        if self.stopping:
            # Ended by the stop signal itself: it came before the worker had its handler,
            # so it was not serving yet.
            stopped_by_signal = process.exitcode in (-signal.SIGTERM, -signal.SIGINT)
            if process.exitcode != 0 and not stopped_by_signal:
                self.failed = True
                log.error("worker_stopped_uncleanly", pid=process.pid, exitcode=process.exitcode)
            return
        if time.monotonic() - self.started_at[slot] >= STABLE_AFTER_SECONDS:
            # It had served long enough: this death does not continue a crash loop.
            self.deaths_in_a_row[slot] = 0
        delay = self._schedule_restart(slot)
        log.error("worker_died", pid=process.pid, exitcode=process.exitcode, restart_in_s=delay)

    def _schedule_restart(self, slot: int) -> float:
        """Counts one more failure in a row of the slot's worker and sets when it starts
        again (the crash-loop backoff); returns that delay."""
        in_a_row = self.deaths_in_a_row.get(slot, 0) + 1
        self.deaths_in_a_row[slot] = in_a_row
        delay: float = min(RESTART_DELAY_SECONDS * 2 ** (in_a_row - 1), MAX_RESTART_DELAY_SECONDS)
        # Not a sleep here: the supervisor keeps watching the other workers and signals.
        self.restart_at[slot] = time.monotonic() + delay
        return delay

    def _restart_due(self, port: int) -> None:
        now = time.monotonic()
        for slot, when in list(self.restart_at.items()):
            if now >= when and not self.stopping:
                del self.restart_at[slot]
                self._restart(slot, port)

    def _restart(self, slot: int, port: int) -> None:
        try:
            self._start(slot, port)
        except OSError as exc:
            # A fork that fails (no memory, process or file limit reached) may succeed
            # later: the supervisor keeps its other workers and tries again, backing off
            # as for a worker that died at once.
            delay = self._schedule_restart(slot)
            log.error("worker_restart_failed", slot=slot, error=describe(exc), restart_in_s=delay)

    def _kill_remaining(self) -> None:
        self.failed = True
        for process in self.workers.values():
            pid = process.pid
            if process.exitcode is None and pid is not None and pid not in self.killed:
                log.error("worker_killed_after_timeout", pid=pid)
                os.kill(pid, signal.SIGKILL)
                # Still in self.workers: _wait reaps it once its sentinel is ready.
                self.killed.add(pid)
