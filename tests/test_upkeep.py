"""Upkeep, in-process on a store under tmp_path: retention of batches, chunks written whole."""

import json
import os
import subprocess
import sys
import time

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
