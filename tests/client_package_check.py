"""The installed client's main uses against a gaas server, run by tests/test_client_package.py in a
venv that holds only GEMSEO, httpx and the client: prints what they gave as one JSON line.

Usage: python client_package_check.py URL USER PASSWORD
"""

import importlib.metadata
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

from numpy import array


def sellar_scenario(disciplines):
    """The Sellar problem by MDF: minimise obj subject to c_1 <= 0 and c_2 <= 0."""
    from gemseo import create_scenario

    try:  # GEMSEO 7
        from gemseo.optimization import SLSQP_Settings
        from gemseo.problem.mdo.sellar.sellar_design_space import SellarDesignSpace

        design_space = SellarDesignSpace(add_couplings=False)
    except ImportError:
        from gemseo.problems.mdo.sellar.sellar_design_space import SellarDesignSpace
        from gemseo.settings.opt import SLSQP_Settings

        design_space = SellarDesignSpace(dtype="float64", add_couplings=False)
    scenario = create_scenario(disciplines, "obj", design_space, formulation_name="MDF")
    scenario.add_constraint("c_1", constraint_type="ineq")
    scenario.add_constraint("c_2", constraint_type="ineq")
    scenario.execute(SLSQP_Settings(max_iter=30))
    result = scenario.optimization_result
    return {"f_opt": float(result.f_opt), "x_opt": result.x_opt.tolist(), "is_feasible": bool(result.is_feasible)}


def main(url, user, password):
    login = {"url": url, "user": user, "password": password}
    answer = {"server_importable": [name for name in ("gaas", "jobproc", "worker") if importlib.util.find_spec(name)]}
    answer["gemseo"] = importlib.metadata.version("gemseo")
    import gemseo

    # First through GEMSEO's factory, which finds the module by its entry point alone.
    answer["gemseo_path"] = os.environ.get("GEMSEO_PATH")
    discipline = gemseo.create_discipline("RemoteDiscipline", discipline_class_name="Sellar1", **login)
    answer["factory"] = {"class": type(discipline).__name__, "y_1": discipline.execute({"x_1": array([2.0])})["y_1"].tolist()}

    from gaas_client import RemoteDiscipline
    from gaas_client import run_batch

    synchronous = RemoteDiscipline("Sellar1", **login)
    answer["synchronous"] = synchronous.execute({"x_1": array([3.0])})["y_1"].tolist()
    asynchronous = RemoteDiscipline("Sellar2", asynchronous=True, poll_timeout=5, **login)
    answer["asynchronous"] = asynchronous.execute({"y_1": array([2.0])})["y_2"].tolist()

    local = [gemseo.create_discipline(name) for name in ("Sellar1", "Sellar2", "SellarSystem")]
    answer["local_mdf"] = sellar_scenario(local)
    answer["remote_mdf"] = sellar_scenario([RemoteDiscipline(name, **login) for name in ("Sellar1", "Sellar2", "SellarSystem")])

    dataset = run_batch("Sellar1", samples=[{"x_1": [1.0]}, {"x_1": [4.0]}], progress=False, **login)
    answer["batch"] = {group: {name: values.tolist() for name, values in arrays.items()} for group, arrays in dataset.to_dict_of_arrays().items()}

    # A study: problem.h5, written by the server's GEMSEO, read back by this one.
    from gaas_client import run_study

    bounds = {"x_1": ([0.0], [10.0], [1.0]), "x_2": ([0.0], [10.0], [1.0]), "x_shared": ([-10.0, 0.0], [10.0, 10.0], [4.0, 3.0])}
    spec = {
        "name": "packaged", "formulation": "MDF", "objective": {"name": "obj"},
        "disciplines": [{"class_name": name} for name in ("Sellar1", "Sellar2", "SellarSystem")],
        "design_space": {name: dict(zip(("lower_bound", "upper_bound", "value"), values)) for name, values in bounds.items()},
        "constraints": [{"name": "c_1", "type": "ineq"}, {"name": "c_2", "type": "ineq"}],
        "algorithm": {"name": "SLSQP", "settings": {"max_iter": 30}},
    }
    study = run_study(spec, progress=False, **login)
    objective = study.problem.database.get_function_history("obj")
    answer["study"] = {"best": study.best["objective"],
                       "history": type(study.history).__name__, "rows": len(study.history), "evaluations": len(objective),
                       "designs": sorted(study.history.get_variable_names("designs"))}
    return answer


if __name__ == "__main__":
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = main(*sys.argv[1:4])
    module = sys.modules["gaas_client"].__file__
    answer["client_file"] = module
    # The warnings the client raised, or that GEMSEO raised about the client's own lines.
    answer["client_warnings"] = [
        f"{Path(caught_warning.filename).name}:{caught_warning.lineno}: {caught_warning.category.__name__}: {caught_warning.message}"
        for caught_warning in caught
        if caught_warning.filename == module
    ]
    print(json.dumps(answer))
