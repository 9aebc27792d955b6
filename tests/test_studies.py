"""Studies end to end (API.md Part 4): a whole scenario run as one job by the real web app and
worker, its history live through long polling, its refusals, isolation and stops."""

import csv
import functools
import io
import itertools
import json
import time

import pytest
from gemseo import create_discipline, create_scenario
from gemseo.algos.optimization_problem import OptimizationProblem
from gemseo.problems.mdo.sobieski.core.design_space import SobieskiDesignSpace

from sellar import SELLAR, sellar_scenario
from study_specs import analytic_spec, log_doe, sellar_spec, sleeper_spec, space_of

# Studies record their job and its task in one transaction when the queue is in PostgreSQL.
BACKENDS = ("sqlite", "postgresql")
ENDED = ("finished", "failed")
_users = itertools.count(1)
PASSWORD = "study-pw"


@pytest.fixture
def service(live):
    """The session's service, for the tests that neither stop nor break it; each test has its own user."""
    return live


@functools.cache
def password_hash():
    import auth

    return auth.hash_password(PASSWORD)


def new_user(service):
    """A user of its own, written into the store at once (gaas-admin costs a process start)."""
    name = f"studier{next(_users)}"  # not a name other modules give on the shared service
    service.sql("INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)", (name, password_hash(), time.time()))
    return service.api(name, PASSWORD)


@pytest.fixture
def api(service):
    return new_user(service)


def submit(api, spec, status=202):
    response = api.post("/v1/study", json=spec, timeout=120)
    assert response.status_code == status, response.text
    return response.json()


