"""Every asynchronous job ends `finished` or `failed`, whatever happens, and says why."""

import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

import pool
import servers
from conftest import start_service


def wait_status(api, job_id, status, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/job/{job_id}").json()
        if job["job_status"] == status:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never became {status}: {job}")


def gone(pid, timeout=5.0):
    """Wait until a process no longer exists (zombies of other parents count as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def sleeper_pids(api, job):
    """The pids of a running Sleeper job's process and of its child (with child=1)."""
    deadline = time.monotonic() + 30
    found = None
    # The whole line: the log may be read between "sleeper pid" and the number.
    while not found:
        assert time.monotonic() < deadline, "the sleeper never printed its pid"
        time.sleep(0.05)
        found = re.search(r"sleeper pid (\d+)\n", api.get(f"/v1/job/{job['id']}/log").text)
    pid = int(found.group(1))
    child_file = Path(job["workdir"], "child.pid")
    # The file is made, then its number written: wait for the number.
    while job["input_data"].get("child", [0])[0] and not (child_file.exists() and child_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(child_file.read_text()) if child_file.exists() else None
    return pid, child


def assert_next_job_runs(api):
    job = api.run("Sellar1", "asynchronous", input_data={"x_1": [1.0]}, cache=False)  # a run, not a hit
    assert api.wait(job["id"])["job_status"] == "finished"


@pytest.mark.every_backend
@pytest.mark.parametrize("child", [0, 1])
def test_cancel_a_running_job(alice, child):
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [60], "child": [child]})
    wait_status(alice, job["id"], "running")
    pid, child_pid = sleeper_pids(alice, job)
    start = time.monotonic()
    response = alice.post(f"/v1/job/{job['id']}/cancel")
    assert response.status_code == 200
    ended = alice.wait(job["id"])
    assert ended["job_status"] == "failed" and ended["error"] == "cancelled"
    assert gone(pid, 2) and (child_pid is None or gone(child_pid, 2))
    # "Within a second or two" (API.md), with room for a loaded machine: the job would sleep 60 s.
    assert time.monotonic() - start < 5
    # Cancelling an ended job changes nothing.
    again = alice.post(f"/v1/job/{job['id']}/cancel")
    assert again.status_code == 409
    assert alice.get(f"/v1/job/{job['id']}").json()["error"] == "cancelled"
    assert_next_job_runs(alice)


@pytest.mark.every_backend
def test_cancel_a_pending_job_and_delete(fresh_service):
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1, worker=False)
    alice = service.api("alice", "alice-pw")
    job = alice.run("WriteTag", "asynchronous", input_data={"tag": [5]})
    cancelled = alice.post(f"/v1/job/{job['id']}/cancel").json()
    assert cancelled["job_status"] == "failed" and cancelled["error"] == "cancelled"
    other = alice.run("Sleeper", "asynchronous", input_data={"duration": [30]})
    service.start_worker()
    wait_status(alice, other["id"], "running", timeout=120)
    # The cancelled job never started.
    job = alice.get(f"/v1/job/{job['id']}").json()
    assert job["started_at"] is None and not Path(job["workdir"], "out.txt").exists()
    # Delete a running job: cancelled, then removed with its directory.
    pid, _ = sleeper_pids(alice, other)
    assert alice.delete(f"/v1/job/{other['id']}").status_code == 204
    assert alice.get(f"/v1/job/{other['id']}").status_code == 404
    assert not Path(other["workdir"]).exists()
    assert gone(pid, 2)
    assert alice.delete(f"/v1/job/{job['id']}").status_code == 204
    assert_next_job_runs(alice)


@pytest.fixture(scope="module")
def limited(tmp_path_factory, backend, backends):
    """alice on a service with a lower job timeout and memory limit, which its tests share."""
    service = start_service(
        tmp_path_factory.mktemp("limited"), GEMSEO_HTTP_SYNC_PROCESSES=1, GEMSEO_HTTP_JOB_TIMEOUT=30,
        GEMSEO_HTTP_JOB_MEMORY_LIMIT_MB=200, **backends.settings(backend),
    )
    try:
        yield service.api("alice", "alice-pw")
    finally:
        service.close()


