"""Configuration: defaults, and a bad value stops the process with status 2 naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from service.config import (
    DEFAULT_AMQP_URL,
    DEFAULT_DATABASE_URL,
    Config,
    ConfigError,
    load_config,
)

ORDER_SERVICE = str(Path(sys.executable).parent / "order-service")


def test_defaults_work_on_a_machine_with_local_services() -> None:
    config = load_config({})
    assert config.database_url == DEFAULT_DATABASE_URL
    assert not config.database_url_explicit
    assert config.amqp_url == DEFAULT_AMQP_URL
    assert (config.host, config.port) == ("0.0.0.0", 8080)
    assert (config.log_level, config.log_format) == ("info", "json")
    assert config.migrate_on_start


def test_values_are_read_from_the_environment() -> None:
    config = load_config(
        {
            "DATABASE_URL": "postgresql://app:pw@db.internal:6432/orders",
            "PORT": "9000",
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "console",
            "MIGRATE_ON_START": "false",
        }
    )
    assert config.database_url_explicit
    assert config.database_url_redacted == "postgresql://app:***@db.internal:6432/orders"
    assert (config.port, config.log_level, config.log_format) == (9000, "debug", "console")
    assert not config.migrate_on_start


def test_an_idempotency_claim_goes_stale_after_the_longest_order_write() -> None:
    # A connection wait, then the order write with a second for its answer, then slack.
    assert load_config({}).idempotency_claim_stale_seconds == 2 + 6 + 2
    slow = load_config({"DB_ACQUIRE_TIMEOUT": "5", "DB_STATEMENT_TIMEOUT_MS": "20000"})
    assert slow.db_command_timeout == 21
    assert slow.idempotency_claim_stale_seconds == 5 + 21 + 2


def test_an_empty_value_means_the_default() -> None:
    config = load_config({"PORT": "", "DATABASE_URL": ""})
    assert config.port == 8080
    assert not config.database_url_explicit


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("LOG_LEVEL", "loud"),
        ("LOG_FORMAT", "xml"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "postgresql://"),
        ("DATABASE_URL", "postgresql://db.internal"),
        ("DATABASE_URL", "postgres:///orders"),
        ("AMQP_URL", "http://rabbit"),
        ("MIGRATE_ON_START", "maybe"),
        ("DB_POOL_MAX", "0"),
        ("RELAY_HTTP_PORT", "70000"),
        ("RELAY_HTTP_PORT", "-1"),
        ("RELAY_HTTP_PORT", "false"),
    ],
)
def test_a_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({variable: value})
    assert refused.value.variable == variable
    assert str(refused.value).startswith(f"{variable}: ")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "postgresql://u:s3cretpw@h:99999/db"),
        ("DATABASE_URL", "postgresql://u:s3cretpw@db.internal"),
        ("AMQP_URL", "amqp://guest:s3cretpw@rabbit:99999/"),
    ],
)
def test_a_refused_url_is_shown_without_its_password(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({variable: value})
    assert "s3cretpw" not in str(refused.value)
    assert ":***@" in str(refused.value)


def test_the_relay_http_port_is_a_port_or_off() -> None:
    assert load_config({}).relay_http_port == 8081
    assert load_config({"RELAY_HTTP_PORT": "9102"}).relay_http_port == 9102
    assert load_config({"RELAY_HTTP_PORT": "0"}).relay_http_port == 0  # any free port
    assert load_config({"RELAY_HTTP_PORT": "Off"}).relay_http_port is None
    with pytest.raises(ConfigError, match=r"RELAY_HTTP_PORT: .*: must be a port \(0 to 65535\)"):
        load_config({"RELAY_HTTP_PORT": "http"})


def test_a_jwt_secret_shorter_than_its_algorithms_need_is_refused() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET: must be at least 32 bytes for HS256"):
        load_config({"JWT_SECRET": "x" * 31})
    with pytest.raises(ConfigError, match="at least 64 bytes for HS256, HS512"):
        load_config({"JWT_SECRET": "x" * 40, "JWT_ALGORITHMS": "HS256,HS512"})
    assert load_config({"JWT_SECRET": "x" * 32}).jwt_secret == "x" * 32


def test_public_key_algorithms_need_a_readable_pem_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JWT_ALGORITHMS: RS256 need JWT_PUBLIC_KEY_FILE"):
        load_config({"JWT_ALGORITHMS": "HS256,RS256"})
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("this is not a key\n")
    with pytest.raises(ConfigError, match=r"JWT_PUBLIC_KEY_FILE: .* is not a PEM public key"):
        load_config({"JWT_PUBLIC_KEY_FILE": str(not_pem)})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = tmp_path / "jwt.pem"
    pem.write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    assert load_config({"JWT_PUBLIC_KEY_FILE": str(pem)}).jwt_algorithms == ("RS256", "ES256")


def test_a_database_url_may_name_a_socket_directory() -> None:
    url = "postgresql://postgres@/order_service?host=/work/.data/pgdata"
    assert load_config({"DATABASE_URL": url}).database_url == url
    assert load_config({"DATABASE_URL": "postgres://db.internal/orders"}).database_url
    # A parameter merely ending in "host" names no server.
    with pytest.raises(ConfigError, match=r"DATABASE_URL: .*: must name a host"):
        load_config({"DATABASE_URL": "postgresql://postgres@/orders?target_session_host=x"})


def test_pool_bounds_are_checked_together() -> None:
    with pytest.raises(ConfigError, match="DB_POOL_MIN: must not exceed DB_POOL_MAX"):
        load_config({"DB_POOL_MIN": "20", "DB_POOL_MAX": "5"})


def test_idempotency_keys_outlive_two_signature_windows() -> None:
    # An x-date a window ahead of the server's clock is accepted until a window after it:
    # a resend then must still find the stored answer.
    with pytest.raises(
        ConfigError, match="IDEMPOTENCY_TTL_SECONDS: must be at least twice SIGNATURE_WINDOW"
    ):
        load_config({"IDEMPOTENCY_TTL_SECONDS": "599", "SIGNATURE_WINDOW_SECONDS": "300"})
    config = load_config({"IDEMPOTENCY_TTL_SECONDS": "600", "SIGNATURE_WINDOW_SECONDS": "300"})
    assert config.idempotency_ttl_seconds == 2 * config.signature_window_seconds == 600


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "abc"), ("LOG_LEVEL", "loud"), ("DATABASE_URL", "mysql://x")],
)
@pytest.mark.parametrize(
    "command",
    [[ORDER_SERVICE, "migrate"], [sys.executable, "-m", "service.devrun"]],
    ids=["order-service migrate", "make run"],
)
def test_the_process_stops_with_status_2_naming_the_variable(
    command: list[str], variable: str, value: str
) -> None:
    result = subprocess.run(
        command,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"configuration error: {variable}: invalid value {value!r}" in result.stderr
    assert result.stdout == ""  # stopped before doing anything


def test_order_writers_default_to_two_for_a_lone_worker_and_one_for_each_of_several() -> None:
    def writers(env: dict[str, str]) -> tuple[int, int]:
        config = load_config(env)
        return config.writers_per_worker, config.writer_batch_max

    assert writers({"WORKERS": "1"}) == (2, 16)
    assert writers({"WORKERS": "2"}) == (1, 32)
    assert writers({"WORKERS": "1", "ORDER_WRITERS": "1"}) == (1, 32)
    assert writers({"WORKERS": "1", "ORDER_WRITERS": "4"}) == (4, 8)
    assert writers({"WORKERS": "3", "ORDER_BATCH_MAX": "10"}) == (1, 10)
    assert writers({"WORKERS": "1", "ORDER_WRITERS": "3", "ORDER_BATCH_MAX": "5"}) == (3, 5)


def test_serve_sizes_each_workers_order_writers_by_the_workers_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # WORKERS unset is one worker per CPU: the count is known only once serve resolves it.
    from service import server

    started: list[Config] = []

    def run_worker(config: Config, port: int, *, reuse_port: bool) -> int:
        started.append(config)
        return 0

    class Supervisor:
        def __init__(self, config: Config, count: int) -> None:
            started.append(config)

        def run(self) -> int:
            return 0

    monkeypatch.setattr(server, "run_worker", run_worker)
    monkeypatch.setattr(server, "Supervisor", Supervisor)
    config = load_config({})
    assert server.serve(config, workers=1, migrate_first=False) == 0
    assert server.serve(config, workers=2, migrate_first=False) == 0
    assert [(c.workers, c.writers_per_worker, c.writer_batch_max) for c in started] == [
        (1, 2, 16),
        (2, 1, 32),
    ]