def wait_study(api, study_id, timeout=120):
    """Long-poll a study until it ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = api.get(f"/v1/study/{study_id}?long_polling=true&long_polling_timeout=10").json()
        if found["study_status"] in ENDED:
            return found
    raise AssertionError(f"study {study_id} did not end in {timeout} s")


def follow(api, study_id, timeout=120):
    """Read a study's history live, by long polls from the last evaluation seen; return every
    evaluation's record as the History gives it, and the answers' sizes."""
    history, since, sizes = {"evaluation": [], "x": {}, "functions": {}, "feasible": []}, 0, []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = api.get(f"/v1/study/{study_id}").json()["study_status"] in ENDED
        page = api.get(f"/v1/study/{study_id}/history?since={since}&long_polling=true&long_polling_timeout=10").json()
        sizes.append(len(page["evaluation"]))
        if page["evaluation"]:
            assert page["evaluation"] == list(range(since + 1, since + 1 + len(page["evaluation"])))  # no gap, no repeat
            since = page["evaluation"][-1]
            history["evaluation"] += page["evaluation"]
            history["feasible"] += page["feasible"]
            for group in ("x", "functions"):
                for name, values in page[group].items():
                    history[group].setdefault(name, []).extend(values)
        elif ended:
            return history, sizes
    raise AssertionError(f"study {study_id} did not end in {timeout} s")


def download(api, job_id, name, target):
    response = api.get(f"/v1/job/{job_id}/files/download?filename={name}")
    assert response.status_code == 200, response.text
    target.write_bytes(response.content)
    return target


def nothing_recorded(api):
    """The user has no study and no job."""
    for path in ("/v1/study", "/v1/job"):
        response = api.get(path)
        assert response.status_code == 200 and response.json() == [] and response.headers["X-Total-Count"] == "0"


def slow_doe(n_samples, low=0.05, high=0.1):
    """A DOE of the Sleeper discipline: evaluations lasting between low and high seconds."""
    spec = sleeper_spec(low, high)
    spec["algorithm"]["settings"]["n_samples"] = n_samples
    return spec


def csv_rows(api, study_id, since=0):
    response = api.get(f"/v1/study/{study_id}/history?since={since}&format=csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


# Results equal to local GEMSEO


@pytest.mark.parametrize("formulation", ["MDF", "IDF"])
def test_sellar_study_reaches_the_local_optimum(api, formulation, tmp_path):
    local = sellar_scenario(create_discipline(list(SELLAR)), formulation)
    local.execute(algo_name="SLSQP", max_iter=50)
    expected = local.optimization_result

    created = submit(api, sellar_spec(formulation))
    assert created["study_status"] == "pending" and created["formulation"] == formulation
    assert created["algorithm"] == {"name": "SLSQP", "settings": {"max_iter": 50}} and created["n_evaluations"] == 0
    ended = wait_study(api, created["id"])
    assert ended["study_status"] == "finished", ended
    best = ended["best"]
    assert best["feasible"] and best["objective"] == pytest.approx(expected.f_opt, rel=1e-6)
    x_opt = [value for name in local.design_space.variable_names for value in best["x"][name]]
    assert x_opt == pytest.approx(expected.x_opt.tolist(), rel=1e-6, abs=1e-9)
    job = api.get(f"/v1/job/{ended['job_id']}").json()
    assert job["job_type"] == "study" and job["study_id"] == created["id"] and job["job_status"] == "finished"
    assert job["output_data"]["n_evaluations"] == ended["n_evaluations"] > 2
    assert job["output_data"]["best"] == best  # the worker, which builds the records, gives it
    problem = OptimizationProblem.from_hdf(download(api, ended["job_id"], "problem.h5", tmp_path / "problem.h5"))
    history = api.get(f"/v1/study/{created['id']}/history").json()
    assert history["evaluation"] == list(range(1, ended["n_evaluations"] + 1))
    stored = [x.unwrap().tolist() for x, values in problem.database.items() if "obj" in values]
    points = [[value for name in local.design_space.variable_names for value in history["x"][name][row]] for row in range(len(stored))]
    assert points == stored


def test_doe_history_equals_a_local_doe_scenario(api, tmp_path):
    settings = {"n_samples": 12, "random_state": 3}
    local = create_scenario(
        create_discipline(list(SELLAR)), "obj", sellar_scenario(create_discipline(list(SELLAR))).design_space,
        scenario_type="DOE", formulation_name="MDF",
    )
    for name in ("c_1", "c_2"):
        local.add_constraint(name, constraint_type="ineq")
    local.add_observable("y_1")
    local.execute(algo_name="PYDOE_LHS", **settings)
    database = local.formulation.optimization_problem.database

    spec = sellar_spec(algorithm={"name": "PYDOE_LHS", "settings": settings}, post_processing=[{"name": "ScatterPlotMatrix"}])
    ended = wait_study(api, submit(api, spec)["id"])
    assert ended["study_status"] == "finished" and ended["n_evaluations"] == len(database) == 12
    history = api.get(f"/v1/study/{ended['id']}/history").json()
    for row, (x, values) in enumerate(database.items()):
        assert [value for name in ("x_1", "x_2", "x_shared") for value in history["x"][name][row]] == x.unwrap().tolist()
        assert history["functions"]["obj"][row] == float(values["obj"])
        assert history["functions"]["c_1"][row] == float(values["c_1"])
        assert history["functions"]["y_1"][row] == float(values["y_1"])
    tree = api.get(f"/v1/job/{ended['job_id']}/files").json()
    assert "problem.h5" in tree and any(name.startswith("scatter_plot_matrix") for name in tree)


def test_a_sobieski_mdf_study_runs(api):
    design_space = SobieskiDesignSpace()
    design_space.filter(["x_shared", "x_1", "x_2", "x_3"])
    spec = {
        "name": "sobieski",
        "disciplines": [{"class_name": name} for name in ("SobieskiStructure", "SobieskiAerodynamics", "SobieskiPropulsion", "SobieskiMission")],
        "formulation": "MDF",
        "design_space": space_of(design_space),
        "objective": {"name": "y_4", "maximize": True},
        "constraints": [{"name": "g_1", "type": "ineq"}, {"name": "g_2", "type": "ineq"}, {"name": "g_3", "type": "ineq"}],
        "algorithm": {"name": "SLSQP", "settings": {"max_iter": 5}},
    }
    ended = wait_study(api, submit(api, spec)["id"])
    assert ended["study_status"] == "finished" and ended["n_evaluations"] >= 5
    assert ended["best"]["objective"] > 0  # the range, not its opposite that GEMSEO minimises


# The history, live


@pytest.mark.every_backend
def test_the_history_arrives_live_and_json_and_csv_agree(api, tmp_path):
    created = submit(api, slow_doe(20))
    history, sizes = follow(api, created["id"])
    assert history["evaluation"] == list(range(1, 21))
    assert len([size for size in sizes if size]) >= 3  # in several answers, as the evaluations ended
    whole = api.get(f"/v1/study/{created['id']}/history").json()
    assert whole == history
    rows = csv_rows(api, created["id"])
    assert [int(row["evaluation"]) for row in rows] == whole["evaluation"]
    assert [row["feasible"] == "true" for row in rows] == whole["feasible"]
    assert [float(row["duration"]) for row in rows] == [x[0] for x in whole["x"]["duration"]]
    assert [float(row["slept"]) for row in rows] == whole["functions"]["slept"]
    assert [int(row["evaluation"]) for row in csv_rows(api, created["id"], 15)] == [16, 17, 18, 19, 20]
    ended = api.get(f"/v1/study/{created['id']}").json()
    assert ended["n_evaluations"] == 20 and ended["best"]["objective"] == min(whole["functions"]["slept"])
    problem = OptimizationProblem.from_hdf(download(api, ended["job_id"], "problem.h5", tmp_path / "problem.h5"))
    assert [float(values["slept"]) for _, values in problem.database.items()] == whole["functions"]["slept"]


# Refusals


REFUSALS = [
    ({"disciplines": [{"class_name": "DiscFromExe"}]}, 403, "DiscFromExe"),
    ({"disciplines": [{"class_name": "NoSuchThing"}]}, 422, "Field 'disciplines[0].class_name'"),
    ({"formulation": "Magic"}, 422, "Field 'formulation'"),
    ({"algorithm": {"name": "NoSuchAlgo"}}, 422, "Field 'algorithm.name'"),
    ({"algorithm": {"name": "CustomDOE", "settings": {}}}, 422, "CustomDOE is not served"),
    ({"algorithm": {"name": "PYDOE_LHS", "settings": {"n_samples": 4, "callbacks": []}}}, 422, "'algorithm.settings.callbacks' is a callable"),
    ({"algorithm": {"name": "PYDOE_LHS", "settings": {"n_samples": 4, "n_processes": 2}}}, 422, "GEMSEO_HTTP_STUDY_MAX_PROCESSES"),
    ({"algorithm": {"name": "MultiStart", "settings": {"multistart_file_path": "/etc/x.h5"}}}, 422, "the service decides where files"),
    ({"design_space": {"x_9": {"lower_bound": [0.0], "upper_bound": [1.0]}}}, 422, "'x_9' is not an input"),
    ({"design_space": {"x_1": {"lower_bound": [2.0], "upper_bound": [1.0]}}}, 422, "above the upper bound"),
    ({"objective": {"name": "x_1"}}, 422, "Field 'objective.name'"),
    ({"constraints": [{"name": "c_3"}]}, 422, "Field 'constraints[0].name'"),
    ({"observables": ["zz"]}, 422, "Field 'observables[0]'"),
    ({"post_processing": [{"name": "OptHistoryView", "settings": {"file_path": "/tmp/x"}}]}, 422, "the service decides"),
    ({"objective": {"name": "obj", "minimize": True}}, 422, "objective.minimize"),
    ({"design_space": {"x_1": {"lower_bound": ["a"], "upper_bound": [1.0]}}}, 422, "design_space.x_1.lower_bound[0]"),
    ({"unknown": 1}, 422, "unknown"),
]


def test_each_refusal_records_nothing(api, tmp_path):
    for change, status, expected in REFUSALS:
        response = api.post("/v1/study", json={**sellar_spec(), **change}, timeout=120)
        assert response.status_code == status, (change, response.text)
        assert expected in response.json()["detail"], (change, response.text)
    formula = analytic_spec(4)
    formula["disciplines"][0]["options"]["expressions"]["f"] = "__import__('os').system('touch pwned')"
    response = api.post("/v1/study", json=formula)
    assert response.status_code == 422 and "disciplines[0].options" in response.json()["detail"]
    nothing_recorded(api)


def test_the_algorithms_are_what_a_study_may_name(api):
    listed = api.get("/v1/algorithms").json()
    names = {kind: {entry["name"]: entry for entry in entries} for kind, entries in listed.items()}
    assert set(names) == {"doe", "optimization"}
    assert "SLSQP" in names["optimization"] and "PYDOE_LHS" in names["doe"] and "CustomDOE" not in names["doe"]
    max_iter = names["optimization"]["SLSQP"]["settings"]["max_iter"]
    assert max_iter["type"] == "integer" and "default" in max_iter and "description" in max_iter
    assert "callbacks" not in names["doe"]["PYDOE_LHS"]["settings"]  # not a plain value


# Isolation, stops


def test_another_users_study_is_404_everywhere(api, service):
    created = submit(api, analytic_spec(5))
    ended = wait_study(api, created["id"])
    other = new_user(service)
    study_path, job_path = f"/v1/study/{created['id']}", f"/v1/job/{ended['job_id']}"
    for method, path in [
        ("GET", study_path), ("GET", f"{study_path}/history"), ("GET", f"{study_path}/history?format=csv"),
        ("POST", f"{study_path}/cancel"), ("DELETE", study_path), ("GET", job_path), ("GET", f"{job_path}/files"),
        ("GET", f"{job_path}/log"), ("GET", f"{job_path}/files/download?filename=problem.h5"), ("DELETE", job_path),
    ]:
        response = other.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
    assert other.get("/v1/study").json() == []
    assert api.get(study_path).json()["n_evaluations"] == 5  # still there, whole
    assert api.delete(study_path).status_code == 204
    assert api.get(study_path).status_code == 404 and api.get(job_path).status_code == 404
    assert api.get(f"{study_path}/history").status_code == 404


@pytest.mark.every_backend
def test_cancel_while_running_keeps_the_history(api, tmp_path):
    created = submit(api, slow_doe(200, 0.2, 0.3))
    page = api.get(f"/v1/study/{created['id']}/history?since=1&long_polling=true&long_polling_timeout=60").json()
    assert page["evaluation"] and page["evaluation"][0] == 2
    asked = time.monotonic()
    response = api.post(f"/v1/study/{created['id']}/cancel")
    assert response.status_code == 200, response.text
    ended = wait_study(api, created["id"], timeout=5)
    assert time.monotonic() - asked < 2
    assert ended["study_status"] == "failed" and ended["error"] == "cancelled"
    history = api.get(f"/v1/study/{created['id']}/history").json()
    assert 2 <= ended["n_evaluations"] == len(history["evaluation"]) < 200
    problem = OptimizationProblem.from_hdf(download(api, ended["job_id"], "problem.h5", tmp_path / "problem.h5"))
    recorded = [float(values["slept"]) for _, values in problem.database.items() if "slept" in values]
    assert recorded[: len(history["evaluation"])] == history["functions"]["slept"]
    assert api.post(f"/v1/study/{created['id']}/cancel").status_code == 409


def test_a_study_with_a_timeout_ends_timeout(api):
    spec = slow_doe(200, 0.2, 0.3)
    spec["timeout"] = 1.5
    ended = wait_study(api, submit(api, spec)["id"])
    assert ended["study_status"] == "failed" and ended["error"] == "timeout"
    assert 1 <= ended["n_evaluations"] == len(api.get(f"/v1/study/{ended['id']}/history").json()["evaluation"])
    assert "problem.h5" in api.get(f"/v1/job/{ended['job_id']}/files").json()


@pytest.mark.parametrize("requeue", [False, True])
def test_a_worker_killed_during_a_study_ends_it_lost_or_runs_it_again(fresh_service, requeue):
    limits = {"GEMSEO_HTTP_MAX_PENDING_JOBS": 1, "GEMSEO_HTTP_JOB_TIMEOUT": 600}
    service = fresh_service(GEMSEO_HTTP_REQUEUE_LOST_JOBS=int(requeue), **limits)
    api = service.api("alice", "alice-pw")
    spec = slow_doe(12, 0.2, 0.3)
    spec["timeout"] = 3600
    created = submit(api, spec)
    page = api.get(f"/v1/study/{created['id']}/history?long_polling=true&long_polling_timeout=120", timeout=150).json()
    assert page["evaluation"]
    # A study obeys the limits of jobs: the job time limit caps its own, one waiting job per user here.
    assert api.get(f"/v1/job/{created['job_id']}").json()["timeout"] == 600
    refused = api.post("/v1/study", json=spec)
    assert refused.status_code == 429 and "GEMSEO_HTTP_MAX_PENDING_JOBS" in refused.json()["detail"]
    assert api.get("/v1/study").headers["X-Total-Count"] == "1"
    service.worker.kill()
    service.worker.wait()
    if not requeue:
        ended = wait_study(api, created["id"], timeout=60)
        assert ended["study_status"] == "failed" and ended["error"] == "lost"
        assert ended["n_evaluations"] >= 1
        return
    service.start_worker()
    ended = wait_study(api, created["id"], timeout=120)
    assert ended["study_status"] == "finished" and ended["n_evaluations"] == 12
    # Run again from the start: one history, whole, not the first run's beginning twice.
    assert api.get(f"/v1/study/{created['id']}/history").json()["evaluation"] == list(range(1, 13))




def test_a_doe_whose_every_evaluation_fails_ends_failed(api):
    """GEMSEO's DOE goes on past a point whose evaluation raised: with none left, the study fails
    and says why, rather than ending finished with nothing."""
    spec = {
        "name": "failing",
        "disciplines": [{"class_name": "Failing"}],
        "formulation": "DisciplinaryOpt",
        "design_space": {"x": {"lower_bound": [0.0], "upper_bound": [1.0]}},
        "objective": {"name": "y"},
        "algorithm": {"name": "PYDOE_LHS", "settings": {"n_samples": 3}},
    }
    ended = wait_study(api, submit(api, spec)["id"])
    assert (ended["study_status"], ended["error"], ended["n_evaluations"]) == ("failed", "EvaluationsFailed", 0)
    assert ended["message"].startswith("All 3 evaluations of the DOE failed")
    assert "ValueError: the model diverged at x=" in ended["message"]
    assert "problem.h5" in api.get(f"/v1/job/{ended['job_id']}/files").text


def test_nan_objectives_are_null_in_the_history_and_never_best(api):
    """log(x): NaN below 0, -inf at 0. Such points are recorded with a null objective and never
    chosen as best; where the objective is never a number, the study fails and says why."""
    mixed = wait_study(api, submit(api, log_doe(-1.0, 1.0))["id"])
    assert (mixed["study_status"], mixed["n_evaluations"]) == ("finished", 5)
    assert mixed["best"]["evaluation"] == 4 and mixed["best"]["x"] == {"x": [0.5]}
    history = api.get(f"/v1/study/{mixed['id']}/history").json()
    assert history["functions"]["f"][:3] == [None, None, None] and history["functions"]["f"][4] == 0.0
    assert [row["f"] for row in csv_rows(api, mixed["id"])[:3]] == ["", "", ""]
    none = wait_study(api, submit(api, log_doe(-2.0, -1.0))["id"])
    assert (none["study_status"], none["error"], none["n_evaluations"]) == ("failed", "EvaluationsFailed", 5)
    assert none["message"].startswith("The objective was NaN or infinite at each of the 5 points evaluated")
    assert "best" not in none
    assert api.get(f"/v1/study/{none['id']}/history").json()["functions"]["f"] == [None] * 5
