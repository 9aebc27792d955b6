"""What a plain install serves (its algorithm catalogue), and the checks and limits a request
meets before anything is recorded: inputs against the grammar, DOE limits, warm-process waits,
health details, proxies, tokens, secret keys."""

import asyncio
import base64
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from conftest import CODE, TIMEOUT

SPACE = {"x_1": {"lower_bound": [0.0], "upper_bound": [10.0]}}


def test_the_test_venv_is_the_runtime_install():
    """The tests see the catalogue users get: requirements.txt brings the DOE and optimiser back
    ends, and nothing that only gemseo[all] would bring is importable here."""
    pinned = (CODE / "requirements.txt").read_text()
    for name in ("pyDOE3==", "openturns==", "nlopt=="):
        assert name in pinned
    for extra in ("sklearn", "openpyxl", "plotly", "spgl1", "gemseo_http"):
        assert importlib.util.find_spec(extra) is None, f"{extra} is in the test venv, not in requirements.txt"


def test_algorithms(alice):
    catalogue = alice.get("/v1/algorithms").json()
    doe = {entry["name"]: entry for entry in catalogue["doe"]}
    optimization = {entry["name"] for entry in catalogue["optimization"]}
    assert {"PYDOE_LHS", "PYDOE_FULLFACT", "OT_SOBOL", "OT_OPT_LHS", "LHS", "Sobol"} <= set(doe)
    assert {"SLSQP", "NLOPT_COBYLA", "NLOPT_SLSQP", "L-BFGS-B"} <= optimization
    assert "CustomDOE" not in doe  # it reads a server file
    lhs = doe["PYDOE_LHS"]
    assert lhs["description"] == "Latin Hypercube Sampling"
    assert lhs["settings"]["n_samples"] == {"type": "integer", "required": True, "description": "The number of samples."}
    assert lhs["settings"]["random_state"]["type"] == "integer|null" and lhs["settings"]["random_state"]["default"] is None
    assert lhs["settings"]["criterion"]["type"] == "string|null"
    # Settings that cannot be plain JSON values are not offered.
    assert "callbacks" not in lhs["settings"] and "preprocessors" not in lhs["settings"]
    assert requests.get(alice.url + "/v1/algorithms", timeout=TIMEOUT).status_code == 401


def test_the_readme_batch_runs_on_a_plain_install(alice):
    doe = {"algo_name": "PYDOE_LHS", "n_samples": 20, "design_space": SPACE}
    batch = alice.post("/v1/discipline/Sellar1/batch", json={"doe": doe})
    assert batch.status_code == 202, batch.text
    done = alice.get(f"/v1/batch/{batch.json()['id']}?long_polling=true&long_polling_timeout=60").json()
    assert done["batch_status"] == "finished" and done["counts"]["finished"] == 20


def test_an_unknown_algorithm_names_usable_ones(alice):
    doe = {"algo_name": "PYDOE_LHSS", "n_samples": 5, "design_space": SPACE}
    response = alice.post("/v1/discipline/Sellar1/batch", json={"doe": doe})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "'PYDOE_LHSS'" in detail and "GET /v1/algorithms" in detail and "PYDOE_LHS," in detail


def job_count(api):
    return int(api.get("/v1/job?limit=1").headers["X-Total-Count"])


@pytest.mark.parametrize(
    "input_data, words",
    [
        ({"x_1": ["2.0"]}, "Field 'input_data.x_1' must be a list of numbers"),
        ({"x_1": "abc"}, "Field 'input_data.x_1' must be a list of numbers"),
        ({"x_1": [True]}, "Field 'input_data.x_1' must be a list of numbers"),
        ({"x_1": [2.0, 3.0]}, "Field 'input_data.x_1' must hold 1 number (the size of its default), not 2"),
        ({"x_shared": [1.0]}, "Field 'input_data.x_shared' must hold 2 numbers"),
        ({"x_1": [[2.0]]}, "Field 'input_data.x_1' must be a list of numbers"),
    ],
)
def test_inputs_are_checked_against_the_grammar(alice, input_data, words):
    before = job_count(alice)
    for mode in ("synchronous", "asynchronous"):
        response = alice.post(f"/v1/discipline/Sellar1/execute?execution_mode={mode}", json={"input_data": input_data})
        assert response.status_code == 422 and words in response.json()["detail"], response.text
    assert job_count(alice) == before  # nothing recorded


