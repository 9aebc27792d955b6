"""StudyInputs that the study tests and bench/study_core.py share."""

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
