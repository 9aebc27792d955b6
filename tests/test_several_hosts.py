"""Several machines: worker and web hosts (servers.Host) sharing one PostgreSQL store and one root."""

import contextlib
import hashlib
import os
import re
import signal
import socket
import time
from datetime import datetime

import pytest
import requests

from conftest import Api, start_service
from servers import free_port, running

# A store that several machines share; SQLite is one machine's. The tests of the queue run on
# both (every_backend), the others on PostgreSQL alone.
BACKENDS = ("postgresql", "postgresql+redis")
ENDED = ("finished", "failed")


@pytest.fixture
def hosts():
    """The simulated machines a test starts (append them), killed at its end whatever happened."""
    started = []
    with contextlib.ExitStack() as stack:
        yield started
        for host in started:
            stack.callback(host.kill)  # every one, even if killing another fails


def wait_until(condition, timeout, what, interval=0.05):
    """Poll condition() until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def host_of(owner):
    """The hostname in an owner id kind:hostname/boot-pidspace:pid:random, or '' for no owner."""
    return owner.split(":")[1].split("/")[0] if owner else ""


def stored_jobs(service):
    """{job id: (owner's host, status, error)}, read from the store behind the service's back."""
    rows = service.sql("SELECT id, owner, job_status, error FROM jobs")
    return {job_id: (host_of(owner), status, error) for job_id, owner, status, error in rows}


def on_host(service, host, status):
    """Ids of the jobs in that status whose owner is on that host."""
    return [job_id for job_id, found in stored_jobs(service).items() if found[:2] == (host, status)]


def wait_workers(service, names, timeout=120):
    """Wait until a worker on each of these hosts has beaten its heart into the store."""
    def beaten():
        rows = service.sql("SELECT host FROM processes WHERE id LIKE ?", ("worker:%",))
        return set(names) <= {host.split("/")[0] for (host,) in rows}

    wait_until(beaten, timeout, f"workers on {names} beating")


def sleepers(api, count, duration):
    return [api.run("Sleeper", "asynchronous", input_data={"duration": [duration]})["id"] for _ in range(count)]


@pytest.mark.every_backend
def test_jobs_spread_over_two_worker_hosts(fresh_service, hosts):
    service = fresh_service(worker=False, GEMSEO_HTTP_SYNC_PROCESSES=1)
    for name in ("worker-a", "worker-b"):
        hosts.append(service.start_worker_on(name, GEMSEO_HTTP_WORKERS=2))
    wait_workers(service, ["worker-a", "worker-b"])
    alice = service.api("alice", "alice-pw")
    ids = sleepers(alice, 16, 0.5)
    for job_id in ids:
        assert alice.wait(job_id, timeout=180)["job_status"] == "finished"
    ran_on = [stored_jobs(service)[job_id][0] for job_id in ids]
    assert set(ran_on) == {"worker-a", "worker-b"}, ran_on


HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT = 0.5, 5
# worker-a is killed about 0.5 s after its first job starts (measured under a load of 5).
SLEEP = 5


@pytest.mark.every_backend
@pytest.mark.parametrize("requeue", [False, True], ids=["lost", "queued-again"])
def test_worker_host_killed_mid_job(fresh_service, hosts, requeue):
    service = fresh_service(
        worker=False,
        GEMSEO_HTTP_SYNC_PROCESSES=1,
        GEMSEO_HTTP_HEARTBEAT_INTERVAL=HEARTBEAT_INTERVAL,
        GEMSEO_HTTP_HEARTBEAT_TIMEOUT=HEARTBEAT_TIMEOUT,
        GEMSEO_HTTP_REQUEUE_LOST_JOBS=int(requeue),
    )
    worker_a = service.start_worker_on("worker-a", GEMSEO_HTTP_WORKERS=2)
    hosts.append(worker_a)
    # Three threads on worker-b: one job stays queued past the first round, and what worker-b
    # takes over from worker-a runs in one more round, not two.
    hosts.append(service.start_worker_on("worker-b", GEMSEO_HTTP_WORKERS=3))
    wait_workers(service, ["worker-a", "worker-b"])
    alice = service.api("alice", "alice-pw")
    # Long enough that worker-a's first jobs still run when it is killed, after the web app stopped.
    ids = sleepers(alice, 6, SLEEP)
    wait_until(lambda: on_host(service, "worker-a", "running"), 180, "worker-a running a job")
    # Without a web app, only worker-b, the other host, can decide what became of worker-a's jobs.
    service.stop_server()
    worker_a.kill()
    # Read once worker-a is gone: it writes nothing any more.
    running_on_a, claimed_by_a = on_host(service, "worker-a", "running"), on_host(service, "worker-a", "pending")
    assert running_on_a
    ((last_beat,),) = service.sql("SELECT max(beat_at) FROM processes WHERE host LIKE ?", ("worker-a/%",))

    def decided():
        now = stored_jobs(service)
        return all(now[job_id][0] != "worker-a" or now[job_id][1] in ENDED for job_id in running_on_a) and now

    decided_at = wait_until(decided, HEARTBEAT_TIMEOUT + 30, "worker-a's jobs moved on")
    silent = time.time() - last_beat
    # Not before worker-a's last beat is HEARTBEAT_TIMEOUT old, and soon after (worker-b looks
    # every HEARTBEAT_INTERVAL; the rest is room for a loaded machine).
    assert HEARTBEAT_TIMEOUT <= silent < 2 * HEARTBEAT_TIMEOUT, silent
    worker_b_log = service.log("worker-worker-b.log")
    for job_id in running_on_a:
        if requeue:
            assert decided_at[job_id][1] in ("pending", "running"), decided_at[job_id]
            assert f"job {job_id} pending: queued again after its worker worker:worker-a/" in worker_b_log
        else:
            assert decided_at[job_id][1:] == ("failed", "lost"), decided_at[job_id]
            assert f"job {job_id} failed: lost (owner worker:worker-a/" in worker_b_log

    service.start_server()
    alice = service.api("alice", "alice-pw")
    ended = {job_id: alice.wait(job_id, timeout=240) for job_id in ids}
    final = stored_jobs(service)
    for job_id in ids:
        if job_id in running_on_a and not requeue:
            assert (ended[job_id]["job_status"], ended[job_id]["error"]) == ("failed", "lost")
            assert final[job_id][0] == "worker-a"
        else:
            assert ended[job_id]["job_status"] == "finished", ended[job_id]
        if job_id in claimed_by_a or (requeue and job_id in running_on_a):
            assert final[job_id][0] == "worker-b", final[job_id]
    listed = alice.get("/v1/job?limit=100").json()
    assert sorted(job["id"] for job in listed) == sorted(ids)
    assert all(job["job_status"] in ENDED for job in listed), [job["job_status"] for job in listed]
    attempts = dict(service.sql("SELECT id, attempts FROM jobs"))
    assert {job_id for job_id in ids if attempts[job_id]} == (set(running_on_a) if requeue else set())


@pytest.mark.every_backend
def test_web_host_restarted_while_jobs_run(fresh_service, hosts):
    service = fresh_service(worker=False, GEMSEO_HTTP_SYNC_PROCESSES=1)
    service.stop_server()  # the service's port is web-1's now
    web = service.start_server_on("web-1")
    hosts.append(web)
    hosts.append(service.start_worker_on("worker-a", GEMSEO_HTTP_WORKERS=2))
    wait_workers(service, ["worker-a"])
    alice = service.api("alice", "alice-pw")
    first = alice.get("/health").json()["web_process"]
    ids = sleepers(alice, 4, 3)
    wait_until(lambda: on_host(service, "worker-a", "running"), 180, "a job running")
    assert web.stop(signal.SIGINT) == 0
    assert any(status in ("pending", "running") for _, status, _ in stored_jobs(service).values())
    hosts.append(service.start_server_on("web-1"))
    alice = service.api("alice", "alice-pw")
    second = alice.get("/health").json()["web_process"]
    assert first != second and host_of(first) == host_of(second) == "web-1"
    for job_id in ids:
        job = alice.get(f"/v1/job/{job_id}?long_polling=true&long_polling_timeout=60").json()
        assert (job["job_status"], job["error"]) == ("finished", ""), job
    assert dict(service.sql("SELECT id, attempts FROM jobs")) == {job_id: 0 for job_id in ids}


def test_same_hostname_in_another_pid_namespace_is_another_host(fresh_service, hosts):
    # Guards recover_lost: containers that share the node's hostname have their own process ids,
    # so a web app there must not judge this worker's jobs by looking up their pid in its own
    # namespace (it failed them as lost 2 s into their run).
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1, GEMSEO_HTTP_HEARTBEAT_INTERVAL=0.5)
    service.stop_server()
    hosts.append(service.start_server_on(socket.gethostname(), GEMSEO_HTTP_HEARTBEAT_INTERVAL=0.5))
    alice = service.api("alice", "alice-pw")
    job_id = sleepers(alice, 1, 4)[0]
    job = alice.wait(job_id, timeout=120)
    assert (job["job_status"], job["error"]) == ("finished", ""), job


# Two web processes behind one (imaginary) load balancer: the service's own, and one on host web-b.


@pytest.fixture(scope="module")
def two_web(tmp_path_factory, backend, backends):
    """(service, api on its web app A, api on a second web app B with the same token)."""
    # Heartbeats every 0.5 s: B's request counts reach the store sooner.
    service = start_service(
        tmp_path_factory.mktemp("two-web"), GEMSEO_HTTP_SYNC_PROCESSES=1, GEMSEO_HTTP_HEARTBEAT_INTERVAL=0.5,
        **backends.settings(backend),
    )
    other = None
    try:
        port = free_port()
        other = service.start_server_on("web-b", port=port)
        token = service.token("alice", "alice-pw")
        a, b = Api(service.url, token), Api(f"http://127.0.0.1:{port}", token)
        for api in (a, b):  # warm processes for the descriptions, on both
            assert api.get("/v1/discipline/Sleeper", timeout=300).status_code == 200
        assert a.wait(a.run("Sellar1", "asynchronous")["id"], timeout=180)["job_status"] == "finished"
        yield service, a, b
    finally:
        try:
            if other is not None:
                other.stop(signal.SIGINT)
        finally:
            service.close()


def test_chunked_upload_over_two_web_processes(two_web):
    _, a, b = two_web
    data = os.urandom(2500)
    for number, api in enumerate((a, b, a)):
        response = api.post(
            "/v1/file/upload",
            files={"files": ("spread.bin", data[number * 1000 : (number + 1) * 1000])},
            data={"chunk_number": number, "total_chunks": 3, "upload_id": "spread"},
        )
        assert response.status_code == 200, response.text
        if number < 2:
            assert response.json() == {"next_chunk": number + 1, "total_chunks": 3}
    record = response.json()[0]
    assert record["sha256sum"] == hashlib.sha256(data).hexdigest() and record["size"] == 2500
    assert record in b.get("/v1/file").json()

    def send(api, number, upload_id="order"):
        return api.post(
            "/v1/file/upload",
            files={"files": ("order.bin", data[number * 1000 : (number + 1) * 1000])},
            data={"chunk_number": number, "total_chunks": 3, "upload_id": upload_id},
        )

    assert send(a, 0).status_code == 200
    refused = send(b, 2)
    assert refused.status_code == 409 and "expected chunk 1" in refused.json()["detail"], refused.text
    assert send(b, 1).status_code == 200  # the refused chunk changed nothing
    refused = send(a, 1)
    assert refused.status_code == 409 and "expected chunk 2" in refused.json()["detail"], refused.text
    assert send(a, 2).json()[0]["sha256sum"] == hashlib.sha256(data).hexdigest()


def test_sign_in_throttle_counts_across_web_processes(two_web):
    service, a, b = two_web
    name = f"carol-{os.urandom(4).hex()}"
    service.add_user(name, "carol-pw")
    answers = []
    for attempt in range(14):
        api = (a, b)[attempt % 2]
        response = requests.post(api.url + "/token", data={"username": name, "password": "wrong"}, timeout=60)
        answers.append((api.url, response.status_code, response.headers.get("Retry-After")))
    assert [status for _, status, _ in answers] == [401] * 10 + [429] * 4, answers
    assert {url for url, status, _ in answers if status == 429} == {a.url, b.url}
    assert all(0 < int(wait) <= 60 for _, status, wait in answers if status == 429), answers


def ended_at(job):
    return datetime.fromisoformat(job["ended_at"].replace("Z", "+00:00")).timestamp()


def test_long_poll_answered_by_the_web_process_that_did_not_submit(two_web):
    _, a, b = two_web
    for submit_on, poll_on in ((a, b), (b, a)):
        job = submit_on.run("Sleeper", "asynchronous", input_data={"duration": [1.0]})
        asked = time.time()
        response = poll_on.get(f"/v1/job/{job['id']}?long_polling=true&long_polling_timeout=30")
        answered = time.time()
        polled = response.json()
        assert response.status_code == 200 and polled["job_status"] == "finished", polled
        assert asked < ended_at(polled)
        # ended_at is cut to the millisecond.
        assert ended_at(polled) - 0.001 <= answered <= ended_at(polled) + 0.5, (answered, polled["ended_at"])


def request_count(api, method, route, status):
    text = api.get("/metrics").text
    line = f'gaas_http_requests_total{{method="{method}",route="{route}",status="{status}"}} '
    found = re.search(re.escape(line) + r"(\d+)", text)
    return int(found.group(1)) if found else 0


def test_metrics_count_the_requests_of_every_web_process(two_web):
    service, a, b = two_web
    job = a.run("Sellar1")
    route = "/v1/job/{job_id}"
    before_ok, before_missing = request_count(a, "GET", route, 200), request_count(a, "GET", route, 404)
    for _ in range(7):
        assert b.get(f"/v1/job/{job['id']}").status_code == 200
    for _ in range(3):
        assert b.get("/v1/job/999999").status_code == 404
    # B adds its counts to the store at its next heartbeat, just after it beats.
    wait_until(lambda: request_count(a, "GET", route, 404) >= before_missing + 3, 30, "B's requests in A's /metrics")
    assert request_count(a, "GET", route, 200) >= before_ok + 7
    # Three more beats of B: the two heartbeats before the last one added nothing again.
    service.wait_beats(b.get("/health").json()["web_process"], 3)
    assert request_count(a, "GET", route, 404) == before_missing + 3


def pinned(url, token, count=2, tries=200):
    """{web process: Api} whose kept-alive connections reach `count` different web processes."""
    found = {}
    for _ in range(tries):
        api = Api(url, token)
        found.setdefault(api.get("/health").json()["web_process"], api)
        if len(found) == count:
            return found
    raise AssertionError(f"{tries} connections reached only {list(found)}")


def test_two_web_processes_from_one_server_script(fresh_service):
    service = fresh_service(GEMSEO_HTTP_WEB_PROCESSES=2, GEMSEO_HTTP_SYNC_PROCESSES=1)
    wait_workers(service, [socket.gethostname()])  # till then /health says 503
    seen = []
    for _ in range(200):
        with requests.Session() as session:  # a new connection each time
            answer = session.get(service.url + "/health", timeout=60)
        assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text
        seen.append(answer.json()["web_process"])
        if len(set(seen)) == 2 and len(seen) >= 20:
            break
    assert len(set(seen)) == 2, set(seen)
    token = service.token("alice", "alice-pw")
    for api in pinned(service.url, token).values():  # each process describes Sleeper once, slowly
        assert api.get("/v1/discipline/Sleeper", timeout=300).status_code == 200
    # Fresh connections: uvicorn closes one idle for 5 s, and the next may reach the other process.
    (first, submitter), (second, lister) = pinned(service.url, token).items()
    job = submitter.run("Sleeper", "asynchronous", input_data={"duration": [0.2]})
    listed = lister.get("/v1/job").json()
    assert [submitter.get("/health").json()["web_process"], lister.get("/health").json()["web_process"]] == [first, second]
    assert job["id"] in [entry["id"] for entry in listed]
    assert lister.wait(job["id"], timeout=180)["job_status"] == "finished"
    pids = [int(owner.split(":")[2]) for owner in (first, second)]
    service.stop_server()
    assert not any(running(pid) for pid in pids), pids


def test_a_job_and_its_task_in_one_transaction(fresh_service, backend):
    if backend != "postgresql":
        pytest.skip("the queue is in Redis: no transaction spans the store and the queue")
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice = service.api("alice", "alice-pw")

    def totals():
        jobs = alice.get("/v1/job?limit=1").headers["X-Total-Count"]
        batches = alice.get("/v1/batch?limit=1").headers["X-Total-Count"]
        return int(jobs), int(batches), service.sql("SELECT count(*) FROM huey_task")[0][0]

    assert alice.get("/v1/discipline/Sellar1", timeout=300).status_code == 200
    before = totals()
    service.sql("ALTER TABLE huey_task ADD CONSTRAINT no_tasks CHECK (false) NOT VALID")
    try:
        refused = [
            alice.post("/v1/discipline/Sellar1/execute?execution_mode=asynchronous", json={}),
            alice.post("/v1/discipline/Sellar1/batch", json={"samples": [{}, {}]}),
        ]
        after = totals()
    finally:
        service.sql("ALTER TABLE huey_task DROP CONSTRAINT IF EXISTS no_tasks")
    for response in refused:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail and "Traceback" not in detail, detail
    assert after == before
    job = alice.run("Sellar1", "asynchronous")
    assert alice.wait(job["id"], timeout=180)["job_status"] == "finished"
    response = alice.post("/v1/discipline/Sellar1/batch", json={"samples": [{}, {}]})
    assert response.status_code == 202, response.text
    batch = alice.get(f"/v1/batch/{response.json()['id']}?long_polling=true&long_polling_timeout=120").json()
    assert batch["batch_status"] == "finished" and batch["counts"]["finished"] == 2, batch