def test_timeout(limited):
    alice = limited
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [60]}, timeout=1.5)
    assert job["timeout"] == 1.5
    ended = alice.wait(job["id"], timeout=120)
    assert ended["job_status"] == "failed" and ended["error"] == "timeout"
    assert "1.5 s" in ended["traceback"]
    started = ended["started_at"]
    assert started is not None
    # The request may lower the setting, not raise it.
    capped = alice.run("Sellar1", "asynchronous", timeout=1000)
    assert capped["timeout"] == 30
    # A synchronous job is limited too.
    sync = alice.run("Sleeper", input_data={"duration": [60]}, timeout=1)
    assert sync["job_status"] == "failed" and sync["error"] == "timeout"
    assert_next_job_runs(alice)


def duration(job):
    from datetime import datetime

    started, ended = (datetime.fromisoformat(job[key].replace("Z", "+00:00")) for key in ("started_at", "ended_at"))
    return (ended - started).total_seconds()


def test_timeout_is_enforced_within_two_seconds(alice):
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [60]}, timeout=1)
    ended = alice.wait(job["id"])
    assert ended["error"] == "timeout"
    # Two seconds past the timeout, and one more for a loaded machine: the job would sleep 60 s.
    assert 1.0 <= duration(ended) < 4.0


def test_memory_limit(limited):
    alice = limited
    small = alice.run("MemoryHog", "asynchronous", input_data={"megabytes": [20]})
    assert alice.wait(small["id"], timeout=120)["job_status"] == "finished"
    hog = alice.run("MemoryHog", "asynchronous", input_data={"megabytes": [2000]})
    ended = alice.wait(hog["id"])
    assert ended["job_status"] == "failed" and ended["error"] == "memory"
    assert "memory limit of 200 MB" in ended["traceback"]
    assert_next_job_runs(alice)


@pytest.mark.parametrize("mode, status", [(0, "SIGSEGV"), (1, "status 3"), (2, "SIGKILL")])
def test_crash_is_contained(alice, mode, status):
    job = alice.run("Crasher", "asynchronous", input_data={"mode": [mode]})
    ended = alice.wait(job["id"])
    assert ended["job_status"] == "failed" and ended["error"] == "crashed"
    assert status in ended["traceback"]
    sync = alice.run("Crasher", input_data={"mode": [mode]})
    assert sync["job_status"] == "failed" and sync["error"] == "crashed"
    assert_next_job_runs(alice)
    assert alice.run("Sellar1")["job_status"] == "finished"


@pytest.mark.every_backend
def test_kill_9_of_the_consumer(fresh_service):
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice = service.api("alice", "alice-pw")
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [60], "child": [1]})
    wait_status(alice, job["id"], "running", timeout=120)
    pid, child_pid = sleeper_pids(alice, job)
    # Fill both worker threads, then queue one more that must survive.
    busy = alice.run("Sleeper", "asynchronous", input_data={"duration": [60]})
    wait_status(alice, busy["id"], "running")
    queued = alice.run("Sellar1", "asynchronous")
    service.worker.send_signal(signal.SIGKILL)
    service.worker.wait()
    # No orphans: the job process and the child it started go with the consumer.
    assert gone(pid, 5) and gone(child_pid, 5)
    service.start_worker()
    for lost in (job, busy):
        ended = alice.wait(lost["id"], timeout=120)
        assert ended["job_status"] == "failed" and ended["error"] == "lost"
    assert alice.wait(queued["id"], timeout=120)["job_status"] == "finished"


def kill_worker_during_a_job(fresh_service, duration, **settings):
    """A service whose consumer is SIGKILLed while a Sleeper job runs; return (service, api, job)."""
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1, **settings)
    alice = service.api("alice", "alice-pw")
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [duration]})
    wait_status(alice, job["id"], "running", timeout=120)
    service.worker.send_signal(signal.SIGKILL)
    service.worker.wait()
    return service, alice, job


@pytest.mark.every_backend
def test_lost_job_ends_without_a_new_worker(fresh_service):
    _, alice, job = kill_worker_during_a_job(fresh_service, 60, GEMSEO_HTTP_HEARTBEAT_TIMEOUT=3)
    ended = alice.wait(job["id"], timeout=30)
    assert ended["job_status"] == "failed" and ended["error"] == "lost"


@pytest.mark.every_backend
def test_lost_job_queued_again_when_asked(fresh_service):
    service, alice, job = kill_worker_during_a_job(fresh_service, 2, GEMSEO_HTTP_REQUEUE_LOST_JOBS=1)
    service.start_worker()
    ended = alice.wait(job["id"], timeout=120)
    assert ended["job_status"] == "finished"


