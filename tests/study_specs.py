"""StudyInputs that the study tests and bench/study_core.py share; run as a script, a study in a
process of its own, for the tests that stop one by a signal (never sent to pytest's process):
`python study_specs.py sigterm|should_stop WORKDIR` prints the summary as its last line."""

import json
import os
import signal
import sys
import time
from pathlib import Path

from gemseo.problems.mdo.sellar.sellar_design_space import SellarDesignSpace

from sellar import SELLAR


def space_of(design_space):
    """A GEMSEO design space as a StudyInput's design_space."""
    return {
        name: {
            "lower_bound": design_space.get_lower_bound(name).tolist(),
            "upper_bound": design_space.get_upper_bound(name).tolist(),
            "value": design_space.get_current_value([name]).tolist(),
        }
        for name in design_space.variable_names
    }


def sellar_spec(formulation="MDF", **fields):
    spec = {
        "name": "sellar",
        "disciplines": [{"class_name": name} for name in SELLAR],
        "formulation": formulation,
        "design_space": space_of(SellarDesignSpace(dtype="float64", add_couplings=formulation == "IDF")),
        "objective": {"name": "obj", "maximize": False},
        "constraints": [{"name": "c_1", "type": "ineq"}, {"name": "c_2", "type": "ineq"}],
        "observables": ["y_1"],
        "algorithm": {"name": "SLSQP", "settings": {"max_iter": 50}},
    }
    spec.update(fields)
    return spec


def analytic_spec(n_samples=2000):
    """A cheap DOE: one AnalyticDiscipline, a constraint feasible at some points only."""
    return {
        "name": "analytic",
        "disciplines": [{"class_name": "AnalyticDiscipline", "options": {"expressions": {"f": "(x - 1)**2 + y", "g": "x - y"}}}],
        "formulation": "DisciplinaryOpt",
        "design_space": {"x": {"lower_bound": [-2.0], "upper_bound": [2.0]}, "y": {"lower_bound": [0.0], "upper_bound": [1.0]}},
        "objective": {"name": "f"},
        "constraints": [{"name": "g", "type": "ineq"}],
        "algorithm": {"name": "PYDOE_LHS", "settings": {"n_samples": n_samples}},
        "post_processing": [{"name": "BasicHistory", "settings": {"variable_names": ["f"]}}],
    }


def log_doe(lower, upper):
    """A DOE of log(x): NaN where x < 0, -inf at 0; the constraint x <= 0.5 feasible below."""
    return {
        "name": "log",
        "disciplines": [{"class_name": "AnalyticDiscipline", "options": {"expressions": {"f": "log(x)", "g": "x - 0.5"}}}],
        "formulation": "DisciplinaryOpt",
        "design_space": {"x": {"lower_bound": [lower], "upper_bound": [upper]}},
        "objective": {"name": "f"},
        "constraints": [{"name": "g"}],
        "algorithm": {"name": "PYDOE_FULLFACT", "settings": {"n_samples": 5}},
    }


def sleeper_spec(low=20.0, high=30.0):
    """Three evaluations of the Sleeper test discipline, each lasting between low and high seconds."""
    return {
        "name": "sleeper",
        "disciplines": [{"class_name": "Sleeper"}],
        "formulation": "DisciplinaryOpt",
        "design_space": {"duration": {"lower_bound": [low], "upper_bound": [high]}},
        "objective": {"name": "slept"},
        "algorithm": {"name": "PYDOE_LHS", "settings": {"n_samples": 3}},
    }


def main(mode, workdir):
    """A sleeper study; `should_stop` asks to stop 0.3 s after the first call, `sigterm` waits
    for the SIGTERM of the test. The summary tells how long the stop took and whether the
    SIGTERM handler was put back."""
    os.environ["GEMSEO_PATH"] = str(Path(__file__).resolve().parent / "plugins")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import jobproc
    import study

    before, asked = signal.getsignal(signal.SIGTERM), []

    def should_stop():
        if not asked:
            asked.append(time.monotonic() + 0.3)
        return time.monotonic() > asked[0]

    evaluations = []
    options = {"should_stop": should_stop} if mode == "should_stop" else {}
    summary = study.run(jobproc.Engine(frozenset()), sleeper_spec(), workdir, evaluations.extend, **options)
    summary["stop_took"] = time.monotonic() - asked[0] if asked else None
    summary["recorded"] = len(evaluations)
    summary["handler_back"] = signal.getsignal(signal.SIGTERM) is before
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
