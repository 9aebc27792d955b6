"""Studies end to end (API.md Part 4): a whole scenario run as one job by the real web app and
worker, its history live through long polling, its refusals, isolation and stops."""

import csv
import io
import itertools
import subprocess
import time

import numpy
import pytest
from gemseo import create_discipline, create_scenario
from gemseo.algos.optimization_problem import OptimizationProblem
from gemseo.problems.mdo.sobieski.core.design_space import SobieskiDesignSpace

from conftest import start_service
from sellar import SELLAR, sellar_scenario
from study_specs import analytic_spec, sellar_spec, sleeper_spec, space_of

ENDED = ("finished", "failed")
_users = itertools.count(1)


@pytest.fixture(scope="module")
def service(tmp_path_factory, backend, backends):
    """One service for the tests that neither stop nor break it; each test has its own user."""
    started = start_service(tmp_path_factory.mktemp("studies"), users=(), **backends.settings(backend))
    try:
        yield started
    finally:
        started.close()


def new_user(service):
    name = f"user{next(_users)}"
    service.add_user(name, f"{name}-pw")
    return service.api(name, f"{name}-pw")


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


def test_sellar_mdf_study_reaches_the_local_optimum(api, tmp_path):
    local = sellar_scenario(create_discipline(list(SELLAR)), "MDF")
    local.execute(algo_name="SLSQP", max_iter=50)
    expected = local.optimization_result

    created = submit(api, sellar_spec("MDF"))
    assert created["study_status"] == "pending" and created["formulation"] == "MDF"
    ended = wait_study(api, created["id"])
    assert ended["study_status"] == "finished", ended
    best = ended["best"]
    assert best["feasible"] and best["objective"] == pytest.approx(expected.f_opt, rel=1e-6)
    x_opt = [value for name in local.design_space.variable_names for value in best["x"][name]]
    assert x_opt == pytest.approx(expected.x_opt.tolist(), rel=1e-6, abs=1e-9)
    job = api.get(f"/v1/job/{ended['job_id']}").json()
    assert job["job_type"] == "study" and job["study_id"] == created["id"] and job["job_status"] == "finished"
    path = download(api, ended["job_id"], "problem.h5", tmp_path / "problem.h5")
    problem = OptimizationProblem.from_hdf(path)
    assert len(problem.database) >= ended["n_evaluations"] > 2