def test_good_inputs_still_run(alice):
    job = alice.run("Sellar1", input_data={"x_1": [2], "x_shared": [1.0, 0.0], "gamma": 0.2})
    assert job["job_status"] == "finished", job


def test_batch_points_are_checked_before_anything_is_recorded(alice):
    batches = int(alice.get("/v1/batch?limit=1").headers["X-Total-Count"])
    before = job_count(alice)
    samples = [{"x_1": [1.0]}, {"x_1": ["2.0"]}]
    response = alice.post("/v1/discipline/Sellar1/batch", json={"samples": samples})
    assert response.status_code == 422 and "Field 'samples[1].x_1' must be a list of numbers" in response.json()["detail"]
    doe = {"algo_name": "PYDOE_LHS", "n_samples": 3, "design_space": {"x_shared": {"lower_bound": [0.0], "upper_bound": [1.0]}}}
    response = alice.post("/v1/discipline/Sellar1/batch", json={"doe": doe})
    assert response.status_code == 422 and "must hold 2 numbers" in response.json()["detail"]
    assert job_count(alice) == before
    assert int(alice.get("/v1/batch?limit=1").headers["X-Total-Count"]) == batches


def test_bad_discipline_options_are_422(alice):
    body = {"discipline_options": {"no_such_option": 1}}
    response = alice.post("/v1/discipline/Sellar1/execute", json=body)
    assert response.status_code == 422 and "Invalid discipline_options" in response.json()["detail"]


SQUARE = {"x_shared": {"lower_bound": [0.0, 0.0], "upper_bound": [1.0, 1.0]}}


@pytest.mark.parametrize(
    "algo_name, doe_settings, words",
    [
        # MorrisDOE hands a DOE name and its settings on: CustomDOE would read a server file.
        ("MorrisDOE", {"doe_algo_name": "CustomDOE"}, "doe.settings.doe_algo_name': CustomDOE is not served"),
        ("MorrisDOE", {"doe_algo_settings": {"doe_file": "/etc/hostname"}}, "doe.settings.doe_algo_settings' is not a setting"),
        ("PYDOE_LHS", {"callbacks": []}, "doe.settings.callbacks' is not a setting"),
        ("PYDOE_LHS", {"doe_file": "/etc/hostname"}, "doe.settings.doe_file' is not a setting"),
    ],
)
def test_doe_settings_are_those_the_catalogue_lists(alice, algo_name, doe_settings, words):
    doe = {"algo_name": algo_name, "n_samples": 4, "design_space": SPACE, "settings": doe_settings}
    response = alice.post("/v1/discipline/Sellar1/batch", json={"doe": doe})
    assert response.status_code == 422 and words in response.json()["detail"], response.text


def test_a_full_factorial_is_counted_by_its_points(alice):
    doe = {"algo_name": "PYDOE_FULLFACT", "design_space": SQUARE, "settings": {"levels": [200, 200]}}
    response = alice.post("/v1/discipline/Sellar1/batch", json={"doe": doe})
    assert response.status_code == 422, response.text
    assert "40000 points" in response.json()["detail"] and "GEMSEO_HTTP_MAX_BATCH_SAMPLES" in response.json()["detail"]
    doe["settings"]["levels"] = [3, 2]  # no n_samples: the levels decide
    response = alice.post("/v1/discipline/Sellar1/batch", json={"doe": doe})
    assert response.status_code == 202 and response.json()["n_samples"] == 6, response.text


def test_a_slow_doe_is_422_and_frees_its_process(fresh_service):
    service = fresh_service(GEMSEO_HTTP_DOE_TIMEOUT=0.3, GEMSEO_HTTP_SYNC_PROCESSES=1, worker=False)
    alice = service.api("alice", "alice-pw")
    # 27 s on these cores (2.2 s for 1,000 points).
    doe = {"algo_name": "LHS", "n_samples": 3000, "design_space": SQUARE, "settings": {"optimization": "random-cd"}}
    started = time.monotonic()
    response = alice.post("/v1/discipline/Sellar1/batch", json={"doe": doe})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == "Computing the DOE took longer than 0.3 s (GEMSEO_HTTP_DOE_TIMEOUT)."
    assert time.monotonic() - started < 20
    # The killed process was replaced: the next request is served.
    assert alice.run("Sellar1")["job_status"] == "finished"


