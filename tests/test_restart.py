"""The web app and the worker can be stopped and started again without losing jobs."""

import time


def test_server_restart_while_a_job_runs(fresh_service):
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice = service.api("alice", "alice-pw")
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [4]})
    deadline = time.monotonic() + 60
    while alice.get(f"/v1/job/{job['id']}").json()["job_status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    service.stop_server()
    assert service.server.returncode is not None
    service.start_server()
    # The token is still valid after the restart (the secret key is kept under the root).
    ended = alice.wait(job["id"], timeout=60)
    assert ended["job_status"] == "finished", ended["traceback"]
    assert ended["output_data"] == {"slept": [4.0]}
    assert "sleeper pid" in alice.get(f"/v1/job/{job['id']}/log").text


def test_jobs_wait_for_a_worker(fresh_service):
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1, GEMSEO_HTTP_HEARTBEAT_INTERVAL=0.2, worker=False)
    alice = service.api("alice", "alice-pw")
    jobs = [alice.run("Sellar1", "asynchronous", input_data={"x_1": [n]}) for n in range(3)]
    # The web app has looked at them since (a beat, then a sweep, each loop): still waiting.
    service.wait_beats(alice.get("/health").json()["web_process"], 2)
    assert all(alice.get(f"/v1/job/{job['id']}").json()["job_status"] == "pending" for job in jobs)
    service.start_worker()
    for job in jobs:
        assert alice.wait(job["id"], timeout=120)["job_status"] == "finished"


def test_body_size_limit(fresh_service):
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1, GEMSEO_HTTP_MAX_BODY_MB=0.01, worker=False)
    alice = service.api("alice", "alice-pw")
    big = {"input_data": {"x_1": [1.0] * 5000}}
    response = alice.post("/v1/discipline/Sellar1/execute", json=big)
    assert response.status_code == 413 and "MiB" in response.json()["detail"]
    response = alice.post(
        "/v1/file/upload", files={"files": ("big.bin", b"x" * 20000)}, data={"chunk_number": 0}
    )
    assert response.status_code == 413
    # A body sent in chunks, with no length announced, is counted as it comes.
    chunks = (b'{"input_data": {"x_1": [' + b"1.0, " * 4000 + b'1.0]}}' for _ in range(1))
    response = alice.post("/v1/discipline/Sellar1/execute", data=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert alice.get("/v1/job").headers["X-Total-Count"] == "0"
    assert alice.run("Sellar1")["job_status"] == "finished"
