"""Fixtures: a real gaas service (uvicorn and huey_consumer subprocesses) on a free loopback port."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

import servers
import venvs
from reference_client import ReferenceClient
from servers import free_port

CODE = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"
UNCACHED_PLUGINS = ("Sleeper", "Crasher", "MemoryHog", "Printer", "WriteTag", "ReadInput", "Series", "Timestamp")
TIMEOUT = 60
# Where the store and the queue live: a fresh PostgreSQL database and Redis database per service,
# on real servers the session starts. A test runs once, on the first of BACKENDS (its module may
# set its own list), unless it is marked `every_backend` because it reaches code that differs by
# backend (submit, claim, long poll, list filters and totals, users, uploads, recovery, cancel,
# batch results): then against each of them. "postgresql+redis" differs from "postgresql" by the
# queue only.
BACKENDS = ("sqlite", "postgresql+redis", "postgresql")
# Built and started with podman in a stage of their own (bin/test.sh --containers).
collect_ignore = ["containers"]
VENV_POOL = pytest.StashKey()


# The venvs of tests/venvs.py that each fixture needs. pip takes half a minute or more for each on
# a fresh machine: the session begins those its tests need at once, one at a time in the
# background (a core for pip, one for the tests), while other tests run; the fixture then waits
# for its own (venvs.venv's lock) or finds it made (.ci/run makes them all before the suite).
VENVS = venvs.FIXTURE_VENVS


def pytest_runtest_setup(item):
    # OpenTURNS (which GEMSEO uses for some algorithms, in local scenarios too) installs, on import
    # and each time it computes, a SIGINT handler that throws a C++ exception: a Ctrl-C aborted the
    # session ("Fatal Python error: Aborted", exit 134). Python's own handler is put back before
    # and after every test.
    signal.signal(signal.SIGINT, signal.default_int_handler)


pytest_runtest_teardown = pytest_runtest_setup


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    used = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    wanted = [requirements for name, needs in VENVS.items() if name in used for requirements in needs]
    if wanted:
        # Errors are left to the fixtures, which make the venv again and fail with pip's message.
        pool = ThreadPoolExecutor(1, thread_name_prefix="venvs")
        for requirements in wanted:
            pool.submit(venvs.venv, requirements)
        session.config.stash[VENV_POOL] = pool


def pytest_sessionfinish(session):
    pool = session.config.stash.get(VENV_POOL, None)
    if pool is not None:
        # No pip left running after the session; after a Ctrl-C (which pip gets too), no next
        # venv begun by the thread meanwhile either.
        venvs.stop()
        pool.shutdown(cancel_futures=True)


def pytest_collection_modifyitems(items):
    # pytest-xdist's `load` hands tests out in this order. The tests that start services of their
    # own (up to a minute each) go first, those on the shared `live` services (a second or less)
    # last, so that the run ends with short tests on every worker instead of a long one on a single
    # worker while the others idle. Among the latter, those that run a client in a venv of its own
    # (up to a minute) go first within their backend: moving a test to another backend's tests
    # would start that backend's `live` service again on its worker.
    backends = {}

    def order(item):
        names = getattr(item, "fixturenames", ())
        backend = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        shared = "live" in names
        if not shared:  # grouped as pytest left them: a module's own service is started once
            return False, 0, False
        return True, backends.setdefault(backend, len(backends)), not VENVS.keys() & set(names)

    items.sort(key=order)


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        chosen = getattr(metafunc.module, "BACKENDS", BACKENDS)
        if not metafunc.definition.get_closest_marker("every_backend"):
            chosen = chosen[:1]
        metafunc.parametrize("backend", chosen, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backends():
    found = servers.Backends()
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="session")
def backend(request):
    """The backend of the tests' services: "sqlite", "postgresql+redis" or "postgresql"."""
    return request.param


