"""Gradient-based MDO through the HTTPDiscipline client of gemseo-http 3.0.0, unchanged.

Under GEMSEO 6 the client needs its cache turned off: it stores a remote Jacobian in `jac` but
never sets `_has_jacobian` (it sets GEMSEO 5's `_is_linearized`), so GEMSEO caches the outputs
without the Jacobian, and a linearization at an input already executed (the MDA has just run it)
is served from the cache with an empty Jacobian and never reaches the server.
"""

from urllib.parse import urlsplit

import pytest
from gemseo.problems.mdo.sellar.sellar_1 import Sellar1
from gemseo.problems.mdo.sellar.sellar_2 import Sellar2
from gemseo.problems.mdo.sellar.sellar_system import SellarSystem
from gemseo_http.http_discipline import HTTPDiscipline

from sellar import SELLAR, assert_reaches, jobs_since, newest_job_id, sellar_scenario


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


def test_mdf_with_remote_disciplines_reaches_the_local_optimum(live, alice):
    local = sellar_scenario([Sellar1(), Sellar2(), SellarSystem()])
    local.execute(algo_name="SLSQP", max_iter=30)
    expected = local.optimization_result

    before = newest_job_id(alice)
    remote = sellar_scenario(remote_sellar(live))
    remote.execute(algo_name="SLSQP", max_iter=30)

    # Every gradient of obj linearizes the three disciplines, each by a job of its own.
    n_gradients = assert_reaches(remote, expected)
    linearized = [
        job["discipline_class_name"]
        for job in jobs_since(alice, before)
        if job["job_type"] == "execute_and_linearize" and job["job_status"] == "finished"
    ]
    for class_name in SELLAR:
        assert linearized.count(class_name) >= n_gradients, class_name


def test_mdf_with_the_client_cache_fails(live):
    scenario = sellar_scenario(remote_sellar(live, without_cache=False))
    with pytest.raises(ValueError, match="The discipline Sellar1 was not linearized"):
        scenario.execute(algo_name="SLSQP", max_iter=30)