def test_waiting_for_a_warm_process_is_bounded(fresh_service):
    service = fresh_service(GEMSEO_HTTP_POOL_WAIT_TIMEOUT=1, GEMSEO_HTTP_SYNC_PROCESSES=1, worker=False)
    alice = service.api("alice", "alice-pw")
    deadline = time.monotonic() + 120
    while requests.get(service.url + "/health", timeout=TIMEOUT).json()["pools"]["web"]["idle"] < 1:
        assert time.monotonic() < deadline, "the warm process never started"
        time.sleep(0.1)
    with ThreadPoolExecutor(1) as running:
        slow = running.submit(alice.run, "Sleeper", input_data={"duration": [6.0]})
        deadline = time.monotonic() + 30
        while not alice.get("/v1/job?status=running").json():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for path in ("/v1/discipline/Sellar1/execute", "/v1/discipline/Sellar2/inputs_schema"):
            response = alice.post(path, json={})
            assert response.status_code == 503 and response.headers["Retry-After"] == "5", response.text
            assert "GEMSEO_HTTP_POOL_WAIT_TIMEOUT" in response.json()["detail"]
        assert slow.result()["job_status"] == "finished"


def test_health_reports_a_pool_that_cannot_start(fresh_service):
    # A zygote allowed 0.01 s to import GEMSEO never gets ready.
    service = fresh_service(GEMSEO_HTTP_PROCESS_STARTUP_TIMEOUT=0.01, GEMSEO_HTTP_POOL_WAIT_TIMEOUT=2)
    deadline = time.monotonic() + 60
    while True:
        report = requests.get(service.url + "/health", timeout=TIMEOUT)
        if report.status_code == 503 and report.json()["pools"]["web"]["failing"]:
            break
        assert time.monotonic() < deadline, report.text
        time.sleep(0.2)
    assert "web pool: cannot start a job process" in report.json()["reason"]
    response = service.api("alice", "alice-pw").post("/v1/discipline/Sellar1/execute", json={})
    assert response.status_code == 503 and "Retry-After" in response.headers


def test_health_details_are_for_loopback_only(live, fresh_service):
    local = requests.get(live.url + "/health", timeout=TIMEOUT).json()
    assert "pools" in local and local["web_process"].startswith("web:")
    # Behind the local proxy (believed by default), a remote client gets the statuses only.
    remote = requests.get(live.url + "/health", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=TIMEOUT).json()
    assert remote["store"] in ("sqlite", "postgresql") and remote["database"] == "ok"
    assert not {"pools", "web_process"} & set(remote)
    # A client that claims to be the machine itself is still a client through a proxy.
    claimed = requests.get(live.url + "/health", headers={"X-Forwarded-For": "127.0.0.1"}, timeout=TIMEOUT).json()
    assert not {"pools", "web_process"} & set(claimed)
    # GEMSEO_HTTP_FORWARDED_ALLOW_IPS reaches uvicorn: a proxy it does not name is not believed.
    other = fresh_service(GEMSEO_HTTP_FORWARDED_ALLOW_IPS="192.0.2.1", worker=False)

    def sign_in(client):
        headers = {"X-Forwarded-For": client}
        return requests.post(other.url + "/token", data={"username": "bob", "password": "no"}, headers=headers, timeout=TIMEOUT)

    # Not believed, the forwarded addresses are all this machine's: one count for all.
    statuses = [sign_in(f"198.51.100.{index}").status_code for index in range(12)]
    assert statuses[-1] == 429, statuses


def test_sign_in_throttle_keys_on_the_forwarded_client(live):
    name = f"erin-{os.urandom(4).hex()}"  # a user of its own on the shared service
    live.add_user(name, "erin-pw")

    def sign_in(client, password):
        return requests.post(
            live.url + "/token",
            data={"username": name, "password": password},
            headers={"X-Forwarded-For": client},
            timeout=TIMEOUT,
        ).status_code

    statuses = [sign_in("198.51.100.1", "wrong") for _ in range(12)]
    assert statuses[-1] == 429, statuses
    # Another client behind the same proxy is not locked out.
    assert sign_in("198.51.100.2", "erin-pw") == 200


