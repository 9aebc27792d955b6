"""What the MDO client tests share: the Sellar scenario, and the jobs a test made. The reference
client's venv imports it too (tests/reference_client.py), without pytest."""

from gemseo import create_scenario
from gemseo.problems.mdo.sellar.sellar_design_space import SellarDesignSpace

SELLAR = ("Sellar1", "Sellar2", "SellarSystem")


def sellar_scenario(disciplines, formulation_name="MDF", **formulation_settings):
    """The Sellar problem: minimise obj subject to c_1 <= 0 and c_2 <= 0."""
    design_space = SellarDesignSpace(dtype="float64", add_couplings=formulation_name == "IDF")
    scenario = create_scenario(disciplines, "obj", design_space, formulation_name=formulation_name, **formulation_settings)
    scenario.add_constraint("c_1", constraint_type="ineq")
    scenario.add_constraint("c_2", constraint_type="ineq")
    return scenario


def newest_job_id(api):
    jobs = api.get("/v1/job?limit=1").json()
    return jobs[0]["id"] if jobs else 0


def jobs_since(api, job_id):
    """The user's jobs newer than job_id, every page."""
    jobs, offset = [], 0
    while True:
        page = api.get(f"/v1/job?limit=1000&offset={offset}").json()
        newer = [job for job in page if job["id"] > job_id]
        jobs += newer
        if len(newer) < len(page) or not page:
            return jobs
        offset += len(page)


def optimum(scenario):
    """What the scenario found, as JSON carries it, with its count of gradients of obj."""
    result = scenario.optimization_result
    return {
        "is_feasible": bool(result.is_feasible),
        "f_opt": float(result.f_opt),
        "x_opt": result.x_opt.tolist(),
        "n_gradients": len(scenario.formulation.optimization_problem.database.get_gradient_history("obj")),
    }


def assert_reaches(found, expected):
    """found (an optimum()) is feasible and equals the expected optimum; return its count of
    gradients of obj (at least 2: the optimizer did use gradients)."""
    import pytest

    assert found["is_feasible"]
    assert found["f_opt"] == pytest.approx(expected.f_opt, rel=1e-4)
    assert found["x_opt"] == pytest.approx(expected.x_opt, abs=1e-4)
    assert found["n_gradients"] >= 2
    return found["n_gradients"]
