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
    return store.create_batch(batch, common, ["{}"] * points, f"/nonexistent/user-{user_id}/job-")


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
    assert retention.purge(1, now=later, dry_run=True) == {"jobs": 3, "batches": 1, "files": 0, "partial_uploads": 0}
    assert store.get_batch(done, user_id) is not None
    assert retention.purge(1, now=later) == {"jobs": 3, "batches": 1, "files": 0, "partial_uploads": 0}
    assert store.get_batch(done, user_id) is None
    assert store.get_batch(mixed, user_id) is not None
    assert [row["id"] for row in store.batch_points(mixed)] == [mixed_points[1]]
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
