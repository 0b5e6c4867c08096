"""What an operator sees when a command cannot start: one log line naming the cause and
exit status 1 (2 for a bad setting), never a traceback; and a supervisor whose workers
keep dying backs off instead of restarting them every second."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from tests.operations.conftest import Launch

UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/nowhere"


async def test_migrate_with_the_database_unreachable_is_one_line(launch: Launch) -> None:
    process = await launch("migrate", DATABASE_URL=UNREACHABLE_DATABASE)
    assert await process.wait() == 1
    [failure] = [e for e in process.events if e.get("event") == "command_failed"]
    assert failure["command"] == "migrate"
    assert "Connection refused" in failure["error"]
    assert "Traceback" not in process.output()


async def test_a_failure_names_what_it_was_with(launch: Launch) -> None:
    # RabbitMQ unreachable: the line names the broker, not the database (which is fine).
    process = await launch(
        "events", "tail", "--take-backlog", AMQP_URL="amqp://guest:guest@127.0.0.1:1/"
    )
    assert await process.wait() == 1
    [failure] = [e for e in process.events if e.get("event") == "command_failed"]
    assert failure["broker"] == "amqp://guest:***@127.0.0.1:1/"
    assert "database" not in failure
    # A file that is not there: its name.
    process = await launch("sign", *SIGN_ARGS, "--body-file", "/nonexistent/body.json")
    assert await process.wait() == 1
    [failure] = [e for e in process.events if e.get("event") == "command_failed"]
    assert failure["file"] == "/nonexistent/body.json"
    assert "database" not in failure


SIGN_ARGS = ("--public-key", "pk_eyezy_1", "--secret", "s", "--path", "/x")


async def test_serve_migrating_with_the_database_unreachable_is_one_line(launch: Launch) -> None:
    process = await launch("serve", DATABASE_URL=UNREACHABLE_DATABASE, MIGRATE_ON_START="true")
    assert await process.wait() == 1
    assert [e["command"] for e in process.events if e.get("event") == "command_failed"] == ["serve"]
    assert "Traceback" not in process.output()


async def test_workers_on_a_taken_port_fail_cleanly_and_leave_no_metrics_directory(
    launch: Launch, tmp_path: Path
) -> None:
    # The supervisor makes its metrics directory with mkdtemp, which honours TMPDIR: a
    # temporary directory of this process alone, so anything left in it was left by this
    # process, whatever its name, and no other test's directories count.
    service_tmp = tmp_path / "service-tmp"
    service_tmp.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await launch("serve", "--workers", "2", PORT=str(port), TMPDIR=str(service_tmp))
        assert await process.wait() == 1
    [failure] = [e for e in process.events if e.get("event") == "listen_failed"]
    assert failure["port"] == port
    assert "Traceback" not in process.output()
    assert list(service_tmp.iterdir()) == []


async def test_a_single_worker_on_a_taken_port_fails_before_starting_anything(
    launch: Launch,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await launch("serve", "--workers", "1", PORT=str(port))
        assert await process.wait() == 1
    [failure] = [e for e in process.events if e.get("event") == "listen_failed"]
    assert failure["port"] == port
    # No pool, no catalog, no broker, no relay of its own first.
    started = {"database_pool_open", "catalog_loaded", "broker_connected", "relay_started"}
    assert not [e for e in process.events if e.get("event") in started]
    assert "Traceback" not in process.output()


async def test_workers_option_has_the_same_bound_as_the_setting(launch: Launch) -> None:
    process = await launch("serve", "--workers", "100")
    assert await process.wait() == 2
    assert "--workers must be between 0 and 64" in process.output()


async def test_workers_that_keep_dying_are_restarted_ever_later(launch: Launch) -> None:
    # A pool that must open a connection at start cannot while the database is down: every
    # worker exits at once.
    process = await launch(
        "serve", "--workers", "2", DATABASE_URL=UNREACHABLE_DATABASE, DB_POOL_MIN="1"
    )

    def delays() -> list[float]:
        return sorted(e["restart_in_s"] for e in process.events if e.get("event") == "worker_died")

    await process.wait_for_event(lambda _: len(delays()) >= 4)
    # Each slot: 1 s after its first death, 2 s after its second in a row.
    assert delays()[:4] == [1.0, 1.0, 2.0, 2.0]
    failures = [e for e in process.events if e.get("event") == "worker_failed"]
    assert failures and all("Connection refused" in e["error"] for e in failures)
    process.send_signal(signal.SIGTERM)
    assert await process.wait() == 0, process.output()
    assert "Traceback" not in process.output()
