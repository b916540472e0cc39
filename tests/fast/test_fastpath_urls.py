"""The fast path reads the URL as SQLAlchemy does, proven where a misread fails: through a
real pgbouncer that asks for a password (SCRAM) and listens on a port of its own, so a
dropped port or a password sent still percent-encoded cannot connect."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

import mypkg
from tests.conftest import Cli
from tests.servers.pgbouncer import PORT, PgBouncer
from tests.servers.postgresql import PostgresServer, database_name

PLAIN = "plain-secret-1"
RESERVED = "p@ss:w/rd %"  # every character a URL must encode


def _bouncer(server: PostgresServer, password: str) -> Iterator[PgBouncer]:
    running = PgBouncer(server, "session", password=password).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def plain(pg_server: PostgresServer) -> Iterator[PgBouncer]:
    yield from _bouncer(pg_server, PLAIN)


@pytest.fixture(scope="module")
def reserved(pg_server: PostgresServer) -> Iterator[PgBouncer]:
    yield from _bouncer(pg_server, RESERVED)


def answers(cli: Cli, url: str) -> list[tuple[int, str]]:
    """``status`` and ``current`` on the fast path and on the full path."""
    found = []
    for fast in ({}, {"MYPKG_NO_FASTPATH": "1"}):
        for command in ("status", "current"):
            result = cli("--url", url, command, **fast)
            found.append((result.returncode, result.stdout + result.stderr))
    return found


def test_an_explicit_port_in_the_url_is_the_port_used(plain: PgBouncer, postgresql_url: str, cli: Cli) -> None:
    """pgbouncer's socket is .s.PGSQL.6432: a fast path that dropped the port would look for
    PostgreSQL's default 5432 there, and find nothing."""
    mypkg.upgrade(postgresql_url)
    url = f"postgresql://{plain.server.user}:{PLAIN}@:{PORT}/{database_name(postgresql_url)}?host={plain.root}"
    fast_status, fast_current, full_status, full_current = answers(cli, url)
    assert fast_status[0] == 0 and "current:  " + mypkg.heads()[0] in fast_status[1], fast_status
    assert (fast_status, fast_current) == (full_status, full_current)
    assert PLAIN not in fast_status[1]


def test_a_percent_encoded_password_is_decoded(reserved: PgBouncer, postgresql_url: str, cli: Cli) -> None:
    mypkg.upgrade(postgresql_url)
    url = (f"postgresql://{reserved.server.user}:{quote(RESERVED, safe='')}@/{database_name(postgresql_url)}"
           f"?host={reserved.root}&port={PORT}")
    fast_status, fast_current, full_status, full_current = answers(cli, url)
    assert fast_status[0] == 0 and fast_current[1].split()[0] == mypkg.heads()[0], fast_status
    assert (fast_status, fast_current) == (full_status, full_current)
    wrong = cli("--url", url.replace(quote(RESERVED, safe=""), "wrong"), "status")
    assert wrong.returncode == 1 and "authentication failed" in wrong.stderr  # the bouncer does check


@pytest.mark.parametrize("port", [1, 65535])
def test_the_fast_path_takes_every_valid_port_itself(port: int, cli: Cli) -> None:
    """Ports 1 to 65535 are the fast path's to try (nothing listens on these, on 127.0.0.1): it
    answers the refusal itself, without SQLAlchemy, in the full path's words."""
    import json
    import subprocess
    import sys

    url = f"postgresql://app@127.0.0.1:{port}/app"
    probe = ("import json, sys\nfrom mypkg.migrate.cli import main\n"
             f"code = main(['--url', {url!r}, '--connect-timeout', '5', 'status'])\n"
             "print(json.dumps([code, 'sqlalchemy' in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout.splitlines()[-1]) == [1, False], done.stderr
    full = cli("--url", url, "--connect-timeout", "5", "status", MYPKG_NO_FASTPATH="1")
    assert (full.returncode, full.stderr) == (1, done.stderr) and f"port {port} failed" in full.stderr