def test_an_expired_token_says_so(live, alice):
    token = alice.session.headers["Authorization"].split()[1]
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    mint = (
        "import auth, sys; print(auth.make_token({'id': int(sys.argv[1]), 'token_version': int(sys.argv[2])}, minutes=-1))"
    )
    expired = subprocess.run(
        [sys.executable, "-c", mint, payload["sub"], str(payload.get("ver", 0))],
        cwd=CODE, env=live.env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    response = requests.get(live.url + "/v1/user/me/", headers={"Authorization": f"Bearer {expired}"}, timeout=TIMEOUT)
    assert response.status_code == 401 and response.json()["detail"] == "The token has expired; sign in again at /token."
    forged = expired[:-4] + ("AAAA" if not expired.endswith("AAAA") else "BBBB")
    response = requests.get(live.url + "/v1/user/me/", headers={"Authorization": f"Bearer {forged}"}, timeout=TIMEOUT)
    assert response.status_code == 401 and response.json()["detail"] == "Not authenticated."


def test_a_short_secret_key_is_refused(tmp_path):
    env = dict(os.environ, GEMSEO_HTTP_ROOT_PATH=str(tmp_path), GEMSEO_HTTP_SECRET_KEY="changeme")
    result = subprocess.run(
        [sys.executable, "-c", "import auth; auth.secret_key()"], cwd=CODE, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "shorter than 32 characters" in result.stderr
    env["GEMSEO_HTTP_SECRET_KEY"] = "x" * 32
    assert subprocess.run([sys.executable, "-c", "import auth; auth.secret_key()"], cwd=CODE, env=env).returncode == 0


def test_request_counts_are_not_lost_to_a_flush(monkeypatch):
    import metrics

    written = []

    def slow_add(counts):
        written.append(sum(counts.values()))
        time.sleep(0.0005)  # a store write: the loop goes on counting meanwhile

    monkeypatch.setattr(metrics.store, "add_request_counts", slow_add)

    class Counter(metrics.Counter):
        def __missing__(self, key):
            time.sleep(0.0002)  # a thread switch inside `counts[key] += 1`, made likely
            return 0

    monkeypatch.setattr(metrics, "Counter", Counter)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    counter = metrics.RequestCounter({})
    counting = metrics.CountRequests(app)
    scope = {"type": "http", "method": "GET", "app": SimpleNamespace(state=SimpleNamespace(counter=counter))}

    async def noop(message):
        pass

    async def many(n):
        for _ in range(n):
            await counting(scope, None, noop)

    stop = threading.Event()

    def flusher():
        while not stop.is_set():
            counter.flush()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so a flush lands inside an increment
    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        asyncio.run(many(20_000))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(switch)
    counter.flush()
    assert sum(written) == 20_000


def test_cancels_wait_on_the_event_loop(live, alice):
    """Sixty cancels of a job whose runner is stopped hold no thread each while they wait."""
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [30.0]})
    deadline = time.monotonic() + 60
    while alice.get(f"/v1/job/{job['id']}").json()["job_status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(live.worker.pid, signal.SIGSTOP)  # its runner cannot see the cancel meanwhile
    try:
        latencies = []
        with ThreadPoolExecutor(60) as clients:
            answers = [clients.submit(alice.post, f"/v1/job/{job['id']}/cancel") for _ in range(60)]
            while not all(answer.done() for answer in answers):
                started = time.monotonic()
                assert alice.get(f"/v1/job/{job['id']}").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.05)
        assert all(answer.result().status_code == 200 for answer in answers)
    finally:
        os.kill(live.worker.pid, signal.SIGCONT)
    # Waiting in threads, the cancels filled Starlette's 40 and a read waited about 3 s for one.
    assert max(latencies) < 2.0, latencies
    assert alice.wait(job["id"])["error"] == "cancelled"


def test_jobs_can_leave_out_one_error_kind(alice):
    failing = alice.run("Failing", input_data={"x": [1.5]})
    pending = alice.run("Sleeper", "asynchronous", input_data={"duration": [30.0]})
    alice.post(f"/v1/job/{pending['id']}/cancel")
    listed = alice.get("/v1/job?status=failed&not_error=cancelled&limit=1000")
    errors = {job["id"]: job["error"] for job in listed.json()}
    assert failing["id"] in errors and pending["id"] not in errors and "cancelled" not in errors.values()
    cancelled = int(alice.get("/v1/job?status=failed&error=cancelled&limit=1").headers["X-Total-Count"])
    failed = int(alice.get("/v1/job?status=failed&limit=1").headers["X-Total-Count"])
    assert int(listed.headers["X-Total-Count"]) == failed - cancelled
