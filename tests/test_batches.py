"""Batches (API.md Part 3): many points of one discipline in one request, each an ordinary job."""

import csv
import io
import re
import signal
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pytest

# Batches record their points and tasks in one transaction when the queue is in PostgreSQL.
BACKENDS = ("sqlite", "postgresql")

SPACE = {
    "x_1": {"lower_bound": [0.0], "upper_bound": [10.0]},
    "x_shared": {"lower_bound": [-10.0, 0.0], "upper_bound": [10.0, 10.0]},
}
SELLAR1_INPUTS = ("x_1", "x_shared", "y_2", "gamma")
ENDED = ("finished", "failed")


# Helpers


def submit(api, body, name="Sellar1"):
    response = api.post(f"/v1/discipline/{name}/batch", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def wait_batch(api, batch_id, timeout=60):
    """Long-poll a batch until every point has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wait = max(0.1, min(30, deadline - time.monotonic()))
        asked = time.monotonic()
        response = api.get(f"/v1/batch/{batch_id}?long_polling=true&long_polling_timeout={wait:.1f}", timeout=wait + 30)
        assert response.status_code == 200, response.text
        batch = response.json()
        if batch["batch_status"] in ENDED:
            return batch
        # Not ended: the long poll must have waited its whole timeout.
        assert time.monotonic() - asked >= wait - 0.2, (wait, batch)
    raise AssertionError(f"batch {batch_id} did not end in {timeout} s: {batch}")


def wait_until(api, batch_id, condition, timeout=60, what="condition"):
    """Poll a batch until condition(batch) holds; return the batch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = api.get(f"/v1/batch/{batch_id}").json()
        if condition(batch):
            return batch
        time.sleep(0.02)
    raise AssertionError(f"batch {batch_id}: {what} never held: {batch}")


def points(api, batch_id):
    response = api.get(f"/v1/job?batch_id={batch_id}&limit=1000")
    assert response.status_code == 200, response.text
    return response.json()


def totals(api):
    """The user's count of batches and of jobs."""
    batches = api.get("/v1/batch?limit=1")
    jobs = api.get("/v1/job?limit=1")
    assert batches.status_code == jobs.status_code == 200
    return int(batches.headers["X-Total-Count"]), int(jobs.headers["X-Total-Count"])


def stamp(text):
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@lru_cache(maxsize=None)
def sellar1():
    import gemseo

    return gemseo.create_discipline("Sellar1")


def local_run(inputs, linearize=False):
    """Sellar1 run in this process: (every input as run, outputs[, Jacobian])."""
    from numpy import array

    discipline = sellar1()
    data = discipline.execute({name: array(value, dtype=float) for name, value in inputs.items()})
    ran = {name: data[name].tolist() for name in SELLAR1_INPUTS}
    outputs = {"y_1": data["y_1"].tolist()}
    if not linearize:
        return ran, outputs
    jacobian = discipline.linearize({name: array(value, dtype=float) for name, value in ran.items()}, compute_all_jacobians=True)
    dense = {out: {name: (matrix.toarray() if hasattr(matrix, "toarray") else matrix).tolist() for name, matrix in row.items()} for out, row in jacobian.items()}
    return ran, outputs, dense


def local_doe(algo_name, n_samples, settings):
    """The points GEMSEO computes in this process for the DOE over SPACE."""
    from gemseo import compute_doe, create_design_space

    space = create_design_space()
    for name, bounds in SPACE.items():
        space.add_variable(name, len(bounds["lower_bound"]), lower_bound=bounds["lower_bound"], upper_bound=bounds["upper_bound"])
    samples = compute_doe(space, algo_name=algo_name, n_samples=n_samples, **settings)
    return [{"x_1": [float(row[0])], "x_shared": [float(row[1]), float(row[2])]} for row in samples]


def check_batch_entry(batch, n, user_id, name="Sellar1"):
    assert {"id", "name", "discipline_class_name", "user_id", "n_samples", "counts", "batch_status", "created_at", "ended_at"} <= set(batch)
    assert batch["n_samples"] == n
    assert batch["discipline_class_name"] == name
    assert batch["user_id"] == user_id
    assert set(batch["counts"]) == {"pending", "running", "finished", "failed"}
    assert sum(batch["counts"].values()) == n
    assert batch["batch_status"] in ("pending", "running", "finished", "failed")


def csv_header(table):
    """The expected CSV columns of a results table: inputs then outputs, one per component."""
    header = []
    for group in ("input_data", "output_data"):
        for name, values in table[group].items():
            size = max(len(value) for value in values if value is not None)
            header += [name] if size == 1 else [f"{name}[{i}]" for i in range(size)]
    return header


def check_whole_batch(api, batch, expected_points, expected_inputs):
    """Every route of a finished batch against the points computed here.

    expected_points: for each point, the inputs as given (shared values with the point's over them);
    expected_inputs: the names the CSV must hold before the outputs."""
    n = len(expected_points)
    me = api.get("/v1/user/me/").json()
    check_batch_entry(batch, n, me["id"])

    # The list names it, newest first.
    listed = api.get("/v1/batch?limit=5")
    assert listed.status_code == 200
    assert int(listed.headers["X-Total-Count"]) >= 1
    assert batch["id"] in [entry["id"] for entry in listed.json()]
    assert listed.json()[0]["id"] == batch["id"]

    # A long poll answers once every point has ended (the first points of a new service may wait
    # for its job processes to start: then a poll waits out its 30 s and answers unfinished).
    deadline = time.monotonic() + 120
    while True:
        asked, asked_at = time.monotonic(), time.time()
        response = api.get(f"/v1/batch/{batch['id']}?long_polling=true&long_polling_timeout=30", timeout=90)
        assert response.status_code == 200
        ended = response.json()
        if ended["batch_status"] in ENDED:
            break
        assert time.monotonic() - asked >= 29.8, ended
        assert time.monotonic() < deadline, ended
    assert ended["batch_status"] == "finished", ended
    if stamp(ended["ended_at"]) > asked_at:  # it ended while the poll waited: the answer came then
        assert time.time() - stamp(ended["ended_at"]) < 2.0, ended
    assert ended["counts"] == {"pending": 0, "running": 0, "finished": n, "failed": 0}
    assert ended["ended_at"] is not None
    check_batch_entry(ended, n, me["id"])

    local = [local_run(point) for point in expected_points]

    # Results as JSON: the table in batch_index order, equal to the local runs.
    response = api.get(f"/v1/batch/{batch['id']}/results")
    assert response.status_code == 200, response.text
    table = response.json()
    assert set(table) == {"job_id", "job_status", "error", "input_data", "output_data"}
    assert table["job_status"] == ["finished"] * n
    assert table["error"] == [""] * n
    # The columns are the inputs the request gave (shared or per point), as in a DOE dataset.
    given = {name for point in expected_points for name in point}
    assert set(table["input_data"]) == given
    assert set(table["output_data"]) == {"y_1"}
    for index, (ran, outputs) in enumerate(local):
        for name in given:
            assert table["input_data"][name][index] == pytest.approx(ran[name], rel=1e-12), (index, name)
        assert table["output_data"]["y_1"][index] == pytest.approx(outputs["y_1"], rel=1e-12), index
        for name, value in expected_points[index].items():
            assert table["input_data"][name][index] == pytest.approx(value, rel=1e-12), (index, name)

    # The points as jobs, in batch_index order.
    listed = api.get(f"/v1/job?batch_id={batch['id']}")
    assert listed.status_code == 200
    assert int(listed.headers["X-Total-Count"]) == n
    jobs = listed.json()
    assert [job["batch_index"] for job in jobs] == list(range(n))
    assert all(job["batch_id"] == batch["id"] for job in jobs)
    assert [job["id"] for job in jobs] == table["job_id"]
    for index, entry in enumerate(jobs):
        job = api.get(f"/v1/job/{entry['id']}").json()
        assert job["batch_id"] == batch["id"] and job["batch_index"] == index
        assert job["job_status"] == "finished"
        for name, value in expected_points[index].items():
            assert job["input_data"][name] == pytest.approx(value, rel=1e-12), (index, name)
        assert job["output_data"]["y_1"] == pytest.approx(local[index][1]["y_1"], rel=1e-12)

    # Results as CSV: the same table, inputs before outputs.
    response = api.get(f"/v1/batch/{batch['id']}/results?format=csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    header, rows = rows[0], rows[1:]
    assert header[:4] == ["batch_index", "job_id", "job_status", "error"]
    assert header[4:] == csv_header(table)
    assert set(header[4:-1]) == set(expected_inputs) and header[-1] == "y_1"
    assert len(rows) == n
    for index, row in enumerate(rows):
        cells = dict(zip(header, row))
        assert int(cells["batch_index"]) == index
        assert int(cells["job_id"]) == table["job_id"][index]
        assert cells["job_status"] == "finished" and cells["error"] == ""
        ran, outputs = local[index]
        for name, values in {**{name: ran[name] for name in table["input_data"]}, **outputs}.items():
            for component, value in enumerate(values):
                column = name if len(values) == 1 else f"{name}[{component}]"
                assert float(cells[column]) == pytest.approx(value, rel=1e-12), (index, column)
    return table


# 1. Every route, with samples and with a DOE


@pytest.mark.every_backend
def test_batch_of_samples(alice):
    shared = {"gamma": [0.3], "y_2": [2.0]}
    samples = [{"x_1": [1.0]}, {"x_1": [2.0], "gamma": [0.5]}, {"x_shared": [2.0, 1.0]}, {"x_1": [4.0], "y_2": [3.0]}]
    before = totals(alice)
    batch = submit(alice, {"name": "samples", "input_data": shared, "samples": samples})
    assert batch["name"] == "samples"
    assert totals(alice) == (before[0] + 1, before[1] + len(samples))
    expected = [{**shared, **sample} for sample in samples]
    table = check_whole_batch(
        alice, batch, expected, ["x_1", "x_shared[0]", "x_shared[1]", "y_2", "gamma"]
    )
    # Shared values reach every point, a sample's values override them.
    assert table["input_data"]["gamma"] == [[0.3], [0.5], [0.3], [0.3]]
    assert table["input_data"]["y_2"] == [[2.0], [2.0], [2.0], [3.0]]


@pytest.mark.parametrize(
    "algo_name, n_samples, settings",
    [("PYDOE_LHS", 5, {"random_state": 1}), ("PYDOE_FULLFACT", 8, {}), ("OT_SOBOL", 4, {})],
)
def test_batch_of_a_doe(alice, algo_name, n_samples, settings):
    doe = {"algo_name": algo_name, "n_samples": n_samples, "design_space": SPACE}
    if settings:
        doe["settings"] = settings
    batch = submit(alice, {"input_data": {"gamma": [0.25]}, "doe": doe})
    expected_points = local_doe(algo_name, n_samples, settings)
    assert len(expected_points) == n_samples
    expected = [{"gamma": [0.25], **point} for point in expected_points]
    table = check_whole_batch(alice, batch, expected, ["x_1", "x_shared[0]", "x_shared[1]", "gamma"])
    # The DOE's inputs are the ones GEMSEO computes here.
    for index, point in enumerate(expected_points):
        assert table["input_data"]["x_1"][index] == pytest.approx(point["x_1"], rel=1e-12)
        assert table["input_data"]["x_shared"][index] == pytest.approx(point["x_shared"], rel=1e-12)
    assert table["input_data"]["gamma"] == [[0.25]] * n_samples


# 2. Validation before anything is recorded


def bad_doe(**changes):
    doe = {"algo_name": "PYDOE_LHS", "n_samples": 3, "design_space": SPACE}
    doe.update(changes)
    return {"doe": doe}


INVALID = {
    "unknown input in a sample": ({"samples": [{"x_1": [1.0]}, {"x_1": [1.0], "bogus": [1.0]}]}, "samples[1]"),
    "unknown shared input": ({"input_data": {"bogus": [1.0]}, "samples": [{"x_1": [1.0]}]}, "bogus"),
    "sample not an object": ({"samples": [{"x_1": [1.0]}, 3]}, "samples[1]"),
    "no samples": ({"samples": []}, "samples"),
    "samples not a list": ({"samples": {"x_1": [1.0]}}, "samples"),
    "both samples and doe": ({"samples": [{"x_1": [1.0]}], **bad_doe()}, "exactly one"),
    "neither samples nor doe": ({"input_data": {"x_1": [1.0]}}, "exactly one"),
    "unknown DOE algorithm": (bad_doe(algo_name="NO_SUCH_DOE"), "NO_SUCH_DOE"),
    "CustomDOE": (bad_doe(algo_name="CustomDOE"), "CustomDOE"),
    "bad settings": (bad_doe(settings={"bogus": 1}), "settings"),
    "lower above upper": (bad_doe(design_space={"x_1": {"lower_bound": [2.0], "upper_bound": [1.0]}}), "bounds"),
    "bounds of two lengths": (bad_doe(design_space={"x_shared": {"lower_bound": [0.0, 0.0], "upper_bound": [1.0]}}), "bounds"),
    "bounds not numbers": (bad_doe(design_space={"x_1": {"lower_bound": ["a"], "upper_bound": [1.0]}}), "lower_bound[0]"),
    "empty bounds": (bad_doe(design_space={"x_1": {"lower_bound": [], "upper_bound": []}}), "lower_bound"),
    "bounds missing": (bad_doe(design_space={"x_1": {"lower_bound": [0.0]}}), "upper_bound"),
    "unknown input in the design space": (bad_doe(design_space={"bogus": {"lower_bound": [0.0], "upper_bound": [1.0]}}), "bogus"),
    "empty design space": (bad_doe(design_space={}), "design_space"),
    "n_samples above the limit": (bad_doe(n_samples=10_001), "n_samples"),
    "n_samples zero": (bad_doe(n_samples=0), "n_samples"),
    "n_samples missing": ({"doe": {"algo_name": "PYDOE_LHS", "design_space": SPACE}}, "n_samples"),
    "unknown DOE field": (bad_doe(bogus=1), "bogus"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_batch_records_nothing(alice, case):
    body, words = INVALID[case]
    before = totals(alice)
    response = alice.post("/v1/discipline/Sellar1/batch", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and words in detail, detail
    assert totals(alice) == before


def test_unknown_discipline_batch(alice):
    before = totals(alice)
    response = alice.post("/v1/discipline/NoSuchDiscipline/batch", json={"samples": [{}]})
    assert response.status_code == 404
    assert "detail" in response.json()
    assert totals(alice) == before


def test_max_batch_samples(fresh_service):
    service = fresh_service(GEMSEO_HTTP_MAX_BATCH_SAMPLES=5, GEMSEO_HTTP_SYNC_PROCESSES=1, worker=False)
    alice = service.api("alice", "alice-pw")
    before = totals(alice)
    assert before == (0, 0)
    too_many = alice.post("/v1/discipline/Sellar1/batch", json={"samples": [{"x_1": [float(i)]} for i in range(6)]})
    assert too_many.status_code == 422
    assert "GEMSEO_HTTP_MAX_BATCH_SAMPLES" in too_many.json()["detail"] and "5" in too_many.json()["detail"]
    doe = alice.post("/v1/discipline/Sellar1/batch", json=bad_doe(n_samples=6))
    assert doe.status_code == 422 and "n_samples" in doe.json()["detail"]
    assert totals(alice) == before
    # At the limit, accepted.
    batch = submit(alice, {"samples": [{"x_1": [float(i)]} for i in range(5)]})
    assert batch["n_samples"] == 5 and batch["counts"]["pending"] == 5 and batch["batch_status"] == "pending"
    assert submit(alice, bad_doe(n_samples=5))["n_samples"] == 5
    assert totals(alice) == (2, 10)
    metrics = service.api("alice", "alice-pw").get("/metrics").text
    assert metric_value(metrics, "max_batch_samples") == 5


# 3. The pending-jobs limit


def metric_value(text, name):
    match = re.search(r'^gaas_limit\{name="%s"\} (\S+)$' % name, text, re.M)
    assert match, text
    return float(match.group(1))


@pytest.mark.every_backend
def test_max_pending_jobs(fresh_service):
    service = fresh_service(GEMSEO_HTTP_MAX_PENDING_JOBS=10, GEMSEO_HTTP_SYNC_PROCESSES=1, worker=False)
    alice = service.api("alice", "alice-pw")
    bob = service.api("bob", "bob-pw")
    first = submit(alice, {"samples": [{"x_1": [float(i)]} for i in range(8)]})
    assert first["counts"]["pending"] == 8
    before = totals(alice)
    for n in (5, 3):
        refused = alice.post("/v1/discipline/Sellar1/batch", json={"samples": [{"x_1": [1.0]}] * n})
        assert refused.status_code == 429, refused.text
        detail = refused.json()["detail"]
        assert "8" in detail and "10" in detail and "GEMSEO_HTTP_MAX_PENDING_JOBS" in detail, detail
    doe = alice.post("/v1/discipline/Sellar1/batch", json=bad_doe(n_samples=3))
    assert doe.status_code == 429
    assert totals(alice) == before
    # Single jobs count too: two fit, the third would pass the limit.
    for _ in range(2):
        alice.run("Sellar1", "asynchronous")
    single = alice.post("/v1/discipline/Sellar1/execute?execution_mode=asynchronous", json={})
    assert single.status_code == 429, single.text
    assert "GEMSEO_HTTP_MAX_PENDING_JOBS" in single.json()["detail"]
    assert totals(alice) == (before[0], before[1] + 2)
    # The limit is per user.
    assert submit(bob, {"samples": [{"x_1": [1.0]}] * 10})["n_samples"] == 10
    # Deleting the batch makes room again.
    assert alice.delete(f"/v1/batch/{first['id']}").status_code == 204
    assert submit(alice, {"samples": [{"x_1": [1.0]}] * 5})["n_samples"] == 5
    metrics = service.api("alice", "alice-pw").get("/metrics")
    assert metrics.status_code == 200
    assert metric_value(metrics.text, "max_batch_samples") == 10_000
    assert metric_value(metrics.text, "max_pending_jobs") == 10


# 4. Isolation


@pytest.mark.every_backend
def test_batch_isolation(alice, bob):
    batch = submit(alice, {"samples": [{"x_1": [1.0]}, {"x_1": [2.0]}]})
    wait_batch(alice, batch["id"])
    job_ids = [job["id"] for job in points(alice, batch["id"])]
    assert len(job_ids) == 2
    bob_before = totals(bob)
    for method, path in [
        ("GET", ""),
        ("GET", "?long_polling=true&long_polling_timeout=1"),
        ("GET", "/results"),
        ("GET", "/results?format=csv"),
        ("POST", "/cancel"),
        ("DELETE", ""),
    ]:
        response = bob.request(method, f"/v1/batch/{batch['id']}{path}")
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"]
    listed = bob.get(f"/v1/job?batch_id={batch['id']}")
    assert listed.status_code == 200 and listed.json() == [] and listed.headers["X-Total-Count"] == "0"
    assert batch["id"] not in [entry["id"] for entry in bob.get("/v1/batch?limit=1000").json()]
    for job_id in job_ids:
        for method, path in [("GET", ""), ("GET", "/files"), ("GET", "/log"), ("POST", "/cancel"), ("DELETE", "")]:
            assert bob.request(method, f"/v1/job/{job_id}{path}").status_code == 404, (job_id, path)
    assert totals(bob) == bob_before
    # Nothing bob did reached alice's batch.
    assert alice.get(f"/v1/batch/{batch['id']}").json()["batch_status"] == "finished"
    assert [job["id"] for job in points(alice, batch["id"])] == job_ids
    # Ids that name no batch.
    for missing in ("999999999", "0", "-1", "abc", str(2**70)):
        assert alice.get(f"/v1/batch/{missing}").status_code == 404, missing


# 5. Cancel while half done, then delete


@pytest.mark.every_backend
def test_cancel_then_delete_a_batch(live, alice):
    n = 12
    batch = submit(alice, {"samples": [{"duration": [0.5]} for _ in range(n)]}, name="Sleeper")
    wait_until(alice, batch["id"], lambda b: b["counts"]["finished"] >= 2, what="two points finished")
    before_cancel = {job["id"]: job for job in points(alice, batch["id"])}
    response = alice.post(f"/v1/batch/{batch['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["id"] == batch["id"] and cancelled["counts"]["pending"] == 0
    right_after = {job["id"]: job for job in points(alice, batch["id"])}
    never_started = [job_id for job_id, job in right_after.items() if job["started_at"] is None]
    was_pending = [job_id for job_id, job in before_cancel.items() if job["job_status"] == "pending"]
    # At most the two worker threads may have started a point between the two reads.
    assert len(never_started) >= len(was_pending) - 2 > 0, (before_cancel, right_after)
    ended = wait_batch(alice, batch["id"], timeout=30)
    assert ended["batch_status"] == "failed"
    assert ended["counts"]["pending"] == ended["counts"]["running"] == 0
    assert ended["counts"]["finished"] >= 2 and ended["counts"]["failed"] >= len(never_started)
    # Every task left in the queue is taken, and a job queued after them has run: a point that
    # the cancel left to run would have started by now.
    deadline = time.monotonic() + 30
    while live.queued():
        assert time.monotonic() < deadline, f"{live.queued()} tasks still queued"
        time.sleep(0.05)
    assert alice.wait(alice.run("WriteTag", "asynchronous", input_data={"tag": [1]})["id"])["job_status"] == "finished"
    final = {job["id"]: job for job in points(alice, batch["id"])}
    assert len(final) == n
    for job_id, job in final.items():
        assert job["job_status"] in ENDED, job
        if job["job_status"] == "failed":
            assert job["error"] == "cancelled", job
    for job_id in never_started:
        assert final[job_id]["started_at"] is None and final[job_id]["job_status"] == "failed", final[job_id]
        assert not Path(final[job_id]["workdir"]).exists()
    table = alice.get(f"/v1/batch/{batch['id']}/results").json()
    finished = [i for i, status in enumerate(table["job_status"]) if status == "finished"]
    assert all(table["output_data"]["slept"][i] == [0.5] for i in finished)
    assert all(table["output_data"]["slept"][i] is None for i in range(n) if i not in finished)
    assert alice.post(f"/v1/batch/{batch['id']}/cancel").json()["batch_status"] == "failed"

    # Delete: the batch, its jobs and their directories go.
    workdirs = [job["workdir"] for job in final.values()]
    assert any(Path(workdir).is_dir() for workdir in workdirs)
    before = totals(alice)
    assert alice.delete(f"/v1/batch/{batch['id']}").status_code == 204
    assert alice.get(f"/v1/batch/{batch['id']}").status_code == 404
    assert alice.get(f"/v1/batch/{batch['id']}/results").status_code == 404
    assert alice.delete(f"/v1/batch/{batch['id']}").status_code == 404
    assert totals(alice) == (before[0] - 1, before[1] - n)
    assert points(alice, batch["id"]) == []
    for job_id in final:
        assert alice.get(f"/v1/job/{job_id}").status_code == 404
    for workdir in workdirs:
        assert not Path(workdir).exists(), workdir


@pytest.mark.every_backend
def test_points_spread_over_workers(alice):
    """Part 3: "Points spread over all workers": with two worker threads, points overlap in time."""
    batch = submit(alice, {"samples": [{"duration": [1.0]} for _ in range(4)]}, name="Sleeper")
    wait_batch(alice, batch["id"], timeout=60)
    spans = sorted((stamp(job["started_at"]), stamp(job["ended_at"])) for job in points(alice, batch["id"]))
    overlapping = any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    assert overlapping, f"the points ran one after the other: {spans}"


# 6. Fairness


@pytest.mark.every_backend
def test_a_big_batch_does_not_starve_another_user(fresh_service):
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice = service.api("alice", "alice-pw")
    bob = service.api("bob", "bob-pw")
    # Warm the worker's processes first, so that their start is not counted against bob.
    warm = submit(alice, {"samples": [{"duration": [0.0]}] * 2}, name="Sleeper")
    wait_batch(alice, warm["id"], timeout=180)
    batch = submit(alice, {"samples": [{"duration": [0.5]} for _ in range(40)]}, name="Sleeper")
    wait_until(alice, batch["id"], lambda b: b["counts"]["running"] >= 2, what="both threads busy")
    started = time.monotonic()
    job = bob.run("Sleeper", "asynchronous", input_data={"duration": [0.5]})
    ended = bob.get(f"/v1/job/{job['id']}?long_polling=true&long_polling_timeout=10").json()
    elapsed = time.monotonic() - started
    assert ended["job_status"] == "finished", ended
    assert elapsed <= 1.6, f"bob's 0.5 s job took {elapsed:.2f} s behind alice's batch"
    progress = alice.get(f"/v1/batch/{batch['id']}").json()
    assert progress["counts"]["pending"] >= 20, progress
    assert alice.delete(f"/v1/batch/{batch['id']}").status_code == 204


# 7. A worker killed during a batch


@pytest.mark.every_backend
def test_worker_killed_during_a_batch(fresh_service):
    service = fresh_service(GEMSEO_HTTP_HEARTBEAT_TIMEOUT=3, GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice = service.api("alice", "alice-pw")
    n = 10
    batch = submit(alice, {"samples": [{"tag": [float(i)], "delay": [0.5]} for i in range(n)]}, name="WriteTag")
    wait_until(
        alice,
        batch["id"],
        lambda b: b["counts"]["finished"] >= 2 and b["counts"]["running"] >= 1,
        timeout=180,
        what="two points finished and one running",
    )
    service.worker.send_signal(signal.SIGKILL)
    service.worker.wait()
    killed = time.monotonic()
    service.start_worker()
    ended = wait_batch(alice, batch["id"], timeout=60)
    took = time.monotonic() - killed
    assert ended["counts"]["pending"] == ended["counts"]["running"] == 0
    jobs = points(alice, batch["id"])
    assert len(jobs) == n
    for job in jobs:
        assert job["job_status"] in ENDED, job
        if job["job_status"] == "failed":
            assert job["error"] == "lost", job
        else:
            full = alice.get(f"/v1/job/{job['id']}").json()
            assert full["output_data"] == {"echo": [float(job["batch_index"])]}
    assert any(job["error"] == "lost" for job in jobs), jobs
    assert ended["batch_status"] == "failed"
    assert took < 60


# 8. Linearize


@pytest.mark.every_backend
def test_batch_with_linearize(alice):
    samples = [{"x_1": [1.0]}, {"x_1": [3.0], "x_shared": [2.0, 1.0]}]
    batch = submit(alice, {"samples": samples, "linearize": True})
    assert wait_batch(alice, batch["id"])["batch_status"] == "finished"
    for index, entry in enumerate(points(alice, batch["id"])):
        job = alice.get(f"/v1/job/{entry['id']}").json()
        assert job["job_type"] == "execute_and_linearize"
        _, outputs, jacobian = local_run(samples[index], linearize=True)
        assert job["output_data"]["y_1"] == pytest.approx(outputs["y_1"])
        assert set(job["jacobian_data"]) == {"y_1"}
        assert set(SELLAR1_INPUTS) <= set(job["jacobian_data"]["y_1"]) == set(jacobian["y_1"])
        for name in jacobian["y_1"]:
            assert len(job["jacobian_data"]["y_1"][name]) == len(jacobian["y_1"][name]), name
            for got, want in zip(job["jacobian_data"]["y_1"][name], jacobian["y_1"][name]):
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), name
