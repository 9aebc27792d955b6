"""Upkeep, in-process on a store under tmp_path: retention of batches, chunks written whole."""

import json
import os
import subprocess
import sys
import time

import pytest

import retention
import store
from conftest import CODE
from test_internals import tmp_store  # noqa: F401 (a fixture)


def make_batch(user_id, points):
    batch = dict(user_id=user_id, name="", discipline_class_name="Sellar1", design="{}", input_names="[]")
    common = dict(user_id=user_id, discipline_class_name="Sellar1", job_type="execute", job_status="pending", execution_mode="asynchronous")
    batch_id, ids, _ = store.create_batch(batch, common, ["{}"] * points, f"/nonexistent/user-{user_id}/job-")
    return batch_id, ids


def end(job_id):
    assert store.set_status(job_id, "running", ("pending",), started_at=time.time() - 2)
    assert store.set_status(job_id, "finished", ("running",), ended_at=time.time() - 1)


def test_retention_removes_a_batch_with_its_last_point(tmp_store):
    # Guards retention.purge: a batch whose points are all purged goes too (it was left listed
    # "finished" with no points); one with a point left stays, with that point.
    user_id = store.add_user("alice", "hash")
    done, done_points = make_batch(user_id, 2)
    mixed, mixed_points = make_batch(user_id, 2)
    for job_id in (*done_points, mixed_points[0]):
        end(job_id)
    later = time.time() + 10 * 86400
    assert retention.purge(1, now=later, dry_run=True) == {"jobs": 3, "batches": 1, "files": 0, "partial_uploads": 0, "audit": 0}
    assert store.get_batch(done, user_id) is not None
    assert retention.purge(1, now=later) == {"jobs": 3, "batches": 1, "files": 0, "partial_uploads": 0, "audit": 0}
    assert store.get_batch(done, user_id) is None
    assert store.get_batch(mixed, user_id) is not None
    assert [row["id"] for row in store.list_jobs(user_id, batch_id=mixed)[0]] == [mixed_points[1]]
    assert [row["id"] for row in store.list_batches(user_id)[0]] == [mixed]


WRITE_CHUNK = """
import io, resource, signal, sys, types
sys.path.insert(0, sys.argv[1])
limit, how, data = int(sys.argv[2]), sys.argv[3], open(sys.argv[4], "rb").read()
import files
# Files may grow to `limit` bytes, no further: the write of the chunk stops halfway.
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
if how == "killed":
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # the process dies in the write, as if killed
files.save_upload(1, "u", [types.SimpleNamespace(filename="big.bin", file=io.BytesIO(data))], 1, 2)
"""


def part(data):
    import io
    import types

    return types.SimpleNamespace(filename="big.bin", file=io.BytesIO(data))


@pytest.mark.parametrize("how", ["raised", "killed"])
def test_a_chunk_retried_after_a_failed_write_is_stored_once(tmp_store, tmp_path, how):
    # Guards files._save_chunk: a chunk whose write failed halfway (a full disk here: a file size
    # limit in a process of its own) and is sent again is stored once, after the chunks before
    # it; the bytes of the failed write were kept and the retry appended after them.
    import files

    user_id = store.add_user("alice", "hash")
    first, second = os.urandom(100_000), os.urandom(100_000)
    assert files.save_upload(user_id, "u", [part(first)], 0, 2) is None
    (tmp_path / "chunk").write_bytes(second)
    env = dict(os.environ, GEMSEO_HTTP_ROOT_PATH=str(tmp_path))
    failed = subprocess.run(
        [sys.executable, "-c", WRITE_CHUNK, str(CODE), "150000", how, str(tmp_path / "chunk")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert failed.returncode != 0, failed.stderr
    partials = list((tmp_path / "files" / ".partial").iterdir())
    assert [path.stat().st_size for path in partials] == [150_000]  # half the chunk went in
    (entry,) = files.save_upload(user_id, "u", [part(second)], 1, 2)
    stored = (tmp_path / "files" / entry["unique_filename"]).read_bytes()
    assert len(stored) == 200_000 and stored == first + second
    assert entry["size"] == 200_000


class FakeProcess:
    pid = 4242

    def ask(self, message, deadline=None, should_stop=None):
        return {"ok": True, "job_status": "finished", "output_data": '{"y": [1.0]}'}


class StartingPool:
    """A pool whose warm process is not ready yet: acquire() waits, running `meanwhile`."""

    closed = False

    def __init__(self, meanwhile):
        self.meanwhile = meanwhile

    def acquire(self, timeout=None):
        if timeout == 0:
            raise TimeoutError("no process free")
        self.meanwhile()
        return FakeProcess()

    def release(self, process, healthy=True):
        pass


def make_jobs(user_id, count):
    fields = dict(user_id=user_id, discipline_class_name="Sellar1", job_type="execute", job_status="pending", execution_mode="asynchronous", created_at=time.time() - 3600)
    return [store.create_job(fields, f"/nonexistent/user-{user_id}/job-")["id"] for _ in range(count)]


def test_jobs_a_worker_waits_to_run_are_not_queued_again(tmp_store):
    # Guards jobs.run_queued: a worker thread that took a task and waits for its first warm
    # process (GEMSEO importing) holds the task's jobs. They were pending, unclaimed and in no
    # queue, so the sweeps of the web app and the worker queued every old job again (after
    # copy-store, each copied pending job was queued twice or more).
    import jobs
    import pool

    owner = pool.owner_id("worker")
    store.beat(owner)
    user_id = store.add_user("alice", "hash")
    ids = make_jobs(user_id, 3)
    queued_again = []

    def sweep():
        enqueue = lambda job_ids, priority=0: queued_again.extend(job_ids)  # noqa: E731
        jobs.recover_lost(enqueue)
        jobs.requeue_unqueued(enqueue, set, min_age=0)
        assert [store.get_job(job_id)["job_status"] for job_id in ids] == ["pending"] * 3
        assert {store.get_job(job_id)["owner"] for job_id in ids} == {owner}

    statuses, left = jobs.run_queued(StartingPool(sweep), ids, owner)
    assert (statuses, left, queued_again) == (["finished"] * 3, [], [])


def test_jobs_held_by_a_thread_whose_pool_closes_are_let_go(tmp_store):
    # Guards the same hold: when the wait ends in an error (the worker stops), the jobs are
    # unclaimed again, for the queue and the sweeps.
    import jobs
    import pool

    owner = pool.owner_id("worker")
    user_id = store.add_user("alice", "hash")
    ids = make_jobs(user_id, 2)

    def closing():
        raise pool.PoolClosed("worker")

    with pytest.raises(pool.PoolClosed):
        jobs.run_queued(StartingPool(closing), ids, owner)
    assert [(store.get_job(job_id)["job_status"], store.get_job(job_id)["owner"]) for job_id in ids] == [("pending", "")] * 2