@pytest.mark.every_backend
def test_sigint_lets_running_jobs_finish(fresh_service):
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice = service.api("alice", "alice-pw")
    running = [
        alice.run("Sleeper", "asynchronous", input_data={"duration": [3]}) for _ in range(2)
    ]
    for job in running:
        wait_status(alice, job["id"], "running", timeout=120)
    queued = alice.run("Sellar1", "asynchronous")
    service.worker.send_signal(signal.SIGINT)
    assert service.worker.wait(timeout=60) == 0
    for job in running:
        assert alice.get(f"/v1/job/{job['id']}").json()["job_status"] == "finished"
    assert alice.get(f"/v1/job/{queued['id']}").json()["job_status"] == "pending"
    service.start_worker()
    assert alice.wait(queued["id"], timeout=120)["job_status"] == "finished"
    assert not any(
        job["job_status"] == "running" for job in alice.get("/v1/job").json()
    )


def test_unwritable_queue_fails_the_job(live, alice):
    """SQLite's queue file locked; test_several_hosts has the PostgreSQL and Redis cases."""
    queue = sqlite3.connect(live.root / "database" / "huey.db", isolation_level=None)
    queue.execute("BEGIN EXCLUSIVE")  # nobody else can write the queue meanwhile
    try:
        response = alice.post("/v1/discipline/Sellar1/execute?execution_mode=asynchronous", json={"cache": False})
    finally:
        queue.execute("ROLLBACK")
        queue.close()
    assert response.status_code == 503
    assert "could not be queued" in response.json()["detail"]
    job_id = int(response.json()["detail"].split()[1])
    job = alice.get(f"/v1/job/{job_id}").json()
    assert job["job_status"] == "failed" and job["error"] == "enqueue"
    assert_next_job_runs(alice)


def test_no_job_process_left_after_stop(fresh_service):
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice = service.api("alice", "alice-pw")
    assert_next_job_runs(alice)
    marker = b"GAAS_POOL="

    def leftovers():
        found = []
        for entry in Path("/proc").iterdir():
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in env and f"GEMSEO_HTTP_ROOT_PATH={service.root}".encode() in env:
                found.append(entry.name)
        return found

    service.close()
    # The pools' processes get a moment to see their parent go.
    deadline = time.monotonic() + 5
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leftovers()
    if service.backend == "sqlite":
        assert os.path.exists(service.root / "database" / "gaas.db")


@pytest.mark.every_backend
def test_job_claimed_by_a_worker_that_died_runs_again(fresh_service):
    """A worker that took the task off the queue and died before starting the job."""
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1, worker=False)
    alice = service.api("alice", "alice-pw")
    job = alice.run("WriteTag", "asynchronous", input_data={"tag": [11]})
    dead = subprocess.Popen(["true"])
    dead.wait()
    service.clear_queue()  # the dead worker had dequeued it
    service.sql("UPDATE jobs SET owner = ? WHERE id = ?", (f"worker:{pool.host_id()}:{dead.pid}:gone", job["id"]))
    service.start_worker()
    ended = alice.wait(job["id"], timeout=120)
    assert ended["job_status"] == "finished" and ended["output_data"] == {"echo": [11.0]}


class Load:
    """Client threads, each with its turns of modes: WriteTag jobs ("synchronous",
    "asynchronous"), each with a tag of its own, or a read of the job list ("read"). Every answer
    is kept: (time, status, Retry-After, body, mode, tag)."""

    def __init__(self, clients):
        self.answers, self.lock = [], threading.Lock()
        self.tags, self.stopping = itertools.count(1), threading.Event()
        self.threads = [threading.Thread(target=self.client, args=client) for client in clients]

    def client(self, api, modes):
        for mode in itertools.cycle(modes):
            if self.stopping.is_set():
                return
            tag = next(self.tags)
            url = f"/v1/discipline/WriteTag/execute?execution_mode={mode}"
            try:
                if mode == "read":
                    response = api.get("/v1/job?limit=3", timeout=30)
                else:
                    response = api.post(url, json={"input_data": {"tag": [tag]}}, timeout=30)
                answer = (response.status_code, response.headers.get("Retry-After"), response.json())
            except (requests.RequestException, ValueError) as error:
                answer = (None, None, repr(error))
            with self.lock:
                self.answers.append((time.monotonic(), *answer, mode, tag))
            if answer[0] == 503:
                time.sleep(0.05)  # as a client that honours Retry-After would, but sooner

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)

    def wait_for(self, what, test, timeout=30):
        """Wait until an answer given from now on passes test(answer); fail after timeout."""
        start, deadline = time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if any(answer[0] >= start and test(answer) for answer in self.answers):
                    return
            time.sleep(0.01)
        raise AssertionError(f"no answer {what} in {timeout} s; last ones: {self.answers[-5:]}")

    def served(self, mode):
        self.wait_for(f"served ({mode})", lambda answer: answer[1] in (200, 202) and answer[4] == mode)

    def refused_for(self, backend):
        self.wait_for(f"503 for {backend}", lambda answer: answer[1] == 503 and backend.lower() in str(answer[3]).lower())


