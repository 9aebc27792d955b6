"""Internals, in-process on a store under tmp_path: recovery races, dropped results, the duration
histogram, failed commits, server errors, the warm-process pool, paths in job directories."""

import json
import logging
import math
import os
import sqlite3
import subprocess
import threading
import time
from collections import Counter

import pytest

import files
import jobs
import metrics
import pool
import retention
import settings
import store
from errors import Rejected


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    """Settings pointed at tmp_path (store.connect() reopens when the path changes), schema made."""
    paths = {
        "ROOT_PATH": tmp_path,
        "USER_DATABASE_PATH": tmp_path / "database" / "gaas.db",
        "HUEY_DATABASE_PATH": tmp_path / "database" / "huey.db",
        "FILE_DIRECTORY": tmp_path / "files",
        "WORKSPACE_EXECUTION": tmp_path / "workdir",
        "SECRET_KEY_PATH": tmp_path / "secret_key",
    }
    for name, path in paths.items():
        monkeypatch.setattr(settings, name, path)
    monkeypatch.setattr(settings, "SECRET_KEY", "")
    store.init()
    return store


@pytest.fixture
def gaas_log():
    """The records of logger "gaas" (a handler of its own: caplog misses them once
    jobs.setup_logging() has turned propagation off in this process)."""
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("gaas")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def make_job(user_id, **fields):
    values = dict(
        user_id=user_id,
        discipline_class_name="Sellar1",
        job_type="execute",
        job_status="pending",
        execution_mode="asynchronous",
    )
    values.update(fields)
    return store.create_job(values, jobs.workdir_prefix(user_id))["id"]


def dead_pid():
    finished = subprocess.Popen(["true"])
    finished.wait()
    assert not pool.pid_alive(finished.pid)
    return finished.pid


# 1. Lost-job recovery


def reclaim(job_id, owner):
    """What a worker does with a task it takes: start the waiting job as its owner."""
    assert store.set_status(job_id, "running", ("pending",), where={"owner": ""}, owner=owner, started_at=time.time())


def queued(calls):
    """enqueue() for recover_lost: records the ids it is given (one id, or a list of ids)."""

    def enqueue(ids):
        calls.extend(ids if isinstance(ids, (list, tuple)) else [ids])

    return enqueue


