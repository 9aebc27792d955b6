"""Gradient-based MDO through the HTTPDiscipline client of gemseo-http 3.0.0, unchanged.

Under GEMSEO 6 the client needs its cache turned off: it stores a remote Jacobian in `jac` but
never sets `_has_jacobian` (it sets GEMSEO 5's `_is_linearized`), so GEMSEO caches the outputs
without the Jacobian, and a linearization at an input already executed (the MDA has just run it)
is served from the cache with an empty Jacobian and never reaches the server.
"""

from urllib.parse import urlsplit

import pytest
from gemseo import create_scenario
from gemseo.problems.mdo.sellar.sellar_1 import Sellar1
from gemseo.problems.mdo.sellar.sellar_2 import Sellar2
from gemseo.problems.mdo.sellar.sellar_design_space import SellarDesignSpace
from gemseo.problems.mdo.sellar.sellar_system import SellarSystem
from gemseo_http.http_discipline import HTTPDiscipline

SELLAR = ("Sellar1", "Sellar2", "SellarSystem")


def remote_sellar(live, without_cache=True):
    """The three Sellar disciplines of alice on the live service, with the README's workaround."""
    parts = urlsplit(live.url)
    disciplines = []
    for class_name in SELLAR:
        discipline = HTTPDiscipline(
            name=class_name,
            class_name=class_name,
            url=f"{parts.scheme}://{parts.hostname}",
            port=parts.port,
            user="alice",
            password="alice-pw",
            httpx_client_options={"base_url": live.url, "timeout": 60},
        )
        if without_cache:
            discipline.set_cache(discipline.CacheType.NONE)
        disciplines.append(discipline)
    return disciplines


def mdf_scenario(disciplines):
    """The Sellar MDF scenario: minimise obj subject to c_1 <= 0 and c_2 <= 0."""
    design_space = SellarDesignSpace(dtype="float64", add_couplings=False)
    scenario = create_scenario(disciplines, "obj", design_space, formulation_name="MDF")
    scenario.add_constraint("c_1", constraint_type="ineq")
    scenario.add_constraint("c_2", constraint_type="ineq")
    return scenario


def newest_job_id(api):
    jobs = api.get("/v1/job?limit=1").json()
    return jobs[0]["id"] if jobs else 0


def jobs_since(api, job_id):
    """The user's jobs newer than job_id."""
    jobs, offset = [], 0
    while True:
        page = api.get(f"/v1/job?limit=1000&offset={offset}").json()
        newer = [job for job in page if job["id"] > job_id]
        jobs += newer
        if len(newer) < len(page) or not page:
            return jobs
        offset += len(page)


def test_mdf_with_remote_disciplines_reaches_the_local_optimum(live, alice):
    local = mdf_scenario([Sellar1(), Sellar2(), SellarSystem()])
    local.execute(algo_name="SLSQP", max_iter=30)
    expected = local.optimization_result

    before = newest_job_id(alice)
    remote = mdf_scenario(remote_sellar(live))
    remote.execute(algo_name="SLSQP", max_iter=30)
    result = remote.optimization_result

    assert result.is_feasible
    assert result.f_opt == pytest.approx(expected.f_opt, rel=1e-4)
    assert result.x_opt == pytest.approx(expected.x_opt, abs=1e-4)
    # Every gradient of obj linearizes the three disciplines, each by a job of its own.
    n_gradients = len(remote.formulation.optimization_problem.database.get_gradient_history("obj"))
    assert n_gradients >= 2
    linearized = [
        job["discipline_class_name"]
        for job in jobs_since(alice, before)
        if job["job_type"] == "execute_and_linearize" and job["job_status"] == "finished"
    ]
    for class_name in SELLAR:
        assert linearized.count(class_name) >= n_gradients, class_name


def test_mdf_with_the_client_cache_fails(live):
    scenario = mdf_scenario(remote_sellar(live, without_cache=False))
    with pytest.raises(ValueError, match="The discipline Sellar1 was not linearized"):
        scenario.execute(algo_name="SLSQP", max_iter=30)
