"""Gradient-based MDO through the HTTPDiscipline client of gemseo-http 3.0.0, unchanged (run in a
venv of its own: tests/reference_client.py).

Under GEMSEO 6 the client needs its cache turned off: it stores a remote Jacobian in `jac` but
never sets `_has_jacobian` (it sets GEMSEO 5's `_is_linearized`), so GEMSEO caches the outputs
without the Jacobian, and a linearization at an input already executed (the MDA has just run it)
is served from the cache with an empty Jacobian and never reaches the server.
"""

import pytest
from gemseo.problems.mdo.sellar.sellar_1 import Sellar1
from gemseo.problems.mdo.sellar.sellar_2 import Sellar2
from gemseo.problems.mdo.sellar.sellar_system import SellarSystem

from sellar import SELLAR, assert_reaches, jobs_since, newest_job_id, sellar_scenario


def test_mdf_with_remote_disciplines_reaches_the_local_optimum(live, alice, reference_client):
    local = sellar_scenario([Sellar1(), Sellar2(), SellarSystem()])
    local.execute(algo_name="SLSQP", max_iter=30)
    expected = local.optimization_result

    before = newest_job_id(alice)
    # The same scenario on the three remote Sellar disciplines of alice, with the README's workaround.
    remote = reference_client.sellar(live.url, algo_name="SLSQP", max_iter=30)

    # Every gradient of obj linearizes the three disciplines, each by a job of its own.
    n_gradients = assert_reaches(remote, expected)
    linearized = [
        job["discipline_class_name"]
        for job in jobs_since(alice, before)
        if job["job_type"] == "execute_and_linearize" and job["job_status"] == "finished"
    ]
    for class_name in SELLAR:
        assert linearized.count(class_name) >= n_gradients, class_name


def test_mdf_with_the_client_cache_fails(live, reference_client):
    with pytest.raises(ValueError, match="The discipline Sellar1 was not linearized"):
        reference_client.sellar(live.url, without_cache=False, algo_name="SLSQP", max_iter=30)
