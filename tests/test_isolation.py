"""Every job and file is visible only to its owner."""

import json

import pytest

from test_api import upload

# Each backend has its own queries that keep users apart.
pytestmark = pytest.mark.every_backend


def test_other_users_job_is_404_everywhere(alice, bob):
    job = alice.run("WriteTag", input_data={"tag": [3]})
    job_id = job["id"]
    for method, path in [
        ("GET", f"/v1/job/{job_id}"),
        ("GET", f"/v1/job/{job_id}?long_polling=true&long_polling_timeout=0.1"),
        ("GET", f"/v1/job/{job_id}/files"),
        ("GET", f"/v1/job/{job_id}/files/download?filename=out.txt"),
        ("GET", f"/v1/job/{job_id}/log"),
        ("POST", f"/v1/job/{job_id}/cancel"),
        ("DELETE", f"/v1/job/{job_id}"),
    ]:
        response = bob.request(method, path)
        assert response.status_code == 404, (method, path)
        assert "tag 3" not in response.text
    assert job_id not in [item["id"] for item in bob.get("/v1/job").json()]
    # Bob's delete did nothing: the job and its file are still alice's.
    assert alice.get(f"/v1/job/{job_id}/files/download?filename=out.txt").content == b"tag 3\n"


def test_other_users_file_cannot_be_seen_or_used(alice, bob):
    record = upload(alice, b"alice's data", "input.txt")
    assert record["id"] not in [item["id"] for item in bob.get("/v1/file").json()]
    for reference in (record, {"id": record["id"]}, {"unique_filename": record["unique_filename"]}):
        response = bob.post("/v1/discipline/ReadInput/execute", json={"input_files": [reference]})
        assert response.status_code == 404
        assert "alice's data" not in response.text
    # Nor through the asynchronous path.
    response = bob.post(
        "/v1/discipline/ReadInput/execute?execution_mode=asynchronous",
        json={"input_files": [record]},
    )
    assert response.status_code == 404
    job = alice.run("ReadInput", input_files=[record])
    assert job["output_data"] == {"length": [12.0]}


def test_job_list_holds_only_own_jobs(alice, bob):
    alice.run("Sellar1")
    bob.run("Sellar1")
    me = bob.get("/v1/user/me/").json()["id"]
    listed = bob.get("/v1/job?limit=1000").json()
    assert listed and all(job["user_id"] == me for job in listed)


def test_me_never_shows_a_password_hash(alice):
    text = json.dumps(alice.get("/v1/user/me/").json())
    assert "scrypt" not in text and "password" not in text
