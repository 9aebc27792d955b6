"""The results cache and provenance (issue 19, API.md Part 5): hits, the key's parts, scopes,
what is never reused, single flight, batches, the job list filter, metrics, the admin command."""

import hashlib
import importlib.metadata
import importlib.util
import itertools
import platform
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

import conftest
from conftest import PLUGINS, TIMEOUT, start_service
from study_specs import analytic_spec
from test_ui import browser  # noqa: F401 (a fixture)
from test_api import upload
from test_batches import points, stamp, submit, wait_batch
from test_faults import wait_status

# The cache's lookups and records are SQL of each store; the queue plays no part in them.
BACKENDS = ("sqlite", "postgresql")
GEMSEO_VERSION = importlib.metadata.version("gemseo")
WORKER_HOST = "gaas-cache-worker"
PLUGIN_FILE = PLUGINS / "gaas_test_disciplines.py"
EDITED_PLUGIN = '''"""A plugin of tests/test_cache.py, edited in place between two starts of its service."""

from gemseo.core.discipline import Discipline
from numpy import array


class Tripler(Discipline):
    def __init__(self, name=""):
        super().__init__(name)
        self.io.input_grammar.update_from_names(["x"])
        self.io.output_grammar.update_from_names(["y"])
        self.io.input_grammar.defaults = {"x": array([1.0])}

    def _run(self, input_data):
        return {"y": input_data["x"] * 3}
'''

# Inputs no other test gives: the session's service is shared, and so is its cache. Steps of
# 1/1024 are exact in binary, so a value comes back from the store as it was sent.
_numbers = itertools.count(1)


def fresh():
    return 3.0 + 1 / 4096 + next(_numbers) / 1024


# Helpers


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def log(api, job):
    response = api.get(f"/v1/job/{job['id']}/log")
    assert response.status_code == 200, response.text
    return response.text


def names_job(text, job_id):
    return re.search(rf"\bjob {job_id}\b", text) is not None


def assert_ran(api, job):
    """The job ran itself: no cached_from, and its log has the run's own line."""
    assert job["job_status"] == "finished", job["traceback"]
    assert job["cached_from"] is None, job
    assert "run at" in log(api, job)


def assert_hit(api, job, source):
    """The job ended at once from source: its inputs, outputs, Jacobian and provenance; its own log."""
    assert job["job_status"] == "finished", job
    assert job["cached_from"] == source["id"]
    # input_data too: the complete inputs, defaults included, are the key's and the source's.
    for field in ("input_data", "output_data", "jacobian_data", "provenance"):
        assert job[field] == source[field], field
    text = log(api, job)
    assert names_job(text, source["id"]), text
    assert "run at" not in text  # its own log, not a copy of the source's


def cache_counts(service):
    """(hits, misses) from /metrics, summed over their samples."""
    text = requests.get(service.url + "/metrics", timeout=TIMEOUT).text
    found = []
    for name in ("gaas_cache_hits_total", "gaas_cache_misses_total"):
        values = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        assert values, f"no {name} in /metrics"
        found.append(sum(float(value) for value in values))
    return tuple(found)


def runs(service, x):
    """How many times SlowCounted ran at x on the service (its GAAS_TEST_RUNS file)."""
    path = Path(service.env["GAAS_TEST_RUNS"])
    return path.read_text().split().count(repr(x)) if path.exists() else 0