def test_store_and_queue_outages_under_load(tmp_path):
    """PostgreSQL restarted, then Redis killed and restarted with its append-only file, then
    PostgreSQL crashed, while clients run jobs and read: no 500, every refusal a 503 with
    Retry-After naming the backend, every job ends, every accepted job finishes, and every
    finished job holds its own result. Each server stays down until a client was refused. The
    test starts a PostgreSQL and a Redis of its own to break them."""
    with servers.Postgres() as postgres, servers.Redis(appendonly=True) as redis_server:
        service = start_service(
            tmp_path,
            GEMSEO_HTTP_DATABASE_URL=postgres.create_database(),
            GEMSEO_HTTP_REDIS_URL=redis_server.url(1),
            # A crash must not lose what was answered; the sweeps and re-queueing come sooner.
            GEMSEO_HTTP_DATABASE_SYNC_COMMIT=1,
            GEMSEO_HTTP_HEARTBEAT_INTERVAL=0.5,
            GEMSEO_HTTP_REQUEUE_PENDING_AFTER=2,
        )
        try:
            modes = [("synchronous", "asynchronous"), ("asynchronous", "synchronous"), ("asynchronous",), ("read",)]
            clients = [(service.api("alice", "alice-pw"), turns) for turns in modes]
            assert clients[0][0].run("WriteTag", input_data={"tag": [0]})["job_status"] == "finished"
            with Load(clients) as load:
                load.served("synchronous")
                load.served("asynchronous")
                postgres.halt()  # a restart: fast shutdown
                load.refused_for("the store (PostgreSQL)")
                postgres.start_again()
                load.served("synchronous")
                redis_server.halt(signal.SIGKILL)
                load.refused_for("the queue (Redis)")
                redis_server.start_again()
                load.served("asynchronous")
                postgres.halt(signal.SIGQUIT)  # a crash: pg_ctl stop -m immediate
                load.refused_for("the store (PostgreSQL)")
                postgres.start_again()
                load.served("synchronous")
                load.served("asynchronous")
            answers = load.answers

            def unended():
                return service.sql("SELECT id, job_status, owner FROM jobs WHERE job_status NOT IN ('finished', 'failed')")

            deadline = time.monotonic() + 30
            while unended() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not unended(), service.log("server.log") + service.log("worker.log")
            rows = service.sql(
                "SELECT id, execution_mode, job_status, error, input_data, output_data FROM jobs"
                " JOIN job_data ON job_data.job_id = jobs.id"
            )
        finally:
            service.close()
    statuses = {}
    for _, status, *_ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    assert set(statuses) <= {200, 202, 503}, (statuses, [a for a in answers if a[1] not in (200, 202, 503)][:5])
    for _, status, retry_after, body, mode, tag in answers:
        if status == 503:
            assert retry_after == "1" and "is unavailable; try again." in body["detail"], body
        elif status == 200 and mode == "synchronous":
            assert (body["job_status"], body["output_data"]) == ("finished", {"echo": [float(tag)]}), body
    stored = {row[0]: row for row in rows}
    accepted = {body["id"]: (status, tag) for _, status, _, body, mode, tag in answers if status in (200, 202) and mode != "read"}
    for job_id, (status, tag) in accepted.items():
        _, mode, job_status, error, input_data, output_data = stored[job_id]
        assert (job_status, json.loads(output_data)) == ("finished", {"echo": [float(tag)]}), stored[job_id]
    for job_id, mode, job_status, error, input_data, output_data in rows:
        if job_status == "finished":  # answered or not, a finished job holds its own result
            assert json.loads(output_data) == {"echo": [float(json.loads(input_data)["tag"][0])]}
        else:  # refused by a 503: the queue was down at its submit, or the store at its start or end
            assert job_id not in accepted and error in ("enqueue", "lost"), (job_id, mode, job_status, error)
    assert statuses.get(503) and statuses.get(200) and statuses.get(202), statuses
    if os.environ.get("FAULTS_DEBUG"):
        first = answers[0][0]
        for answer in answers:
            print(f"{answer[0] - first:7.3f} {answer[1]} {answer[4]:12} {str(answer[3])[:100]}")
