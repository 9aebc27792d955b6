"""Upgrades lose nothing: a store made by the previous main's own code (its gaas-admin and store
module, in a tree of its own) is migrated on start, on SQLite and on PostgreSQL, with its users,
sessions, jobs, files and batches; then what came after it works on that store."""

import json
import subprocess

import pytest

from conftest import CODE, Api, Service
from study_specs import analytic_spec
from test_studies import submit, wait_study

# Main before studies, teams and sharing.
PREVIOUS_MAIN = "2342707"
# Run by the old tree's modules: a job, an uploaded file, a batch and a session token of carol's.
OLD_WRITES = """
import json
import auth, jobs, store
store.init()
user = store.user_by_name("carol")
prefix = jobs.workdir_prefix(user["id"])
point = {"user_id": user["id"], "discipline_class_name": "Sellar1", "job_type": "execute", "execution_mode": "asynchronous"}
job = store.create_job(dict(point, name="before", job_status="finished", input_data='{"x_1": [2.0]}', output_data='{"y_1": [3.0]}'), prefix)
file_id = store.add_file(user["id"], "notes.txt", "before-notes", "0" * 64, 4)
batch = {"user_id": user["id"], "name": "b", "discipline_class_name": "Sellar1", "design": '{"samples": 2}', "input_names": '["x_1"]'}
batch_id, _ = store.create_batch(batch, dict(point, job_status="pending"), ['{"x_1": [1.0]}', '{"x_1": [2.0]}'], prefix)
print(json.dumps({"job": job["id"], "file": file_id, "batch": batch_id, "token": auth.make_token(dict(user))}))
"""


def old_store(service, tmp_path):
    """Make the service's store with the previous main's code: users carol and dan, and what
    OLD_WRITES writes; return its ids and carol's token."""
    old = tmp_path / "old"
    old.mkdir()
    tree = subprocess.run(["git", "-C", str(CODE), "archive", PREVIOUS_MAIN], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=tree, check=True)
    (old / ".venv").symlink_to(CODE / ".venv")
    for name in ("carol", "dan"):
        made = subprocess.run([str(old / "bin" / "gaas-admin"), "create-user", name, "--password-stdin"],
                              input=f"{name}-pw\n", env=service.env, capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr
    written = subprocess.run([str(old / ".venv" / "bin" / "python"), "-c", OLD_WRITES], cwd=old, env=service.env,
                             capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stderr
    return json.loads(written.stdout.splitlines()[-1])


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_store_of_the_previous_main_is_migrated_on_start(kind, tmp_path, backends):
    service = Service(tmp_path / "root", **backends.settings(kind))
    before = old_store(service, tmp_path)
    assert service.admin("set-admin", "dan").returncode == 0  # the new code's columns, made by it
    service.start_server()
    service.start_worker()
    try:
        carol = Api(service.url, before["token"])  # a session of the old code goes on
        assert carol.get("/v1/user/me/").json() == {"id": 1, "username": "carol"}
        job = service.api("carol", "carol-pw").get(f"/v1/job/{before['job']}").json()
        assert job["output_data"] == {"y_1": [3.0]} and job["study_id"] is None
        assert [entry["id"] for entry in carol.get("/v1/file").json()] == [before["file"]]
        assert carol.get(f"/v1/batch/{before['batch']}").json()["n_samples"] == 2

        # Teams on the old store: an admin, a group, an access token, the audit log.
        dan = service.api("dan", "dan-pw")
        assert dan.get(f"/v1/batch/{before['batch']}").status_code == 200  # an admin now
        assert dan.post("/v1/admin/groups", json={"name": "old-team"}).status_code == 201
        assert dan.post("/v1/admin/groups/old-team/members", json={"username": "carol", "role": "member"}).status_code == 200
        assert carol.get("/v1/group").json() == [{"name": "old-team", "role": "member"}]
        secret = carol.post("/v1/user/me/tokens", json={"name": "after"}).json()["token"]
        assert Api(service.url, secret).get(f"/v1/job/{before['job']}").status_code == 200
        assert {entry["action"] for entry in dan.get("/v1/admin/audit").json()} >= {"admin_set", "group_created", "token_created"}

        # A study shared with the group runs, and the group reads it.
        ended = wait_study(carol, submit(carol, dict(analytic_spec(6), group="old-team"))["id"], timeout=180)
        assert ended["study_status"] == "finished" and ended["n_evaluations"] == 6
        assert len(carol.get(f"/v1/study/{ended['id']}/history").json()["evaluation"]) == 6
        assert carol.get("/v1/study").headers["X-Total-Count"] == "1"
        assert dan.post("/v1/admin/users", json={"username": "erin", "password": "erin-pw-1"}).status_code in (200, 201)
        assert dan.post("/v1/admin/groups/old-team/members", json={"username": "erin", "role": "viewer"}).status_code == 200
        erin = service.api("erin", "erin-pw-1")
        assert erin.get(f"/v1/study/{ended['id']}").json()["group"] == "old-team"
        assert [entry["id"] for entry in erin.get("/v1/study?scope=group").json()] == [ended["id"]]
    finally:
        service.close()
