"""The throwaway servers and hosts of tests/servers.py really start, stay apart and stop."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from servers import Host, Postgres, Redis, find_postgres, find_redis, running

# As root, bin/test.sh installs the servers, so only a user without them may skip.
needs_postgres = pytest.mark.skipif(find_postgres() is None and os.geteuid() != 0,
                                    reason="PostgreSQL is not installed (Debian package postgresql)")
needs_redis = pytest.mark.skipif(find_redis() is None and os.geteuid() != 0,
                                 reason="redis-server is not installed (Debian package redis-server)")


@pytest.fixture(scope="module")
def pg():
    with Postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def rd():
    with Redis() as rd:
        yield rd


def eventually(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@needs_postgres
def test_postgres_gaas_role_owns_its_database(pg):
    with psycopg.connect(pg.create_database()) as conn:
        conn.execute("CREATE TABLE job (id text PRIMARY KEY)")
        conn.execute("INSERT INTO job VALUES ('a')")
        assert conn.execute("SELECT id FROM job").fetchall() == [("a",)]
        # The app must not rely on superuser rights it will not have in production.
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        assert conn.execute("SHOW max_connections").fetchone() == ("300",)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)


@needs_postgres
def test_postgres_databases_are_separate(pg):
    first, second = pg.create_database(), pg.create_database()
    assert first != second
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE job (id text)")
    with psycopg.connect(second) as conn:
        assert conn.execute("SELECT to_regclass('job')").fetchone() == (None,)
    assert pg.create_database("named").endswith("/named")


@needs_postgres
def test_postgres_programs_match_the_server(pg):
    url = pg.create_database()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE job (id text)")
    dump = subprocess.run([pg.bin("pg_dump"), "--format=custom", url], capture_output=True, check=True).stdout
    listing = subprocess.run([pg.bin("pg_restore"), "--list"], input=dump, capture_output=True, check=True)
    assert b"TABLE public job" in listing.stdout
    assert Path(pg.bin("psql")).exists()


@needs_postgres
def test_postgres_stop_ends_the_server_and_removes_its_folder():
    with Postgres() as pg:
        pid, folder = pg.proc.pid, pg.folder
        assert folder.name.startswith("gaas-pg-")
    assert not running(pid)
    assert not folder.exists()
    pg.stop()  # a second stop does nothing
    Postgres().stop()  # nor does a stop before any start


@needs_redis
def test_redis_databases_are_separate(rd):
    first, second = redis.Redis.from_url(rd.next_url()), redis.Redis.from_url(rd.next_url())
    assert first.ping()
    first.set("key", "value")
    assert second.get("key") is None
    assert first.get("key") == b"value"


@needs_redis
def test_redis_stop_ends_the_server():
    with Redis() as rd:
        pid, folder = rd.proc.pid, rd.folder
    assert not running(pid)
    assert not folder.exists()
    rd.stop()


def test_host_has_its_own_hostname_and_pids(tmp_path):
    log = tmp_path / "host.log"
    host = Host("node-a").start(
        [sys.executable, "-c", "import socket, os; print(socket.gethostname(), os.getpid())"], log_path=log)
    assert host.wait() == 0
    assert log.read_text().split() == ["node-a", "1"]
    assert os.uname().nodename != "node-a"


def test_host_kill_ends_every_process_in_it(tmp_path):
    # One sleep is a plain child, the other a daemon whose parent has already exited.
    with Host("node-b").start(["sh", "-c", "sleep 300 & (setsid sleep 301 &); wait"], cwd=tmp_path) as host:
        eventually(lambda: len(host.pids()) == 4)  # unshare, sh and the two sleeps
        pids = host.pids()
        sleeps = [pid for pid in pids if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep")]
        assert len(sleeps) == 2
        host.kill()
        assert not host.alive()
        assert not any(running(pid) for pid in pids)


def test_host_stop_signals_the_main_program(tmp_path):
    log = tmp_path / "host.log"
    program = "import signal, sys, time\n" \
              "signal.signal(signal.SIGINT, lambda *args: sys.exit(3))\n" \
              "print('ready', flush=True)\n" \
              "time.sleep(300)\n"
    with Host("node-c").start([sys.executable, "-c", program], log_path=log) as host:
        eventually(lambda: log.read_text() == "ready\n")
        assert host.stop(signal.SIGINT, timeout=10) == 3


def test_host_stop_with_an_unhandled_signal_kills_the_host():
    # PID 1 of a namespace ignores signals it has no handler for: SIGTERM does not end it.
    with Host("node-d").start([sys.executable, "-c", "import time; time.sleep(300)"]) as host:
        eventually(lambda: len(host.pids()) == 2)
        with pytest.raises(TimeoutError):
            host.stop(signal.SIGTERM, timeout=1)
        assert not host.alive()