def wait_listed(api, path, timeout=120):
    """Poll a job list until it has an entry; return the entries."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = api.get(path).json()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"nothing listed at {path} in {timeout} s")


def cancel(api, job):
    assert api.post(f"/v1/job/{job['id']}/cancel").status_code == 200
    assert api.wait(job["id"])["error"] == "cancelled"


def provenance(job, class_name, host):
    """Check the fields every provenance has; return its discipline part."""
    found = job["provenance"]
    assert found is not None, job
    assert found["gemseo"] == GEMSEO_VERSION
    assert found["python"] == platform.python_version()
    assert found["host"] == host
    assert isinstance(found["gaas"], str) and found["gaas"]
    assert re.fullmatch("[0-9a-f]{64}", found["inputs_sha256"]), found
    assert found["discipline"]["class_name"] == class_name
    return found["discipline"]


def gemseo_source(module):
    """The file of a GEMSEO module, found without importing GEMSEO."""
    root = Path(importlib.util.find_spec("gemseo").submodule_search_locations[0])
    return root.joinpath(*module.split(".")[1:]).with_suffix(".py")


@pytest.fixture(scope="module")
def shared(tmp_path_factory, backend, backends):
    """A service with GEMSEO_HTTP_CACHE=shared, two uncached classes, SlowCounted's runs counted
    in a file, one warm process in its web app, and its worker on a simulated machine of its own
    (provenance names that host)."""
    root = tmp_path_factory.mktemp("cache-shared")
    service = start_service(
        root, worker=False, GEMSEO_HTTP_CACHE="shared", GEMSEO_HTTP_UNCACHED_DISCIPLINES="Timestamp,Printer",
        GEMSEO_HTTP_SYNC_PROCESSES=1, GAAS_TEST_RUNS=root / "runs", **backends.settings(backend),
    )
    host = None
    try:
        host = service.start_worker_on(WORKER_HOST)
        yield service
    finally:
        if host is not None:
            host.kill()
        service.close()


# 1. Hits, and what the key is made of (the session's service: scope "user")


@pytest.mark.every_backend
def test_an_identical_job_is_a_hit_of_the_job_that_ran(alice):
    body = {"input_data": {"x_1": [fresh()]}}
    source = alice.run("Sellar1", **body)
    assert source["job_status"] == "finished" and source["cached_from"] is None
    assert source["provenance"] is not None
    # Synchronous: 200 with the finished hit; name and timeout are not part of the key.
    hit = alice.run("Sellar1", name="another name", timeout=100, **body)
    assert hit["id"] != source["id"] and hit["name"] == "another name"
    assert_hit(alice, hit, source)
    assert alice.get(f"/v1/job/{hit['id']}").json()["cached_from"] == source["id"]
    # Asynchronous: 202 with the job already finished, from the job that ran, never from a hit.
    again = alice.run("Sellar1", "asynchronous", **body)
    assert_hit(alice, again, source)
    assert hit["provenance"]["inputs_sha256"] == source["provenance"]["inputs_sha256"]


def test_an_input_given_equal_to_its_default_is_the_same_point(alice):
    y_2 = [fresh() / 4]
    source = alice.run("Sellar1", input_data={"y_2": y_2})
    assert source["input_data"]["x_1"] == [0.0] and source["cached_from"] is None
    assert_hit(alice, alice.run("Sellar1", input_data={"y_2": y_2, "x_1": [0.0]}), source)


def test_each_part_of_the_key_changed_is_a_miss(alice):
    x = fresh()
    base = {"input_data": {"x_1": [x]}, "discipline_options": {"n": 1, "k": 1.0}}
    source = alice.run("Sellar1", **base)
    assert source["job_status"] == "finished" and source["cached_from"] is None
    # discipline_options compare as canonical JSON: another key order is the same options.
    assert_hit(alice, alice.run("Sellar1", **{**base, "discipline_options": {"k": 1.0, "n": 1}}), source)
    linearized = dict(base, linearize=True)
    changes = {
        "another input": {**base, "input_data": {"x_1": [x + 1 / 2048]}},
        "other options": {**base, "discipline_options": {"n": 1, "k": 2.0}},
        "the job type": linearized,
        "linearization_mode": dict(linearized, linearization_mode="finite_differences"),
        "linearize_options": dict(linearized, linearize_options={"compute_all_jacobians": True}),
        "differentiated_inputs": dict(linearized, differentiated_inputs=["x_1"]),
        "differentiated_outputs": dict(linearized, differentiated_outputs=["y_1"]),
    }
    missed = {part: alice.run("Sellar1", **body) for part, body in changes.items()}
    for part, job in missed.items():
        assert job["job_status"] == "finished", (part, job["traceback"])
        assert job["cached_from"] is None, part
    # The linearised job is a source of its own, Jacobian included.
    first = missed["the job type"]
    assert first["job_type"] == "execute_and_linearize" and first["jacobian_data"]["y_1"]["x_1"]
    assert_hit(alice, alice.run("Sellar1", **linearized), first)


def test_cache_false_always_runs(alice):
    body = {"input_data": {"x": [fresh()]}}
    source = alice.run("Counted", **body)
    assert_ran(alice, source)
    assert_ran(alice, alice.run("Counted", cache=False, **body))
    ran = alice.wait(alice.run("Counted", "asynchronous", cache=False, **body)["id"])
    assert_ran(alice, ran)


@pytest.mark.every_backend
def test_scope_user_never_hits_another_users_job(alice, bob):
    body = {"input_data": {"x": [fresh()]}}
    source = alice.run("Counted", **body)
    assert_ran(alice, source)
    theirs = bob.run("Counted", **body)
    assert_ran(bob, theirs)
    assert_hit(bob, bob.run("Counted", **body), theirs)
    # Nor waits for another user's identical job in flight: it runs too.
    slow = {"input_data": {"x": [fresh()], "delay": [1.0]}}
    running = wait_status(alice, alice.run("SlowCounted", "asynchronous", **slow)["id"], "running", timeout=120)
    assert_ran(bob, bob.wait(bob.run("SlowCounted", "asynchronous", **slow)["id"]))
    assert_ran(alice, alice.wait(running["id"]))


@pytest.mark.every_backend
def test_a_failed_job_is_never_reused(alice):
    body = {"input_data": {"x": [fresh()]}}
    for _ in range(2):
        job = alice.run("Failing", **body)
        assert job["job_status"] == "failed" and job["cached_from"] is None
        assert f"the model diverged at x={body['input_data']['x'][0]}" in job["traceback"]


# 2. Batches


@pytest.mark.every_backend
def test_a_batch_runs_a_repeated_point_once(alice):
    a, b = fresh(), fresh()
    batch = submit(alice, {"samples": [{"x": [a]}, {"x": [a]}, {"x": [b]}, {"x": [a]}]}, name="Counted")
    assert wait_batch(alice, batch["id"])["batch_status"] == "finished"
    jobs = [alice.get(f"/v1/job/{entry['id']}").json() for entry in sorted(points(alice, batch["id"]), key=lambda job: job["batch_index"])]
    assert [job["output_data"]["y"] for job in jobs] == [[2 * a], [2 * a], [2 * b], [2 * a]]
    at_a = [jobs[index] for index in (0, 1, 3)]
    (ran,) = [job for job in at_a if job["cached_from"] is None]
    assert all(job["cached_from"] == ran["id"] for job in at_a if job is not ran)
    assert jobs[2]["cached_from"] is None
    assert sum("run at" in log(alice, job) for job in jobs) == 2


@pytest.mark.every_backend
def test_a_batch_run_again_is_all_hits(alice):
    body = {"samples": [{"x": [fresh()]} for _ in range(3)]}
    first = submit(alice, body, name="Counted")
    assert wait_batch(alice, first["id"])["batch_status"] == "finished"
    second = submit(alice, body, name="Counted")
    # Its points ended at once: no waiting for it.
    assert alice.get(f"/v1/batch/{second['id']}").json()["batch_status"] == "finished"
    sources = {job["batch_index"]: job["id"] for job in points(alice, first["id"])}
    for entry in points(alice, second["id"]):
        job = alice.get(f"/v1/job/{entry['id']}").json()
        assert job["job_status"] == "finished" and job["cached_from"] == sources[job["batch_index"]]
    results = [alice.get(f"/v1/batch/{batch['id']}/results").json() for batch in (first, second)]
    assert results[0]["output_data"] == results[1]["output_data"]
    # "cache": false in a batch runs every point.
    third = submit(alice, dict(body, cache=False), name="Counted")
    assert wait_batch(alice, third["id"])["batch_status"] == "finished"
    for entry in points(alice, third["id"]):
        assert_ran(alice, alice.get(f"/v1/job/{entry['id']}").json())


@pytest.mark.every_backend
def test_a_batch_mixing_hits_new_and_repeated_points_keeps_their_order(alice):
    a, b, c = fresh(), fresh(), fresh()
    source = alice.run("Counted", input_data={"x": [a]})
    samples = [a, b, a, c, b, a]
    batch = submit(alice, {"samples": [{"x": [x]} for x in samples]}, name="Counted")
    # The hits ended in the submit itself.
    assert batch["n_samples"] == 6 and batch["counts"]["finished"] >= 3
    ended = wait_batch(alice, batch["id"])
    assert ended["batch_status"] == "finished" and ended["counts"]["finished"] == 6
    jobs = sorted((alice.get(f"/v1/job/{entry['id']}").json() for entry in points(alice, batch["id"])), key=lambda job: job["batch_index"])
    assert [job["batch_index"] for job in jobs] == list(range(6))
    assert [(job["input_data"]["x"], job["output_data"]["y"]) for job in jobs] == [([x], [2 * x]) for x in samples]
    for index in (0, 2, 5):
        assert_hit(alice, jobs[index], source)
    assert_ran(alice, jobs[1])  # the first b and c run; the second b takes the first's results
    assert_ran(alice, jobs[3])
    assert_hit(alice, jobs[4], jobs[1])
    results = alice.get(f"/v1/batch/{batch['id']}/results").json()
    assert results["job_id"] == [job["id"] for job in jobs]
    assert results["input_data"]["x"] == [[x] for x in samples]


# 3. Seeing the cache: the job list, metrics, the admin command


@pytest.mark.every_backend
def test_the_job_list_filters_hits(alice):
    source = alice.run("Counted", input_data={"x": [fresh()]})
    hit = alice.run("Counted", input_data={"x": source["input_data"]["x"]})
    assert hit["cached_from"] == source["id"]
    listed = {}
    for cached in ("true", "false"):
        response = alice.get(f"/v1/job?cached={cached}&limit=100")
        assert response.status_code == 200, response.text
        listed[cached] = {job["id"] for job in response.json()}
    assert hit["id"] in listed["true"] and source["id"] not in listed["true"]
    assert source["id"] in listed["false"] and hit["id"] not in listed["false"]
    assert alice.get("/v1/job?cached=maybe").status_code == 422


def test_metrics_count_hits_and_misses(live, alice):
    body = {"input_data": {"x": [fresh()]}}
    hits, misses = cache_counts(live)
    source = alice.run("Counted", **body)
    alice.run("Counted", **body)
    alice.wait(alice.run("Counted", "asynchronous", **body)["id"])
    alice.run("Counted", cache=False, **body)  # ran, but not with the cache on: not a miss
    assert source["cached_from"] is None
    assert cache_counts(live) == (hits + 2, misses + 1)


@pytest.mark.every_backend
def test_admin_cache_clear(live, alice):
    counted = {"input_data": {"x": [fresh()]}}
    sellar = {"input_data": {"x_1": [fresh()]}}
    sources = {name: alice.run(name, **body) for name, body in (("Counted", counted), ("Sellar1", sellar))}
    result = live.admin("cache", "clear", "--class", "Counted")
    assert result.returncode == 0, result.stderr
    hits, misses = cache_counts(live)
    assert_ran(alice, alice.run("Counted", **counted))
    assert alice.run("Sellar1", **sellar)["cached_from"] == sources["Sellar1"]["id"]
    assert cache_counts(live) == (hits + 1, misses + 1)
    result = live.admin("cache", "clear")
    assert result.returncode == 0, result.stderr
    again = alice.run("Sellar1", **sellar)
    assert again["job_status"] == "finished" and again["cached_from"] is None


# 4. Scope "shared", uncached classes, single flight, never-reused kinds (counted runs)


@pytest.mark.every_backend
def test_scope_shared_hits_another_users_job(shared):
    alice, bob = shared.api("alice", "alice-pw"), shared.api("bob", "bob-pw")
    body = {"input_data": {"x": [fresh()]}}
    source = alice.run("Counted", **body)
    assert_ran(alice, source)
    assert_hit(bob, bob.run("Counted", **body), source)


def test_uncached_disciplines_always_run(shared):
    alice = shared.api("alice", "alice-pw")
    stamped = {"x": [fresh()]}
    stamps = [alice.run("Timestamp", input_data=stamped) for _ in range(2)]
    assert [job["cached_from"] for job in stamps] == [None, None]
    assert stamps[0]["output_data"]["t"] < stamps[1]["output_data"]["t"]
    printed = {"x": [fresh()]}
    for job in [alice.run("Printer", input_data=printed) for _ in range(2)]:
        assert job["cached_from"] is None and "python says hello" in log(alice, job)
    # The other classes are still cached on this service.
    body = {"input_data": {"x_1": [fresh()]}}
    source = alice.run("Sellar1", **body)
    assert_hit(alice, alice.run("Sellar1", **body), source)


def test_a_synchronous_hit_takes_no_warm_process(shared):
    alice, other = shared.api("alice", "alice-pw"), shared.api("alice", "alice-pw")
    body = {"input_data": {"x_1": [fresh()]}}
    source = alice.run("Sellar1", **body)
    busy = f"busy {fresh()}"
    with ThreadPoolExecutor(1) as thread:
        # The web app's one warm process runs this meanwhile.
        holding = thread.submit(other.run, "SlowCounted", name=busy, input_data={"x": [fresh()], "delay": [3.0]})
        (running,) = wait_listed(alice, f"/v1/job?name={busy}&status=running")
        assert_hit(alice, alice.run("Sellar1", **body), source)
        assert alice.get(f"/v1/job/{running['id']}").json()["job_status"] == "running"
        assert holding.result()["job_status"] == "finished"


@pytest.mark.every_backend
def test_a_synchronous_run_identical_to_a_running_job_takes_its_results(shared):
    """A warm process free: the lookup is made in the write that would start the job
    (store.create_synchronous_job), finds the identical job running, and waits for its end."""
    alice, bob = shared.api("alice", "alice-pw"), shared.api("bob", "bob-pw")
    x = fresh()
    body = {"input_data": {"x": [x], "delay": [1.5]}}
    hits, misses = cache_counts(shared)
    leader = alice.run("SlowCounted", "asynchronous", name=f"leader {x}", **body)
    wait_listed(alice, f"/v1/job?status=running&name=leader {x}")
    job = bob.run("SlowCounted", **body)
    assert job["job_status"] == "finished" and job["cached_from"] == leader["id"]
    assert job["output_data"] == {"y": [2 * x]} and runs(shared, x) == 1
    assert cache_counts(shared) == (hits + 1, misses + 1)
    # And once it ended, a synchronous hit from the same write.
    again = bob.run("SlowCounted", **body)
    assert again["cached_from"] == leader["id"] and runs(shared, x) == 1
    assert cache_counts(shared) == (hits + 2, misses + 1)


@pytest.mark.every_backend
def test_a_burst_of_identical_jobs_runs_once(shared):
    """Eight asynchronous submits at once, by two users (scope shared): one run, seven hits that
    end as soon as it does."""
    apis = [shared.api("alice", "alice-pw"), shared.api("bob", "bob-pw")]
    x = fresh()
    hits, misses = cache_counts(shared)
    submitted = [apis[index % 2].run("SlowCounted", "asynchronous", input_data={"x": [x], "delay": [1.5]}) for index in range(8)]
    jobs = [apis[index % 2].wait(job["id"]) for index, job in enumerate(submitted)]
    assert runs(shared, x) == 1
    (ran,) = [job for job in jobs if job["cached_from"] is None]
    for job in jobs:
        assert job["job_status"] == "finished" and job["output_data"] == {"y": [2 * x]}
        if job is not ran:
            assert job["cached_from"] == ran["id"] and job["provenance"] == ran["provenance"]
    ends = [stamp(job["ended_at"]) for job in jobs]
    assert min(ends) >= stamp(ran["ended_at"]) and max(ends) - stamp(ran["ended_at"]) < 5
    assert cache_counts(shared) == (hits + 7, misses + 1)


@pytest.mark.every_backend
def test_jobs_waiting_on_one_that_fails_run_on_their_own(shared):
    alice = shared.api("alice", "alice-pw")
    x = -fresh()
    body = {"input_data": {"x": [x], "delay": [1.0]}}
    submitted = [alice.run("SlowCounted", "asynchronous", **body) for _ in range(2)]
    for job in submitted:
        ended = alice.wait(job["id"])
        assert ended["job_status"] == "failed" and ended["cached_from"] is None
        assert "no run at a negative x" in ended["traceback"]
    assert runs(shared, x) == 2


@pytest.mark.every_backend
@pytest.mark.parametrize("submitted", ["while it runs", "once it ended"])
def test_a_cancelled_job_is_never_reused(shared, submitted):
    """An identical job runs on its own, whether it waited on the cancelled one or came later."""
    alice = shared.api("alice", "alice-pw")
    x = fresh()
    body = {"input_data": {"x": [x], "delay": [1.5]}}
    first = alice.run("SlowCounted", "asynchronous", **body)
    wait_status(alice, first["id"], "running", timeout=120)
    if submitted == "while it runs":
        second = alice.run("SlowCounted", "asynchronous", **body)
        assert second["job_status"] != "finished"
        cancel(alice, first)
    else:
        cancel(alice, first)
        second = alice.run("SlowCounted", "asynchronous", **body)
    ran = alice.wait(second["id"])
    assert ran["job_status"] == "finished" and ran["cached_from"] is None
    assert ran["output_data"] == {"y": [2 * x]} and runs(shared, x) == 2
    assert alice.run("SlowCounted", **body)["cached_from"] == ran["id"]


def test_a_timed_out_job_is_never_reused(shared):
    alice = shared.api("alice", "alice-pw")
    x = fresh()
    body = {"input_data": {"x": [x], "delay": [1.0]}}
    first = alice.wait(alice.run("SlowCounted", "asynchronous", timeout=0.3, **body)["id"])
    assert first["job_status"] == "failed" and first["error"] == "timeout"
    ran = alice.wait(alice.run("SlowCounted", "asynchronous", **body)["id"])
    assert ran["job_status"] == "finished" and ran["cached_from"] is None and runs(shared, x) == 2


# 5. Input and output files (ReadInput writes files: uncached on the session's service, see
# conftest.UNCACHED_PLUGINS, cached on this one)


def test_input_files_are_part_of_the_key_and_a_hit_has_copies_of_the_files(shared):
    alice = shared.api("alice", "alice-pw")
    content = f"cache test {fresh()}\n".encode()
    source = alice.run("ReadInput", input_files=[upload(alice, content, "input.txt")])
    assert source["job_status"] == "finished" and source["cached_from"] is None, source["traceback"]
    # The same content uploaded again, as another file record: the same point.
    hit = alice.run("ReadInput", input_files=[upload(alice, content, "input.txt")])
    assert_hit(alice, hit, source)
    assert hit["workdir"] != source["workdir"]
    tree = alice.get(f"/v1/job/{hit['id']}/files").json()
    assert tree == alice.get(f"/v1/job/{source['id']}/files").json() == {
        "gaas-job.log": None, "input.txt": None, "results": {"upper.txt": None}}
    upper = alice.get(f"/v1/job/{hit['id']}/files/download?filename=results/upper.txt")
    assert upper.status_code == 200 and upper.content == content.upper()
    # Another content of the same length: the same outputs, but not the same point.
    other = content.replace(b"cache", b"CACHE")
    missed = alice.run("ReadInput", input_files=[upload(alice, other, "input.txt")])
    assert missed["output_data"] == source["output_data"] and missed["cached_from"] is None


@pytest.mark.every_backend
def test_a_deleted_source_is_no_longer_hit_and_its_hits_keep_their_files(shared):
    alice = shared.api("alice", "alice-pw")
    content = f"deleted source {fresh()}\n".encode()
    body = {"input_files": [upload(alice, content, "input.txt")]}
    source = alice.run("ReadInput", **body)
    hit = alice.run("ReadInput", **body)
    assert_hit(alice, hit, source)
    assert alice.delete(f"/v1/job/{source['id']}").status_code == 204
    assert alice.get(f"/v1/job/{hit['id']}").json()["output_data"] == source["output_data"]
    upper = alice.get(f"/v1/job/{hit['id']}/files/download?filename=results/upper.txt")
    assert upper.status_code == 200 and upper.content == content.upper()
    # Nor is its hit offered in its place: the next one runs, and becomes the source.
    rerun = alice.run("ReadInput", **body)
    assert rerun["job_status"] == "finished" and rerun["cached_from"] is None
    assert_hit(alice, alice.run("ReadInput", **body), rerun)


# 6. Provenance, on the web app (synchronous) and on a worker host (asynchronous)


def run_here_and_there(alice, name, body):
    """The same point run synchronously, then asynchronously with the cache off (so that it
    runs on the worker); return both jobs."""
    here = alice.run(name, **body)
    queued = alice.run(name, "asynchronous", cache=False, **body)
    assert queued["provenance"] is None  # not run yet
    there = alice.wait(queued["id"])
    assert here["job_status"] == there["job_status"] == "finished"
    assert here["provenance"]["inputs_sha256"] == there["provenance"]["inputs_sha256"]
    return here, there


def test_provenance_of_a_gemseo_class(shared):
    alice = shared.api("alice", "alice-pw")
    body = {"input_data": {"x_1": [fresh()]}}
    here, there = run_here_and_there(alice, "Sellar1", body)
    discipline = provenance(here, "Sellar1", socket.gethostname())
    assert provenance(there, "Sellar1", WORKER_HOST) == discipline
    assert discipline["module"].startswith("gemseo.")
    assert discipline["distribution"] == f"gemseo {GEMSEO_VERSION}"
    # Its base classes are GEMSEO's: its own module's file alone.
    assert discipline["code_sha256"] == sha256(gemseo_source(discipline["module"]))
    # A hit carries the provenance of the job that computed it.
    hit = alice.run("Sellar1", **body)
    assert hit["provenance"] == alice.get(f"/v1/job/{hit['cached_from']}").json()["provenance"]
    other = alice.run("Sellar1", input_data={"x_1": [fresh()]})
    assert other["provenance"]["inputs_sha256"] != here["provenance"]["inputs_sha256"]


def test_provenance_of_a_plugin_class(shared):
    alice = shared.api("alice", "alice-pw")
    here, there = run_here_and_there(alice, "Counted", {"input_data": {"x": [fresh()]}})
    discipline = provenance(here, "Counted", socket.gethostname())
    assert provenance(there, "Counted", WORKER_HOST) == discipline
    assert discipline["module"] == "gaas_test_disciplines" and discipline["distribution"] is None
    assert discipline["code_sha256"] == sha256(PLUGIN_FILE)


# 7. Services of their own: a restart with a plugin edited meanwhile, the cache off


def test_across_a_restart_an_edited_plugin_is_a_miss_and_a_purged_source_is_gone(fresh_service, monkeypatch, tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    source = folder / "gaas_cache_plugin.py"
    source.write_text(EDITED_PLUGIN)
    monkeypatch.setattr(conftest, "PLUGINS", folder)  # the service's GEMSEO_PATH
    service = fresh_service(worker=False)  # the web app's processes run and fingerprint it
    alice = service.api("alice", "alice-pw")
    body = {"input_data": {"x": [fresh()]}}
    first = alice.run("Tripler", **body)
    assert first["output_data"] == {"y": [3 * body["input_data"]["x"][0]]} and first["cached_from"] is None
    assert provenance(first, "Tripler", socket.gethostname())["code_sha256"] == sha256(source)
    assert alice.run("Tripler", **body)["cached_from"] == first["id"]
    sellar = {"input_data": {"x_1": [fresh()]}}
    unchanged = alice.run("Sellar1", **sellar)
    service.stop_server()
    source.write_text(EDITED_PLUGIN + "# The same model: only its file changed.\n")
    service.start_server()
    edited = alice.run("Tripler", **body)
    assert edited["job_status"] == "finished" and edited["cached_from"] is None
    assert edited["provenance"]["discipline"]["code_sha256"] == sha256(source) != first["provenance"]["discipline"]["code_sha256"]
    assert alice.run("Tripler", **body)["cached_from"] == edited["id"]
    # The cache outlives the restart for the code that did not change...
    assert alice.run("Sellar1", **sellar)["cached_from"] == unchanged["id"]
    # ...until retention purges its source (ended before the restart: older than 0.00001 day).
    assert time.time() - stamp(unchanged["ended_at"]) > 0.00001 * 86400
    result = service.admin("purge", "--older-than", "0.00001")
    assert result.returncode == 0, result.stderr
    assert alice.get(f"/v1/job/{unchanged['id']}").status_code == 404
    assert alice.run("Sellar1", **sellar)["cached_from"] is None


def test_with_the_cache_off_every_job_runs(fresh_service):
    service = fresh_service(GEMSEO_HTTP_CACHE="off", worker=False)
    alice = service.api("alice", "alice-pw")
    before = cache_counts(service)
    body = {"input_data": {"x": [fresh()]}}
    for _ in range(2):
        job = alice.run("Counted", **body)
        assert_ran(alice, job)
        assert provenance(job, "Counted", socket.gethostname())["code_sha256"] == sha256(PLUGIN_FILE)
    assert cache_counts(service) == before


def test_a_studys_job_carries_the_provenance_of_its_disciplines(alice):
    response = alice.post("/v1/study", json=analytic_spec(n_samples=5), timeout=120)
    assert response.status_code == 202, response.text
    study_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while (study := alice.get(f"/v1/study/{study_id}?long_polling=true&long_polling_timeout=10").json())["study_status"] not in ("finished", "failed"):
        assert time.monotonic() < deadline, study
    assert study["study_status"] == "finished", study
    found = alice.get(f"/v1/job/{study['job_id']}").json()["provenance"]
    assert found["python"] == platform.python_version() and found["gemseo"] == importlib.metadata.version("gemseo")
    [discipline] = found["disciplines"]
    assert discipline["class_name"] == "AnalyticDiscipline" and discipline["distribution"].startswith("gemseo ")
    assert len(discipline["code_sha256"]) == 64


def test_the_dashboard_says_a_job_came_from_the_cache_and_shows_its_provenance(browser, live, alice):
    from selenium.webdriver.common.by import By
    from test_ui import open_job, screenshot, wait

    source = alice.run("Sellar1", input_data={"x_1": [fresh()]})
    hit = alice.run("Sellar1", input_data=source["input_data"])
    assert hit["cached_from"] == source["id"]
    page = open_job(browser, live, hit["id"])
    wait(browser).until(lambda _: page.find_elements(By.CSS_SELECTOR, "#provenance table"))
    note = page.find_element(By.ID, "cached-from")
    assert f"job #{source['id']}" in note.text
    assert note.find_element(By.TAG_NAME, "a").get_attribute("href").endswith(f"#/job/{source['id']}")
    facts = page.find_element(By.CSS_SELECTOR, "#provenance table").text
    code = source["provenance"]["discipline"]["code_sha256"]
    assert code in facts and source["provenance"]["inputs_sha256"] in facts and "gemseo " in facts
    browser.execute_script("document.getElementById('provenance').scrollIntoView()")
    screenshot(browser, "47-job-from-the-cache")
    assert "from cache" in wait(browser).until(lambda _: open_page_row(browser, live, hit["id"])).text


def open_page_row(browser, live, job_id):
    """The row of a job in the jobs list, once drawn."""
    from test_ui import open_page

    return open_page(browser, live, "#/jobs", f"tr[data-job='{job_id}']")


# The store's lookups, in this process on a store of their own


def keyed_store(backend, backends, tmp_path):
    """An empty store of that backend, schema made."""
    import store_postgres
    import store_sqlite

    url = backends.settings(backend).get("GEMSEO_HTTP_DATABASE_URL")
    made = store_postgres.PostgresStore(url) if url else store_sqlite.SqliteStore(tmp_path / "gaas.db")
    made.init()
    return made


def add_finished_points(target, user_id, n, tag):
    """n finished jobs with cache keys, 500 a batch; their keys."""
    keys = [hashlib.sha256(f"{tag}-{index}".encode()).hexdigest() + ":" + "c" * 64 for index in range(n)]
    batch = {"user_id": user_id, "name": "", "discipline_class_name": "Sellar1", "design": "{}", "input_names": "[]"}
    common = {"user_id": user_id, "discipline_class_name": "Sellar1", "job_type": "execute", "job_status": "pending", "execution_mode": "asynchronous"}
    for start in range(0, n, 500):
        chunk = keys[start : start + 500]
        batch_id, _, _ = target.create_batch(batch, common, ["{}"] * len(chunk), "/nonexistent/", keys=chunk)
        with target.transaction() as conn:
            conn.execute("UPDATE jobs SET job_status = 'finished' WHERE batch_id = ?", (batch_id,))
    return keys


@pytest.mark.every_backend
def test_a_lookup_of_many_keys_reads_the_keys_index_not_every_job(backend, backends, tmp_path):
    # Guards the lookups' use of the index of cache keys: from ten keys on, SQLite's planner
    # walked jobs_by_status instead (every finished job: a 200-point batch's submit took 20 ms
    # more on a store of 50,000 jobs, and grew with it); a lookup of one key can scan it all too.
    target = keyed_store(backend, backends, tmp_path)
    user_id = target.add_user("alice", "hash")
    known = add_finished_points(target, user_id, 500, "first")
    asked = known[:150] + [key.replace("c" * 64, "d" * 64) for key in known[150:200]] + [key[:16] + "e" * 113 for key in known[200:250]]
    found = target._cache_sources(target.connect(), asked)
    # Same prefix or same hash with other code: another key.
    assert sorted(found) == sorted(known[:150]) and {status for _, status in found.values()} == {"finished"}
    assert sorted(target.cached_evaluations(asked)) == sorted(known[:150])
    if backend == "sqlite":
        def steps():
            # SQLite's virtual machine steps, counted 100 at a time, of the real lookup.
            count = [0]
            conn = target.connect()
            conn.set_progress_handler(lambda: count.__setitem__(0, count[0] + 1), 100)
            try:
                target._cache_sources(conn, asked)
                target.cached_evaluations(asked)
                target._cache_sources(conn, asked[:1])  # one key: its plan differs
            finally:
                conn.set_progress_handler(None, 100)
            return count[0]

        small = steps()
        add_finished_points(target, user_id, 5_000, "more")
        # Eleven times the jobs: the same probes (old plan: about ten times the steps).
        assert steps() < 1.5 * small + 10, (small, steps())
    else:
        add_finished_points(target, user_id, 5_000, "more")
        with target.transaction() as conn:
            conn.execute("ANALYZE jobs")
        # Twenty keys: for 250, reading 5,500 jobs is what PostgreSQL's costs prefer, rightly.
        where, params = target._keys_condition(asked[:20])
        sql = f"EXPLAIN SELECT id FROM jobs WHERE {where} AND cached_from IS NULL AND job_status IN ('pending', 'running', 'finished')"
        plan = "\n".join(row[0] for row in target.connect().execute(sql, params))
        assert "jobs_by_cache_key" in plan and "Seq Scan" not in plan, plan


@pytest.mark.every_backend
def test_the_end_of_a_job_reads_whether_identical_jobs_wait_for_it(backend, backends, tmp_path):
    # Guards store.set_statuses_and_read's waited_for, read in the end's own write: without it,
    # jobs waiting for this one would wait for the sweep instead of ending with it.
    import store

    target = keyed_store(backend, backends, tmp_path)
    user_id = target.add_user("alice", "hash")
    fields = {"user_id": user_id, "discipline_class_name": "Sellar1", "job_type": "execute", "job_status": "pending",
              "execution_mode": "asynchronous", "input_data": "{}", "cache_key": "k" * 64 + ":" + "c" * 64}
    leader, alone = (target.create_job(dict(fields, cache_key=key), "/nonexistent/")["id"] for key in (fields["cache_key"], None))
    waiter = target.create_job(fields, "/nonexistent/", lookup=True)
    assert waiter["waits_for"] == leader
    for job_id in (leader, alone):
        assert target.set_statuses([store.Move(job_id, "running", ("pending",), None, {"owner": "me"})]) == [True]
    end = store.Move(leader, "finished", ("running",), {"owner": "me"}, {"output_data": "{}"})
    assert target.set_statuses_and_read([end], None, leader) == ([True], None, True)
    end = store.Move(alone, "finished", ("running",), {"owner": "me"}, {"output_data": "{}"})
    moved, row, waiting = target.set_statuses_and_read([end], alone, alone)
    assert (moved, row["job_status"], waiting) == ([True], "finished", False)