class Api:
    """A tiny HTTP client bound to one user."""

    def __init__(self, url, token=None):
        self.url = url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def run(self, discipline, mode="synchronous", **body):
        """Execute a discipline and return the job JSON (checking the status code)."""
        response = self.post(f"/v1/discipline/{discipline}/execute?execution_mode={mode}", json=body)
        assert response.status_code == (200 if mode == "synchronous" else 202), response.text
        return response.json()

    def wait(self, job_id, timeout=60):
        """Long-poll a job until it ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/v1/job/{job_id}?long_polling=true&long_polling_timeout=5").json()
            if job["job_status"] in ("finished", "failed"):
                return job
        raise AssertionError(f"job {job_id} did not end in {timeout} s")


class Service:
    """The server and the worker, started from bin/ as an operator would, on a temporary root."""

    def __init__(self, root, **settings):
        self.root = Path(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.update(
            GEMSEO_HTTP_ROOT_PATH=str(self.root),
            GEMSEO_HTTP_HOST="127.0.0.1",
            GEMSEO_HTTP_PORT=str(self.port),
            GEMSEO_HTTP_WORKERS="2",
            GEMSEO_PATH=str(PLUGINS),
            # The test plugins that sleep, crash, print or write files: each run is the point of the
            # test that submits it, as an admin lists a model whose runs are events, not values.
            # A test's settings may name others (GEMSEO_HTTP_UNCACHED_DISCIPLINES="").
            **{"GEMSEO_HTTP_UNCACHED_DISCIPLINES": ",".join(UNCACHED_PLUGINS), **{key: str(value) for key, value in settings.items()}},
            GAAS_ENV_FILE="",  # bin/gaas-admin must not read the settings of a gaas installed here
        )
        self.server = self.worker = None
        self.logs = self.root / "test-logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def admin(self, *args, stdin=None):
        return self.run_admin([str(CODE / "bin" / "gaas-admin"), *args], stdin)

    def run_admin(self, command, stdin=None, cwd=None):
        return subprocess.run(command, input=stdin, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=120)

    @property
    def backend(self):
        if "GEMSEO_HTTP_REDIS_URL" in self.env:
            return "postgresql+redis"
        return "postgresql" if "GEMSEO_HTTP_DATABASE_URL" in self.env else "sqlite"

    def sql(self, statement, params=()):
        """Run one statement (`?` marks) on the service's store, behind its back; return the rows."""
        url = self.env.get("GEMSEO_HTTP_DATABASE_URL")
        if url:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                cursor = conn.execute(statement.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
        conn = sqlite3.connect(self.root / "database" / "gaas.db", isolation_level=None, timeout=30)
        try:
            return conn.execute(statement, params).fetchall()
        finally:
            conn.close()

    def clear_queue(self):
        """Empty the service's task queue, as a worker that took every task and died would."""
        if self.backend == "postgresql+redis":
            import redis

            redis.Redis.from_url(self.env["GEMSEO_HTTP_REDIS_URL"]).flushdb()
        elif self.backend == "postgresql":
            self.sql("DELETE FROM huey_task")
        else:
            conn = sqlite3.connect(self.root / "database" / "huey.db", isolation_level=None, timeout=30)
            conn.execute("DELETE FROM task")
            conn.close()

    def wait_beats(self, process, count, timeout=30, also=()):
        """Wait until process (a web_process or worker id), and each process of also, has beaten
        its heart count more times into the store; each loop of its housekeeping starts with a beat."""
        seen, deadline = {name: [] for name in (process, *also)}, time.monotonic() + timeout
        while any(len(beats) <= count for beats in seen.values()):
            assert time.monotonic() < deadline, f"not {count} beats of each in {timeout} s: {seen}"
            for name, beats in seen.items():
                ((beat_at,),) = self.sql("SELECT beat_at FROM processes WHERE id = ?", (name,)) or [(None,)]
                if beat_at is not None and (not beats or beats[-1] != beat_at):
                    beats.append(beat_at)
            time.sleep(0.02)

    def queued(self):
        """How many tasks wait in the service's queue."""
        if self.backend == "postgresql+redis":
            import redis

            return redis.Redis.from_url(self.env["GEMSEO_HTTP_REDIS_URL"]).zcard("huey.redis.gaas")
        if self.backend == "postgresql":
            return self.sql("SELECT count(*) FROM huey_task")[0][0]
        conn = sqlite3.connect(self.root / "database" / "huey.db", isolation_level=None, timeout=30)
        try:
            return conn.execute("SELECT count(*) FROM task").fetchone()[0]
        finally:
            conn.close()

    def add_user(self, name, password):
        self.add_users([(name, password)])

    def add_users(self, users):
        """Create users with `gaas-admin create-user`'s code, all in one Python process: each
        process costs about 0.3 s, and every service starts with two users."""
        create = "import sys, admin\nfor name in sys.argv[1:]: admin.main(['create-user', name, '--password-stdin'])"
        command = [str(CODE / ".venv" / "bin" / "python"), "-c", create, *(name for name, _ in users)]
        result = self.run_admin(command, "".join(password + "\n" for _, password in users), cwd=CODE)
        assert result.returncode == 0, result.stderr

    def _spawn(self, script, log_name):
        log = open(self.logs / log_name, "ab")
        return subprocess.Popen(
            [str(CODE / "bin" / script)], cwd=CODE, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def start_server(self, wait=True):
        self.server = self._spawn("run_server.sh", "server.log")
        if wait:
            self.wait_ready()

    def start_worker(self):
        self.worker = self._spawn("run_worker.sh", "worker.log")

    def wait_ready(self, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.server.poll() is None, self.log("server.log")
            try:
                if requests.get(self.url + "/health", timeout=5).status_code in (200, 503):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError("server not ready:\n" + self.log("server.log"))

    def log(self, name):
        return (self.logs / name).read_text(errors="replace")[-5000:]

    def token(self, name, password):
        response = requests.post(
            self.url + "/token", data={"username": name, "password": password}, timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def api(self, name, password):
        return Api(self.url, self.token(name, password))

    @staticmethod
    def stop(*processes, sig=signal.SIGINT, timeout=60):
        """Send sig to every process still running, then wait for each (SIGKILL after timeout):
        they stop side by side."""
        running = [process for process in processes if process is not None and process.poll() is None]
        for process in running:
            process.send_signal(sig)
        for process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_server(self):
        self.stop(self.server)

    def stop_worker(self, sig=signal.SIGINT):
        self.stop(self.worker, sig=sig)

    def close(self):
        self.stop(self.server, self.worker)

    def start_worker_on(self, host_name, **settings):
        """Run bin/run_worker.sh on a simulated machine of that name (servers.Host); return the host."""
        env = dict(self.env, **{key: str(value) for key, value in settings.items()})
        log = self.logs / f"worker-{host_name}.log"
        return servers.Host(host_name).start([str(CODE / "bin" / "run_worker.sh")], env=env, log_path=log, cwd=CODE)

    def start_server_on(self, host_name, port=None, timeout=180, **settings):
        """Run bin/run_server.sh on a simulated machine, on port (default the service's), and wait
        until that host's web app answers; return the host. The caller kills it."""
        port = port or self.port
        env = dict(self.env, GEMSEO_HTTP_PORT=str(port), **{key: str(value) for key, value in settings.items()})
        log = self.logs / f"server-{host_name}.log"
        host = servers.Host(host_name).start([str(CODE / "bin" / "run_server.sh")], env=env, log_path=log, cwd=CODE)
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert host.alive(), log.read_text(errors="replace")[-5000:]
                assert time.monotonic() < deadline, "server not ready:\n" + log.read_text(errors="replace")[-5000:]
                try:
                    answer = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
                    # Its own answer, not that of a web app still on the port.
                    if f":{host_name}/" in answer.json().get("web_process", ""):
                        return host
                except (requests.ConnectionError, requests.Timeout, ValueError):
                    pass
                time.sleep(0.1)
        except BaseException:
            host.kill()
            raise


def start_service(root, users=(("alice", "alice-pw"), ("bob", "bob-pw")), worker=True, **settings):
    service = Service(root, **settings)
    service.add_users(users)  # also makes the schema
    try:
        service.start_server(wait=False)
        if worker:
            # Side by side with the web app's start, as two units would: its GEMSEO import is
            # what the tests' first jobs wait for.
            service.start_worker()
        service.wait_ready()
    except BaseException:
        service.close()
        raise
    return service


@pytest.fixture(scope="session")
def live(tmp_path_factory, backend, backends):
    """One service shared by the tests that do not stop or break it."""
    service = start_service(tmp_path_factory.mktemp("live"), **backends.settings(backend))
    try:
        alice = service.api("alice", "alice-pw")
        # The first description waits for a warm process: take that wait here, once.
        assert alice.get("/v1/discipline", timeout=300).status_code == 200
        yield service
    finally:
        service.close()


@pytest.fixture(scope="session")
def alice(live):
    return live.api("alice", "alice-pw")


@pytest.fixture(scope="session")
def bob(live):
    return live.api("bob", "bob-pw")


@pytest.fixture(scope="session")
def reference_client(tmp_path_factory):
    """The HTTPDiscipline client of gemseo-http 3.0.0, in a venv of its own (tests/reference_client.py)."""
    client = ReferenceClient(venvs.venv(venvs.REFERENCE_CLIENT), tmp_path_factory.mktemp("reference-client") / "log")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fresh_service(tmp_path, backend, backends):
    """A service of its own, for the tests that stop, restart or break it."""
    services = []

    def make(**settings):
        service = start_service(tmp_path / f"root{len(services)}", **{**backends.settings(backend), **settings})
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()


sys.path.insert(0, str(CODE))
# The client's module (client/, a package of its own) for the tests that import it.
sys.path.insert(0, str(CODE / "client"))