@pytest.mark.parametrize("taken_at_once", [False, True])
def test_two_sweeps_queue_a_lost_job_again_once(tmp_store, monkeypatch, taken_at_once):
    # Guards the compare-and-set on owner and attempt in jobs.recover_lost: two sweeps that saw the
    # same dead owner must not both queue the job again (nor fail it once a live worker has it).
    monkeypatch.setattr(settings, "REQUEUE_LOST_JOBS", True)
    user_id = store.add_user("alice", "hash")
    dead = f"worker:{pool.host_id()}:{dead_pid()}:x"
    live = pool.owner_id("worker")
    store.beat(live)
    real_claimed_jobs = store.claimed_jobs
    for _ in range(20):
        job_id = make_job(user_id, job_status="running", owner=dead, attempts=0, started_at=time.time())
        calls, errors = [], []
        seen = threading.Barrier(2)

        def claimed_jobs():
            rows = real_claimed_jobs()
            seen.wait(10)  # both sweeps hold the same view before either moves the job
            return rows

        def enqueue(ids):
            queued(calls)(ids)
            if taken_at_once:
                reclaim(calls[-1], live)

        def sweep():
            try:
                jobs.recover_lost(enqueue)
            except BaseException as error:
                errors.append(error)

        monkeypatch.setattr(store, "claimed_jobs", claimed_jobs)
        threads = [threading.Thread(target=sweep) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        monkeypatch.setattr(store, "claimed_jobs", real_claimed_jobs)
        assert not errors, errors
        assert calls == [job_id]
        row = store.get_job(job_id)
        expected = ("running", live) if taken_at_once else ("pending", "")
        assert (row["job_status"], row["owner"], row["attempts"], row["error"]) == (*expected, 1, "")


def test_a_stale_sweep_leaves_a_job_that_a_live_owner_took(tmp_store, monkeypatch):
    # Guards the same compare-and-set: a sweep acting on what it read before the job was queued
    # again and re-claimed must change nothing, for a running job and for a claimed pending one.
    monkeypatch.setattr(settings, "REQUEUE_LOST_JOBS", True)
    user_id = store.add_user("alice", "hash")
    dead = f"worker:{pool.host_id()}:{dead_pid()}:x"
    live = pool.owner_id("worker")
    store.beat(live)
    running = make_job(user_id, job_status="running", owner=dead, attempts=0, started_at=time.time())
    claimed = make_job(user_id, job_status="pending", owner=dead, attempts=0)
    stale = store.claimed_jobs()
    assert {row[0] for row in stale} == {running, claimed}
    calls = []
    jobs.recover_lost(queued(calls))
    assert sorted(calls) == [running, claimed]
    reclaim(running, live)
    assert store.set_status(claimed, "pending", ("pending",), where={"owner": ""}, owner=live)
    # A second sweep that reads the store afresh sees a live owner.
    assert jobs.recover_lost(queued(calls)) == 0
    # One that acts on its old view must not move either job.
    monkeypatch.setattr(store, "claimed_jobs", lambda: stale)
    assert jobs.recover_lost(queued(calls)) == 0
    assert sorted(calls) == [running, claimed]
    row = store.get_job(running)
    assert (row["job_status"], row["owner"], row["attempts"], row["error"]) == ("running", live, 1, "")
    row = store.get_job(claimed)
    assert (row["job_status"], row["owner"], row["error"]) == ("pending", live, "")


# 2. A dropped result


class FakeProcess:
    pid = 4242

    def __init__(self, on_ask):
        self.on_ask = on_ask

    def ask(self, message, deadline=None, should_stop=None):
        return self.on_ask(message)


class FakePool:
    closed = False

    def __init__(self, process):
        self.process, self.released = process, []

    def acquire(self, timeout=None):
        return self.process

    def release(self, process, healthy=True):
        self.released.append(healthy)


def test_a_final_write_that_changes_nothing_is_logged(tmp_store, gaas_log):
    # Guards jobs._end: when the end of a job moves no row (the job went elsewhere meanwhile), the
    # result is not reported as stored: run_queued() gives None for it and says so in the log.
    user_id = store.add_user("alice", "hash")
    job_id = make_job(user_id)

    def moved_elsewhere(message):
        assert message["job"]["id"] == job_id
        assert store.set_status(job_id, "pending", ("running",), owner="", attempts=1)
        return {"ok": True, "job_status": "finished", "output_data": '{"y": [1.0]}'}

    fake = FakePool(FakeProcess(moved_elsewhere))
    assert jobs.run_queued(fake, [job_id], "worker:here:1:x") == ([None], [])
    assert fake.released == [True]
    row = store.get_job(job_id)
    assert (row["job_status"], row["owner"], row["output_data"]) == ("pending", "", "{}")
    dropped = [record for record in gaas_log if "result was dropped" in record.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelno == logging.WARNING, [r.getMessage() for r in gaas_log]
    assert f"job {job_id}" in dropped[0].getMessage() and "pending" in dropped[0].getMessage()


def test_a_series_claims_each_job_in_the_write_that_ends_the_one_before(tmp_store):
    # Guards jobs.run_queued: the next job starts in the write that ends the last, and runs as
    # that write read it back; a job cancelled while queued is skipped, not run.
    user_id = store.add_user("alice", "hash")
    first, second, cancelled, last = (make_job(user_id, name=name) for name in ("first", "second", "cancelled", "last"))
    jobs.cancel(cancelled)
    seen = []

    def answer(message):
        job = message["job"]
        seen.append((job["id"], job["job_status"], job["owner"], job["workdir"]))
        return {"ok": True, "job_status": "finished", "output_data": json.dumps({"y": [float(job["id"])]})}

    fake = FakePool(FakeProcess(answer))
    statuses, left = jobs.run_queued(fake, [first, second, cancelled, last], "worker:here:1:x")
    assert (statuses, left) == (["finished", "finished", None, "finished"], [])
    prefix = jobs.workdir_prefix(user_id)
    assert seen == [(job_id, "running", "worker:here:1:x", f"{prefix}{job_id}") for job_id in (first, second, last)]
    for job_id in (first, second, last):
        row = store.get_job(job_id)
        assert (row["job_status"], json.loads(row["output_data"])) == ("finished", {"y": [float(job_id)]})
    assert store.get_job(cancelled)["error"] == "cancelled"


def test_a_write_reads_the_job_as_it_left_it(tmp_store):
    # Guards store.set_statuses_and_read: each move says whether it moved, and the row read is
    # the one the moves left, data fields included.
    user_id = store.add_user("alice", "hash")
    job_id = make_job(user_id, input_data='{"x": [1.0]}')
    created = store.get_job(job_id)
    assert (created["job_status"], created["workdir"], created["input_data"]) == ("pending", f"{jobs.workdir_prefix(user_id)}{job_id}", '{"x": [1.0]}')
    moves = [
        store.Move(job_id, "running", ("pending",), {"owner": ""}, {"owner": "me", "pid": 7}),
        store.Move(job_id, "finished", ("pending",), None, {"output_data": '{"y": [2.0]}'}),  # no longer pending
    ]
    moved, row, waiting = store.set_statuses_and_read(moves, job_id)
    assert moved == [True, False] and waiting is False
    assert (row["job_status"], row["owner"], row["pid"], row["output_data"]) == ("running", "me", 7, "{}")
    assert store.set_statuses_and_read([], job_id + 1000) == ([], None, False)


# 2b. Store outages: a job's end written again, and a job that no thread runs any more ended


def sync_fields(user_id, tag):
    return {
        "user_id": user_id,
        "discipline_class_name": "WriteTag",
        "job_type": "execute",
        "execution_mode": "synchronous",
        "input_data": json.dumps({"tag": [tag]}),
    }


def echo(message):
    tag = json.loads(message["job"]["input_data"])["tag"][0]
    return {"ok": True, "job_status": "finished", "output_data": json.dumps({"echo": [float(tag)]})}


def store_down(monkeypatch, failures):
    """Make the store's set_statuses_and_read raise psycopg's OperationalError `failures` times."""
    import psycopg

    write, left = store.current().set_statuses_and_read, [failures]

    def flaky(*args):
        if left[0] > 0:
            left[0] -= 1
            raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")
        return write(*args)

    monkeypatch.setattr(store.current(), "set_statuses_and_read", flaky)


def test_the_end_of_a_job_is_written_again_once_the_store_is_back(tmp_store, monkeypatch, gaas_log):
    # Guards jobs._retried: the end write cut by a restart of the store is written again.
    user_id = store.add_user("alice", "hash")
    store_down(monkeypatch, 2)
    row = jobs.run_synchronous(FakePool(FakeProcess(echo)), user_id, sync_fields(user_id, 7), [], "web:here:1:x")
    assert (row["job_status"], json.loads(row["output_data"])) == ("finished", {"echo": [7.0]})
    retries = [record.getMessage() for record in gaas_log if "trying again" in record.getMessage()]
    assert len(retries) == 2 and "the store (PostgreSQL) is unavailable to record its end" in retries[0]
    assert not jobs.claims.held


def test_a_job_that_no_thread_runs_is_ended_by_the_sweep_of_its_owner(tmp_store, monkeypatch):
    # Guards jobs.end_orphans: the store stayed down past the retries, so the job stayed running
    # under a live owner that beats; its own sweep ends it once the store is back, and leaves
    # alone the jobs its threads run or are recording.
    owner = "web:here:1:x"
    store.beat(owner)
    store.beat("web:here:2:y")
    user_id = store.add_user("alice", "hash")
    with monkeypatch.context() as outage, pytest.raises(Exception) as raised:
        outage.setattr(jobs, "STORE_RETRY_SECONDS", 0.2)
        store_down(outage, 1000)
        jobs.run_synchronous(FakePool(FakeProcess(echo)), user_id, sync_fields(user_id, 7), [], owner)
    assert "server closed the connection" in str(raised.value)
    (lost,) = [row.id for row in store.claimed_jobs(owner)]
    held = make_job(user_id, job_status="running", owner=owner, started_at=time.time())
    jobs.claims.hold(held)
    try:
        started_at = time.time()
        with jobs.claims.recording(started_at):
            being_recorded = make_job(user_id, job_status="running", owner=owner, started_at=started_at)
            other = make_job(user_id, job_status="running", owner="web:here:2:y", started_at=started_at - 1)
            assert jobs.Sweeper(queued([]), set, owner).sweep() is None
    finally:
        jobs.claims.release(held)
    row = store.get_job(lost)
    assert (row["job_status"], row["error"]) == ("failed", "lost")
    assert "the store was unavailable" in row["traceback"]
    assert [store.job_status(job_id) for job_id in (held, being_recorded, other)] == ["running"] * 3


def test_a_hold_that_no_thread_has_is_let_go_by_the_sweep_of_its_owner(tmp_store):
    # Guards jobs.end_orphans: a worker thread held pending jobs while it waited for a warm process,
    # and the answer of that write was lost; its own sweep gives back the jobs none of its threads
    # holds (the sweep then queues them again), and keeps those a thread still holds.
    owner = "worker:here:1:x"
    store.beat(owner)
    user_id = store.add_user("alice", "hash")
    stranded = make_job(user_id, owner=owner)
    waiting = make_job(user_id, owner=owner)
    jobs.claims.hold(waiting)
    try:
        jobs.Sweeper(queued([]), set, owner).sweep()
    finally:
        jobs.claims.release(waiting)
    assert [(store.get_job(job_id)["job_status"], store.get_job(job_id)["owner"]) for job_id in (stranded, waiting)] == [
        ("pending", ""),
        ("pending", owner),
    ]


# 3. The duration histogram


DURATIONS = (0.003, 0.04, 0.2, 0.2, 7.0, 5000.0)


def end_jobs(user_id, durations=DURATIONS):
    for number, duration in enumerate(durations):
        job_id = make_job(user_id)
        started = time.time() - 6000
        assert store.set_status(job_id, "running", ("pending",), started_at=started)
        status = "failed" if number % 2 else "finished"
        assert store.set_status(job_id, status, ("running",), ended_at=started + duration)
    # Cancelled before it ran: it has no duration and is not counted.
    jobs.cancel(make_job(user_id))


def expected_histogram(durations=DURATIONS):
    bounds = (*store.DURATION_BUCKETS, math.inf)
    return [(bound, sum(1 for duration in durations if duration <= bound)) for bound in bounds]


class FakeHuey:
    def __len__(self):
        return 0


def duration_lines():
    text = metrics.render(FakeHuey(), Counter())
    return [line for line in text.splitlines() if line.startswith("gaas_job_duration_seconds")]


def test_the_duration_histogram_never_goes_down(tmp_store):
    # Guards the job_durations table and its trigger: purging jobs must not lower /metrics'
    # histogram (a counter), whose buckets are cumulative with +Inf equal to the count.
    user_id = store.add_user("alice", "hash")
    end_jobs(user_id)
    buckets, total = store.duration_histogram()
    assert buckets == expected_histogram()
    assert total == pytest.approx(sum(DURATIONS))
    lines = duration_lines()
    counts = [int(line.split()[-1]) for line in lines if "_bucket" in line]
    assert counts == sorted(counts) and len(counts) == len(store.DURATION_BUCKETS) + 1
    assert 'gaas_job_duration_seconds_bucket{le="+Inf"} 6' in lines
    assert "gaas_job_duration_seconds_count 6" in lines
    removed = retention.purge(1, now=time.time() + 10 * 86400)
    assert removed["jobs"] == 7 and store.list_jobs(user_id)[1] == 0
    assert store.duration_histogram() == (buckets, total)
    assert duration_lines() == lines


def test_an_older_store_gets_its_histogram_from_the_ended_jobs(tmp_store):
    # Guards store.init() on a store made before job_durations: it is counted once from the jobs.
    user_id = store.add_user("alice", "hash")
    end_jobs(user_id)
    conn = store.connect()
    conn.execute("DROP TRIGGER job_durations_end")
    conn.execute("DROP TABLE job_durations")
    store.init()
    assert store.duration_histogram()[0] == expected_histogram()
    store.init()  # counted once, not at every start
    assert store.duration_histogram()[0] == expected_histogram()
    end_jobs(user_id, [0.3])
    assert store.duration_histogram()[0] == expected_histogram((*DURATIONS, 0.3))


# 4. A failed COMMIT


def test_a_failed_commit_leaves_no_transaction_open(tmp_store):
    # Guards store.transaction.__exit__: a COMMIT that fails leaves SQLite's transaction open;
    # it must be rolled back, or every later write of this thread fails.
    conn = store.connect()
    conn.execute("CREATE TABLE t (x INTEGER REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (999)")
    assert store.connect().in_transaction is False
    assert store.add_user("after", "hash") > 0
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0


# 5. Server errors


@pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient.")
def test_a_server_error_is_one_json_500_logged_once(tmp_store, monkeypatch, gaas_log):
    # Guards gaas.ServerErrors: an unexpected exception is answered {"detail": ...} with 500 and
    # no exception text, and logged exactly once with its traceback.
    import auth
    import gaas
    from starlette.testclient import TestClient

    monkeypatch.setattr(auth, "_secret", None)
    gaas.init_state(gaas.app.state)
    user_id = store.add_user("alice", "hash")
    token = auth.make_token(store.user_by_id(user_id))

    def broken(user_id):
        raise RuntimeError("secret text /srv/private")

    monkeypatch.setattr(store, "list_files", broken)
    # No lifespan: the route needs only the store; the app's own middleware stack answers.
    client = TestClient(gaas.app)
    response = client.get("/v1/file", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str)
    assert "secret text" not in response.text and "RuntimeError" not in response.text
    errors = [record for record in gaas_log if record.levelno >= logging.ERROR]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    assert errors[0].exc_info and errors[0].exc_info[0] is RuntimeError
    assert "/v1/file" in errors[0].getMessage()
    assert gaas.app.state.counter.counts[("GET", "/v1/file", 500)] >= 1
    # The same client still gets ordinary answers.
    assert client.get("/v1/job/abc", headers={"Authorization": f"Bearer {token}"}).status_code == 404


# 6. Pool.resize


class CountedProcess:
    def __init__(self):
        self.jobs, self.kills = 0, 0

    def kill(self):
        self.kills += 1


def pool_with(alive, idle=(), busy=()):
    """A Pool without its spawner: `_add` only queues a start request, which is counted."""
    tested = pool.Pool(alive, "test", "test:here:1:x")
    tested._alive = alive
    tested._idle = list(idle)
    tested._processes = {*idle, *busy}
    return tested


def test_pool_resize(monkeypatch):
    # Guards Pool.resize: growing asks for exactly the missing processes; shrinking kills idle
    # extras at once and retires busy ones when they come back, without starting replacements.
    monkeypatch.setattr(settings, "PROCESS_MAX_JOBS", 500)
    grown = pool_with(1, idle=[CountedProcess()])
    grown.resize(3)
    assert (grown.size, grown._alive, grown._spawns.qsize()) == (3, 3, 2)
    grown.resize(3)
    assert grown._spawns.qsize() == 2

    idle = [CountedProcess(), CountedProcess()]
    busy = CountedProcess()
    shrunk = pool_with(3, idle=idle, busy=[busy])
    shrunk.resize(1)
    assert [process.kills for process in idle] == [1, 1] and busy.kills == 0
    assert (shrunk._alive, shrunk._idle, shrunk._spawns.qsize()) == (1, [], 0)
    shrunk.release(busy)
    assert busy.kills == 0 and shrunk._idle == [busy]

    first, second = CountedProcess(), CountedProcess()
    both_busy = pool_with(2, busy=[first, second])
    both_busy.resize(1)
    assert first.kills == second.kills == 0 and both_busy._alive == 2
    both_busy.release(first)
    assert first.kills == 1 and both_busy._alive == 1 and both_busy._spawns.qsize() == 0
    both_busy.release(second)
    assert second.kills == 0 and both_busy._idle == [second]


# 7. The spawner thread


def test_the_spawner_survives_any_start_failure(tmp_path, monkeypatch, gaas_log):
    # Guards Pool._spawner: a start failure that is no OSError (here KeyError) must not kill the
    # spawner thread, or the pool never gets a process again and acquire() waits forever.
    monkeypatch.setattr(settings, "ROOT_PATH", tmp_path)
    real_zygote = pool.Zygote
    made = []

    class FailingZygote:
        def __init__(self, env):
            made.append("failing")

        def wait_ready(self):
            raise KeyError("ready")

        def alive(self):
            return True

        def close(self):
            made.append("closed")

    def zygote(env):
        if not made:
            return FailingZygote(env)
        made.append("real")
        return real_zygote(env)

    monkeypatch.setattr(pool, "Zygote", zygote)
    tested = pool.Pool(1, "test", pool.owner_id("test"))
    tested.start()
    try:
        process = tested.acquire(timeout=120)
        reply = process.ask({"op": "catalogue"}, deadline=time.monotonic() + 120)
        assert reply["ok"] and reply["value"]["served"], reply
        tested.release(process)
    finally:
        tested.close()
    assert made == ["failing", "closed", "real"]
    failures = [record for record in gaas_log if "cannot start a test job process" in record.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info[0] is KeyError


# 8. Paths in job directories


def open_soon(workdir, name, timeout=10):
    """files.open_in, in a thread: an open that blocks (a FIFO) fails the test instead of hanging."""
    outcome = []

    def attempt():
        try:
            outcome.append(files.open_in(workdir, name))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    assert outcome, f"open_in({name!r}) blocked"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def test_open_in_reads_regular_files_inside_only(tmp_path):
    # Guards files.open_in: only regular files inside the job directory are opened; symlinks
    # leading out, folders and FIFOs are 404, and nothing blocks.
    workdir = tmp_path / "job"
    (workdir / "results").mkdir(parents=True)
    (workdir / "out.txt").write_bytes(b"output")
    (workdir / "results" / "upper.txt").write_bytes(b"UPPER")
    (tmp_path / "secret.txt").write_text("secret")
    (workdir / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (workdir / "outside").symlink_to(tmp_path)
    os.mkfifo(workdir / "pipe")
    with open_soon(workdir, "out.txt") as handle:
        assert handle.read() == b"output"
    with open_soon(str(workdir), "results/upper.txt") as handle:
        assert handle.read() == b"UPPER"
    for name in ("leak.txt", "outside/secret.txt", "results", "pipe", "missing.txt"):
        with pytest.raises(Rejected) as refused:
            open_soon(workdir, name)
        assert refused.value.status == 404, name
    for name in ("../secret.txt", str(tmp_path / "secret.txt")):
        with pytest.raises(Rejected) as refused:
            open_soon(workdir, name)
        assert refused.value.status == 400, name


LOG = b"line1\nline2\nline3\n"


def line_starts(text):
    return [0] + [index + 1 for index, char in enumerate(text) if char == ord("\n")]


def test_tail_start_is_a_line_start(tmp_path):
    # Guards files.tail_start: the tail of a log starts at a line start (no half line), within
    # the last `tail` bytes; no tail, or one past the size, is the whole file.
    path = tmp_path / "gaas-job.log"
    path.write_bytes(LOG)
    with open(path, "rb") as handle:
        for tail in (None, 0, len(LOG), len(LOG) + 10):
            assert files.tail_start(handle, tail) == 0
        for tail in range(1, len(LOG)):
            start = files.tail_start(handle, tail)
            assert start in line_starts(LOG) and start >= len(LOG) - tail, tail
        assert files.tail_start(handle, 8) == 12 and LOG[12:] == b"line3\n"


def test_tail_keeps_the_whole_lines_that_fit(tmp_path):
    # Guards files.tail_start at a boundary: when the last `tail` bytes begin exactly at a line
    # start, that line is kept (tail=12 of three 6-byte lines is the last two lines).
    path = tmp_path / "gaas-job.log"
    path.write_bytes(LOG)
    with open(path, "rb") as handle:
        for tail in range(1, len(LOG)):
            expected = min(start for start in line_starts(LOG) + [len(LOG)] if start >= len(LOG) - tail)
            assert files.tail_start(handle, tail) == expected, f"tail={tail}"
