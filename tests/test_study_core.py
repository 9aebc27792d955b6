"""study.py in process: studies reach what local GEMSEO reaches, their history is whole and
readable back from problem.h5, a stop keeps it, and every refusal names its field."""

import copy
import csv
import io
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy
import pytest
from gemseo import create_discipline, create_scenario
from gemseo.algos.optimization_problem import OptimizationProblem
from gemseo.disciplines.factory import DisciplineFactory
from gemseo.problems.mdo.sobieski.core.design_space import SobieskiDesignSpace

import jobproc
import study
from sellar import SELLAR, sellar_scenario
from study_specs import analytic_spec, log_doe, sellar_spec, sleeper_spec, space_of
from test_internals import gaas_log, tmp_store  # noqa: F401 (fixtures)

PLUGINS = Path(__file__).resolve().parent / "plugins"
CODE = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "study_specs.py"


@pytest.fixture(scope="module")
def engine():
    os.environ["GEMSEO_PATH"] = str(PLUGINS)  # the test disciplines (Sleeper), as the services have them
    # GEMSEO keeps its factory's first scan: a module that ran GEMSEO before this one made it.
    DisciplineFactory().update()
    return jobproc.Engine(frozenset())


def run_study(engine, spec, workdir, evaluations=None, **options):
    """study.run; with should_stop, in a thread of its own, so that its stop never signals
    pytest's process (only a study in the main thread turns a stop into a SIGTERM)."""
    workdir.mkdir(exist_ok=True)
    evaluations, answer = [] if evaluations is None else evaluations, []
    if "should_stop" not in options:
        return study.run(engine, spec, workdir, evaluations.extend, **options), evaluations
    thread = threading.Thread(target=lambda: answer.append(study.run(engine, spec, workdir, evaluations.extend, **options)))
    thread.start()
    thread.join()
    assert answer, "the study raised (its traceback is above)"
    return answer[0], evaluations


def assert_whole(evaluations):
    """Numbered 1, 2, ... with no gap and no duplicate, each design point once."""
    assert [evaluation["evaluation"] for evaluation in evaluations] == list(range(1, len(evaluations) + 1))
    points = [str(evaluation["x"]) for evaluation in evaluations]
    assert len(set(points)) == len(points)


def assert_history_in_h5(path, evaluations, objective="obj", sign=1):
    """problem.h5 reads back with GEMSEO and holds every recorded point, with its objective."""
    problem = OptimizationProblem.from_hdf(path)
    database = problem.database
    stored = [(x.unwrap(), values) for x, values in database.items() if objective in values or f"-{objective}" in values]
    assert len(stored) == len(evaluations)
    for (x, values), evaluation in zip(stored, evaluations):
        flat = [value for name in problem.design_space.variable_names for value in evaluation["x"][name]]
        assert flat == pytest.approx(x.tolist(), rel=1e-15)
        value = values.get(objective, values.get(f"-{objective}"))
        assert sign * float(value) == pytest.approx(evaluation["objective"][objective], rel=1e-15)
    return problem


@pytest.mark.parametrize("formulation", ["MDF", "IDF"])
def test_sellar_study_reaches_the_local_optimum(engine, formulation, tmp_path):
    local = sellar_scenario(create_discipline(list(SELLAR)), formulation)
    local.add_observable("y_1")
    local.execute(algo_name="SLSQP", max_iter=50)
    expected = local.optimization_result

    summary, evaluations = run_study(engine, sellar_spec(formulation), tmp_path)
    assert summary["status"] == "finished"
    assert summary["n_evaluations"] == len(evaluations) > 2
    found = summary["best"]
    assert found == study.best(evaluations)
    assert found["feasible"]
    assert found["objective"] == pytest.approx(expected.f_opt, rel=1e-6)
    x_opt = [value for name in local.design_space.variable_names for value in found["x"][name]]
    assert x_opt == pytest.approx(expected.x_opt.tolist(), rel=1e-6, abs=1e-9)
    assert_whole(evaluations)
    if formulation == "IDF":  # the formulation's own constraints are recorded too
        assert {"consistency_y_1", "consistency_y_2", "c_1", "c_2"} <= evaluations[0]["constraints"].keys()
    problem = OptimizationProblem.from_hdf(tmp_path / "problem.h5")
    tolerances = local.formulation.optimization_problem.tolerances  # SLSQP's, which the file does not keep
    problem.tolerances.equality, problem.tolerances.inequality = tolerances.equality, tolerances.inequality
    history = problem.history
    for evaluation in evaluations:  # GEMSEO's measure with the algorithm's tolerances (eq ones too)
        x = [value for name in local.design_space.variable_names for value in evaluation["x"][name]]
        feasible, violation = history.check_design_point_is_feasible(numpy.array(x))
        assert (evaluation["feasible"], evaluation["violation"]) == (feasible, pytest.approx(violation, rel=1e-12))
    assert all(evaluation["observables"]["y_1"] is not None for evaluation in evaluations)
    assert summary["files"] == ["problem.h5"]
    assert_history_in_h5(tmp_path / "problem.h5", evaluations)


def test_an_mdf_study_runs_its_mda_in_its_own_thread_to_the_optimum_of_threads(engine, tmp_path, monkeypatch):
    """jobproc.serial_mdas: GEMSEO's Jacobi MDA starts no thread in a job process, and goes where
    GEMSEO's default (a thread per discipline at each iteration) goes: the same points."""
    started = []
    start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: started.append(thread.name) or start(thread))
    summary, evaluations = run_study(engine, sellar_spec(), tmp_path)
    monkeypatch.undo()
    assert summary["status"] == "finished" and started == []

    threaded = {"inner_mda_name": "MDAJacobi", "inner_mda_settings": {"n_processes": 2}}
    local = sellar_scenario(create_discipline(list(SELLAR)), main_mda_settings=threaded)
    assert local.formulation.mda.inner_mdas[0].settings.n_processes == 2
    local.execute(algo_name="SLSQP", max_iter=50)
    # The same points, within the MDA's tolerance.
    history = local.formulation.optimization_problem.database.get_function_history("obj")
    assert [evaluation["objective"]["obj"] for evaluation in evaluations] == pytest.approx(history.tolist(), rel=1e-6)
    assert summary["best"]["objective"] == pytest.approx(local.optimization_result.f_opt, rel=1e-6)


def test_doe_history_equals_a_local_doe_scenario(engine, tmp_path):
    settings = {"n_samples": 12, "random_state": 3}
    local = sellar_scenario(create_discipline(list(SELLAR)))
    scenario = create_scenario(
        create_discipline(list(SELLAR)), "obj", local.design_space, scenario_type="DOE", formulation_name="MDF"
    )
    scenario.add_constraint("c_1", constraint_type="ineq")
    scenario.add_constraint("c_2", constraint_type="ineq")
    scenario.add_observable("y_1")
    scenario.execute(algo_name="PYDOE_LHS", **settings)
    problem = scenario.formulation.optimization_problem
    database = problem.database

    spec = sellar_spec(algorithm={"name": "PYDOE_LHS", "settings": settings}, post_processing=[{"name": "ScatterPlotMatrix"}])
    assert study.check(engine, spec) is True
    summary, evaluations = run_study(engine, spec, tmp_path)
    assert summary["n_evaluations"] == len(database) == 12
    assert_whole(evaluations)
    for (x, values), evaluation in zip(database.items(), evaluations):
        flat = [value for name in ("x_1", "x_2", "x_shared") for value in evaluation["x"][name]]
        assert flat == x.unwrap().tolist()
        assert evaluation["objective"]["obj"] == float(values["obj"])
        assert evaluation["constraints"]["c_1"] == [float(values["c_1"])]
        assert evaluation["observables"]["y_1"] == [float(values["y_1"])]
        feasible, violation = problem.history.check_design_point_is_feasible(x.unwrap())
        assert evaluation["feasible"] == feasible == problem.constraints.is_point_feasible(values)
        assert evaluation["violation"] == pytest.approx(violation, rel=1e-12, abs=1e-300)
    assert any(name.startswith("scatter_plot_matrix") for name in summary["files"])
    assert all((tmp_path / name).is_file() for name in summary["files"])


def test_a_doe_on_two_processes_records_every_point_once(engine, tmp_path):
    settings = {"n_samples": 10, "random_state": 2}
    serial = run_study(engine, sellar_spec(algorithm={"name": "PYDOE_LHS", "settings": settings}), tmp_path / "serial")[1]
    spec = sellar_spec(algorithm={"name": "PYDOE_LHS", "settings": {**settings, "n_processes": 2}})
    # GEMSEO forks its pool: from a process of one thread, as a job process is, not from pytest's
    # (xdist's and the venvs' threads: a child forked while one holds a lock hangs on it).
    (tmp_path / "parallel").mkdir()
    script = (
        "import json, sys, jobproc, study; spec = json.load(sys.stdin); found = [];"
        f" summary = study.run(jobproc.Engine(frozenset()), spec, {str(tmp_path / 'parallel')!r}, found.extend, max_processes=2);"
        " print(json.dumps([summary, found]))"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(spec), capture_output=True, text=True, cwd=CODE, timeout=300,
        env={**os.environ, "PYTHONPATH": str(CODE)},
    )
    assert child.returncode == 0, child.stderr
    summary, parallel = json.loads(child.stdout.splitlines()[-1])
    assert summary["n_evaluations"] == 10
    assert_whole(parallel)

    def points(evaluations):
        return sorted((str(evaluation["x"]), evaluation["objective"]["obj"]) for evaluation in evaluations)

    assert points(parallel) == points(serial)


def test_feasibility_follows_the_algorithm_tolerances(engine, tmp_path):
    spec = analytic_spec(40)
    _, evaluations = run_study(engine, spec, tmp_path / "default")
    assert {True, False} == {evaluation["feasible"] for evaluation in evaluations}
    for evaluation in evaluations:  # GEMSEO's measure: the squared excess over ineq_tolerance (1e-4)
        (g,) = evaluation["constraints"]["g"]
        assert evaluation["feasible"] == (g <= 1e-4)
        assert evaluation["violation"] == pytest.approx(max(g - 1e-4, 0) ** 2, rel=1e-12)
    spec["algorithm"]["settings"]["ineq_tolerance"] = 10.0
    _, evaluations = run_study(engine, spec, tmp_path / "lenient")
    assert all(evaluation["feasible"] and evaluation["violation"] == 0 for evaluation in evaluations)


def sobieski_spec():
    """Sobieski's MDF maximising the range y_4, a few SLSQP iterations."""
    design_space = SobieskiDesignSpace()
    design_space.filter(["x_shared", "x_1", "x_2", "x_3"])
    return {
        "name": "sobieski",
        "disciplines": [
            {"class_name": name}
            for name in ("SobieskiStructure", "SobieskiAerodynamics", "SobieskiPropulsion", "SobieskiMission")
        ],
        "formulation": "MDF",
        "formulation_settings": {"main_mda_name": "MDAGaussSeidel", "main_mda_settings": {"max_mda_iter": 30}},
        "design_space": space_of(design_space),
        "objective": {"name": "y_4", "maximize": True},
        "constraints": [{"name": "g_1", "type": "ineq"}, {"name": "g_2", "type": "ineq"}, {"name": "g_3", "type": "ineq"}],
        "algorithm": {"name": "SLSQP", "settings": {"max_iter": 5}},
        "post_processing": [{"name": "OptHistoryView", "settings": {"file_extension": "svg"}}],
    }


def test_sobieski_mdf_study_maximises_without_negating(engine, tmp_path):
    summary, evaluations = run_study(engine, sobieski_spec(), tmp_path)
    assert summary["status"] == "finished" and evaluations
    assert_whole(evaluations)
    assert all(evaluation["objective"]["y_4"] > 0 for evaluation in evaluations)  # the range, not -range
    assert_history_in_h5(tmp_path / "problem.h5", evaluations, "y_4", sign=-1)
    feasible = [evaluation["objective"]["y_4"] for evaluation in evaluations if evaluation["feasible"]]
    assert summary["best"]["objective"] == max(feasible)
    assert summary["best"] == study.best(evaluations, maximize=True)
    assert any(name.endswith(".svg") for name in summary["files"])


def test_json_and_csv_histories_agree(engine, tmp_path):
    spec = sellar_spec(algorithm={"name": "PYDOE_LHS", "settings": {"n_samples": 8, "random_state": 1}})
    _, evaluations = run_study(engine, spec, tmp_path)
    stored = [study.from_text(study.to_text(evaluation)) for evaluation in evaluations]
    assert stored == evaluations
    for since in (0, 3):
        history = study.history_json(stored, since)
        rows = list(csv.DictReader(io.StringIO(study.history_csv(stored, since))))
        assert history["evaluation"] == [int(row["evaluation"]) for row in rows] == list(range(since + 1, 9))
        assert list(rows[0])[:7] == ["evaluation", "feasible", "x_1", "x_2", "x_shared[0]", "x_shared[1]", "obj"]
        for index, row in enumerate(rows):
            assert row["feasible"] == str(history["feasible"][index]).lower()
            assert float(row["x_shared[1]"]) == history["x"]["x_shared"][index][1]
            for name in ("obj", "c_1", "c_2", "y_1"):
                assert float(row[name]) == history["functions"][name][index]
    assert study.history_json(stored, 8) == {"evaluation": [], "x": {}, "functions": {}, "feasible": []}


def test_best_prefers_feasible_then_smallest_violation():
    def evaluation(k, f, feasible, violation):
        return {"evaluation": k, "x": {"x": [k]}, "objective": {"f": f}, "constraints": {"g": [violation]},
                "observables": {}, "feasible": feasible, "violation": 0.0 if feasible else violation}

    assert study.best([]) is None
    infeasible = [evaluation(1, 0.0, False, 3.0), evaluation(2, 5.0, False, 1.0), evaluation(3, 1.0, False, None)]
    assert study.best(infeasible)["evaluation"] == 2
    mixed = [*infeasible, evaluation(4, 9.0, True, 0), evaluation(5, 7.0, True, 0)]
    assert study.best(mixed)["evaluation"] == 5
    assert study.best(mixed, maximize=True)["evaluation"] == 4
    assert study.best(mixed)["constraints"] == {"g": [0]}
    kept = None
    for evaluation in mixed:  # followed as a study runs, it ends where a look at the whole does
        kept = study.best_record([evaluation] if kept is None else [kept, evaluation])
    assert kept["evaluation"] == 5


def test_a_stopped_study_keeps_its_history_and_writes_problem_h5(engine, tmp_path):
    seen = []
    summary, _ = run_study(engine, analytic_spec(), tmp_path, seen, should_stop=lambda: len(seen) >= 5)
    assert summary["status"] == "stopped"
    assert len(seen) == 5  # the evaluation after the request ends the driver
    assert summary["n_evaluations"] == len(seen)
    assert_whole(seen)
    assert_history_in_h5(tmp_path / "problem.h5", seen, "f")
    assert summary["files"][0] == "problem.h5" and len(summary["files"]) > 1  # the images too


def test_a_post_processing_that_cannot_run_does_not_fail_the_study(engine, tmp_path):
    spec = analytic_spec(20)
    spec["post_processing"] = [{"name": "QuadApprox", "settings": {"function": "f"}}, {"name": "OptHistoryView"}]
    summary, evaluations = run_study(engine, spec, tmp_path)
    assert summary["status"] == "finished" and len(evaluations) == 20
    assert summary["post_processing_errors"] == ["QuadApprox: KeyError: '@f'"]  # a DOE computes no gradient
    assert any(name.startswith("opt_history_view") for name in summary["files"])


def run_in_child(mode, workdir, terminate=False):
    """study_specs.py run as a child process; with terminate, SIGTERM once its first evaluation
    has started. Answers the summary and the time from the signal to the summary's arrival: the
    study stopped and problem.h5 written, not the interpreter's exit after it (which a loaded
    machine stretched past the bound)."""
    child = subprocess.Popen(
        [sys.executable, str(SPECS), mode, str(workdir)], stdout=subprocess.PIPE, text=True, cwd=workdir
    )
    sent = summarised = None
    try:
        lines = []
        for line in child.stdout:
            lines.append(line)
            if line.startswith("{"):
                summarised = time.monotonic()
            if terminate and sent is None and line.startswith("sleeper pid"):
                sent = time.monotonic()
                child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 0, lines
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return json.loads(lines[-1]), None if sent is None else summarised - sent


def test_should_stop_ends_a_long_evaluation_within_two_seconds(tmp_path):
    summary, _ = run_in_child("should_stop", tmp_path)
    assert summary["stop_took"] < 2
    assert summary["status"] == "stopped" and summary["recorded"] == 0 and summary["handler_back"]
    assert OptimizationProblem.from_hdf(tmp_path / "problem.h5").design_space.variable_names == ["duration"]


def test_a_stop_while_the_scenario_is_built_still_writes_problem_h5(engine, tmp_path):
    summary, evaluations = run_study(engine, sellar_spec(), tmp_path, should_stop=lambda: True)
    assert summary["status"] == "stopped" and summary["n_evaluations"] == 0 == len(evaluations)
    assert OptimizationProblem.from_hdf(tmp_path / "problem.h5").design_space.variable_names == ["x_1", "x_2", "x_shared"]


def test_sigterm_stops_the_study_and_the_handler_is_put_back(tmp_path):
    summary, took = run_in_child("sigterm", tmp_path, terminate=True)
    assert took < 2.5
    assert summary["status"] == "stopped" and summary["handler_back"]
    assert (tmp_path / "problem.h5").is_file()


def test_evaluations_are_recorded_as_they_end(engine, tmp_path):
    """The callback sees each evaluation as it ends (1 s apart here), not all at the end."""
    times = []
    spec = sleeper_spec(1.0, 1.2)
    summary = study.run(engine, spec, tmp_path, lambda evaluations: times.append(time.monotonic()))
    assert summary["n_evaluations"] == 3 == len(times)
    assert times[1] - times[0] > 0.9 and times[2] - times[1] > 0.9


def refused(engine, spec, status=422, max_processes=1):
    with pytest.raises(jobproc.ClientError) as caught:
        study.check(engine, spec, max_processes)
    assert caught.value.status == status, str(caught.value)
    return str(caught.value)


def changed(path, value, spec=None):
    """A copy of the Sellar spec with one field (a dotted path, list indices as ints) changed."""
    spec = copy.deepcopy(spec or sellar_spec())
    *parents, last = path
    target = spec
    for key in parents:
        target = target[key]
    target[last] = value
    return spec


def test_unsafe_and_unknown_disciplines(engine):
    assert "DiscFromExe" in engine.disabled
    message = refused(engine, changed(["disciplines", 1, "class_name"], "DiscFromExe"), 403)
    assert "DiscFromExe" in message and "GEMSEO_HTTP_ENABLED_DISCIPLINES" in message
    message = refused(engine, changed(["disciplines", 2, "class_name"], "NoSuchThing"))
    assert message.startswith("Field 'disciplines[2].class_name': unknown discipline 'NoSuchThing'")
    assert "at least one" in refused(engine, changed(["disciplines"], []))


def test_analytic_formulas_go_through_the_checker(engine, tmp_path):
    spec = analytic_spec()
    spec["disciplines"][0]["options"]["expressions"]["f"] = "__import__('os').system('touch pwned')"
    message = refused(engine, spec)
    assert message.startswith("Field 'disciplines[0].options':")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert study.check(engine, analytic_spec()) is True


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (["algorithm", "name"], "CustomDOE", "Field 'algorithm.name': CustomDOE is not served"),
        (["algorithm", "name"], "NoSuchAlgo", "Field 'algorithm.name': 'NoSuchAlgo' is not an optimisation or DOE"),
        (["algorithm"], {"name": "PYDOE_LHS", "settings": {"n_samples": 4, "callbacks": []}},
         "Field 'algorithm.settings.callbacks' is a callable; only plain values"),
        (["algorithm"], {"name": "MorrisDOE", "settings": {"doe_algo_name": "CustomDOE"}},
         "Field 'algorithm.settings.doe_algo_name': CustomDOE is not served"),
        (["algorithm"], {"name": "MultiStart", "settings": {"multistart_file_path": "/etc/x.h5"}},
         "Field 'algorithm.settings.multistart_file_path': the service decides where files are written"),
        (["algorithm"], {"name": "MNBI", "settings": {"debug_file_path": "x"}},
         "Field 'algorithm.settings.debug_file_path': the service decides"),
        (["algorithm"], {"name": "MultiStart", "settings": {"opt_algo_settings": {"max_iter": 2}}},
         "Field 'algorithm.settings.opt_algo_settings' is an object; only nested settings of GEMSEO models"),
        (["algorithm", "settings"], {"max_iter": "many"}, "Field 'algorithm.settings.max_iter': Input should be a valid integer"),
        (["algorithm", "settings"], {"nope": 1}, "Field 'algorithm.settings.nope' is not a setting of SLSQP."),
        (["algorithm"], {"name": "PYDOE_LHS", "settings": {"n_samples": 4, "n_processes": 2}},
         "Field 'algorithm.settings.n_processes': at most 1 on this server"),
        (["formulation"], "IDF", "Field 'formulation': GEMSEO cannot build this IDF scenario: IDF formulation: the variables"),
        (["formulation"], "BiLevel", "Field 'formulation': GEMSEO cannot build this BiLevel scenario"),
        (["algorithm", "name"], "NELDER-MEAD", "Field 'algorithm.name': NELDER-MEAD cannot solve this problem"),
        (["formulation"], "Magic", "Field 'formulation': 'Magic' is not a formulation of GEMSEO"),
        (["formulation_settings"], {"main_mda_nme": "MDAJacobi"}, "Field 'formulation_settings.main_mda_nme' is not a setting of MDF."),
        (["formulation_settings"], {"main_mda_name": "MDAJacobi", "main_mda_settings": {"tolerance": "low"}},
         "Field 'formulation_settings.main_mda_settings.tolerance': Input should be a valid number"),
        (["formulation_settings"], {"main_mda_settings": {"coupling_structure": {}}},
         "Field 'formulation_settings.main_mda_settings.coupling_structure'"),
        (["formulation_settings"], {"main_mda_name": "MDANewtonRaphson", "main_mda_settings": {"newton_linear_solver_settings": {"nope": 1}}},
         "Field 'formulation_settings.main_mda_settings.newton_linear_solver_settings.nope' is not a setting"),
        (["formulation_settings"], {"main_mda_name": "NoMDA"}, "Field 'formulation_settings"),
        (["formulation_settings"], {"main_mda_settings": {"inner_mda_settings": {"n_processes": 4, "use_threading": False}}},
         "Field 'formulation_settings': its MDA MDAJacobi asks for n_processes=4; at most 1 on this server."),
        (["formulation_settings"], {"main_mda_name": "MDAJacobi", "main_mda_settings": {"n_processes": 2}},
         "Field 'formulation_settings': its MDA MDAJacobi asks for n_processes=2; at most 1"),
        (["design_space", "x_9"], {"lower_bound": [0.0], "upper_bound": [1.0]}, "Field 'design_space.x_9': 'x_9' is not an input"),
        (["design_space", "x_1"], {"lower_bound": [2.0], "upper_bound": [1.0]},
         "Field 'design_space.x_1.lower_bound[0]': 2.0 is above the upper bound 1.0."),
        (["design_space", "x_1"], {"lower_bound": [0.0, 0.0], "upper_bound": [1.0]}, "Field 'design_space.x_1': lower_bound and upper_bound"),
        (["design_space", "x_1"], {"lower_bound": [0.0], "upper_bound": [1.0], "value": [3.0]},
         "Field 'design_space.x_1.value[0]': 3.0 is not within [0.0, 1.0]."),
        (["design_space", "x_1"], {"lower_bound": [0.0], "upper_bound": [1.0], "value": [0.5, 0.5]},
         "Field 'design_space.x_1.value' must have the length of the bounds (1)."),
        (["objective", "name"], "x_1", "Field 'objective.name': 'x_1' is not an output"),
        (["constraints", 1, "name"], "c_3", "Field 'constraints[1].name': 'c_3' is not an output"),
        (["constraints", 1, "type"], "le", "Field 'constraints[1].type' must be 'ineq' or 'eq'."),
        (["observables"], ["y_1", "zz"], "Field 'observables[1]': 'zz' is not an output"),
        (["input_data"], {"obj": [1.0]}, "Field 'input_data.obj': 'obj' is not an input"),
        (["input_data"], {"x_1": [1.0]}, "Field 'input_data.x_1': 'x_1' is a design variable"),
        (["input_data"], {"y_1": [1.0, 2.0]}, "Field 'input_data.y_1' must have 1 values"),
        (["input_data"], {"y_1": ["a"]}, "Field 'input_data.y_1' must be a number or a list of numbers."),
        (["input_data"], {"y_1": {"a": 1}}, "Field 'input_data.y_1' must be a number or a list of numbers."),
        (["algorithm"], {"name": "PYDOE_LHS", "settings": {"n_samples": 4, "n_processes": 2.0}},
         "Field 'algorithm.settings.n_processes': at most 1"),
        (["post_processing"], [{"name": "Animation"}], "Field 'post_processing[0].name': 'Animation' is not a post-processing"),
        (["post_processing"], [{"name": "NoPost"}], "Field 'post_processing[0].name': 'NoPost' is not"),
        (["post_processing"], [{"name": "OptHistoryView", "settings": {"file_path": "/tmp/x"}}],
         "Field 'post_processing[0].settings.file_path': the service decides where files are written"),
        (["post_processing"], [{"name": "OptHistoryView", "settings": {"file_name": "../../x"}}],
         "Field 'post_processing[0].settings.file_name': the service decides"),
        (["post_processing"], [{"name": "OptHistoryView", "settings": {"show": True}}],
         "Field 'post_processing[0].settings.show': the service decides"),
        (["post_processing"], [{"name": "OptHistoryView", "settings": {"file_extension": "html"}}],
         "Field 'post_processing[0].settings.file_extension' must be one of"),
        (["post_processing"], [{"name": "OptHistoryView", "settings": {"obj_min": "low"}}],
         "Field 'post_processing[0].settings.obj_min': Input should be a valid number"),
    ],
)
def test_refusals_name_their_field(engine, path, value, expected):
    message = refused(engine, changed(path, value))
    assert message.startswith(expected), message


def test_processes_up_to_the_limit_and_nested_settings_pass(engine):
    spec = sellar_spec(algorithm={"name": "PYDOE_LHS", "settings": {"n_samples": 4, "n_processes": 2}})
    assert study.check(engine, spec, max_processes=2) is True
    spec = sellar_spec(formulation_settings={"main_mda_settings": {"inner_mda_settings": {"n_processes": 2}}})
    assert study.check(engine, spec, max_processes=2) is False
    spec = sellar_spec(formulation_settings={"main_mda_name": "MDAJacobi", "main_mda_settings": {"tolerance": 1e-10}})
    assert study.check(engine, spec) is False


def test_statistics_off_cost_no_semaphore_and_on_count_as_gemseo_does(engine):
    """jobproc.plain_statistics: with GEMSEO's statistics off (the job processes'), a discipline,
    MDA or chain gets plain counters, not three multiprocessing.Values; on, GEMSEO's own. Fails
    when GEMSEO's ExecutionStatistics no longer sets the attributes it replaces."""
    from multiprocessing.sharedctypes import Synchronized

    from gemseo.core.execution_statistics import ExecutionStatistics
    from gemseo.mda.mda_chain import MDAChain

    assert jobproc.plain_statistics()
    assert not ExecutionStatistics.is_enabled
    chain = MDAChain(create_discipline(list(SELLAR)))
    for statistics in [chain.execution_statistics, *(d.execution_statistics for d in chain.disciplines)]:
        assert [type(getattr(statistics, name)) for name in jobproc.STATISTICS_NAMES] == [jobproc.PlainCounter] * 3
        assert statistics.n_executions is None
    ExecutionStatistics.is_enabled = True
    try:
        discipline = create_discipline("Sellar1")
        counters = [getattr(discipline.execution_statistics, name) for name in jobproc.STATISTICS_NAMES]
        assert all(isinstance(counter, Synchronized) for counter in counters)
        discipline.execute()
        discipline.linearize(compute_all_jacobians=True)
        assert discipline.execution_statistics.n_executions >= 1
        assert discipline.execution_statistics.n_linearizations == 1
        assert discipline.execution_statistics.duration > 0
    finally:
        ExecutionStatistics.is_enabled = False


def h5_content(path):
    """Every group and dataset of an HDF5 file: its dtype, string kind, shape, maxshape, values."""
    import h5py

    found = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            found[name] = (str(item.dtype), h5py.check_string_dtype(item.dtype), item.shape, item.maxshape, repr(item[()]))
        else:
            found[name] = "group"

    with h5py.File(path) as file:
        file.visititems(visit)
    return found


@pytest.mark.parametrize("spec", [sellar_spec(), analytic_spec(60), sobieski_spec()], ids=["sellar", "doe", "maximise"])
def test_problem_h5_is_the_file_gemseo_writes(engine, spec, tmp_path, monkeypatch):
    """study.write_problem writes what OptimizationProblem.to_hdf writes for the same problem,
    group for group, dataset for dataset (fails when GEMSEO's format moves); a point with an
    output it does not write itself (none here) goes to GEMSEO's writer whole."""
    problems, write = [], study.write_problem
    monkeypatch.setattr(study, "write_problem", lambda problem, path: (problems.append(problem), write(problem, path)))
    run_study(engine, spec, tmp_path / "study")
    problem = problems[0]
    problem.to_hdf(tmp_path / "gemseo.h5")
    ours = h5_content(tmp_path / "study" / study.H5_NAME)
    assert ours == h5_content(tmp_path / "gemseo.h5")
    assert len([name for name in ours if name.startswith("x/")]) == len(problem.database) > 0
    problem.database.store(problem.design_space.get_current_value() + 0.5, {})
    write(problem, tmp_path / "fallback.h5")
    problem.to_hdf(tmp_path / "gemseo-fallback.h5")
    assert h5_content(tmp_path / "fallback.h5") == h5_content(tmp_path / "gemseo-fallback.h5")


def test_each_discipline_runs_once_per_point(engine, tmp_path, capfd):
    """The objective from one discipline, a constraint from another computed from it: one run
    of the first per design point, as a local scenario does (GEMSEO's simple cache), not one per
    function."""
    spec = {
        "disciplines": [{"class_name": "Counted"}, {"class_name": "AnalyticDiscipline", "options": {"expressions": {"z": "y**2"}}}],
        "formulation": "DisciplinaryOpt",
        "design_space": {"x": {"lower_bound": [0.0], "upper_bound": [1.0], "value": [0.5]}},
        "objective": {"name": "y"},
        "constraints": [{"name": "z", "type": "ineq"}],
        "algorithm": {"name": "PYDOE_FULLFACT", "settings": {"n_samples": 5}},
    }
    capfd.readouterr()
    _, evaluations = run_study(engine, spec, tmp_path / "w")
    assert len(evaluations) == 5
    assert capfd.readouterr().out.count("run at") == 5


def test_records_built_in_batches_by_the_sender_are_those_built_one_by_one(engine, tmp_path):
    """In a job process the recorder packs the new points together and the sender sends them in
    a few messages, which the worker unpacks: the same records as the callback gets one by one."""
    spec = analytic_spec(300)
    spec["algorithm"]["settings"]["random_state"] = 1
    del spec["post_processing"]
    _, one_by_one = run_study(engine, spec, tmp_path / "one")
    messages = []
    sender = jobproc.EvaluationSender(messages.append)
    (tmp_path / "batched").mkdir()
    try:
        summary = study.run(engine, spec, tmp_path / "batched", sender.send_batch, sender=sender)
    finally:
        sender.close()
    batched = [evaluation for message in messages for evaluation in study.unpack(message["batch"])]
    assert batched == one_by_one and summary["n_evaluations"] == 300
    assert summary["best"] is None  # the worker, which has the records, fills it in
    assert len(messages) < 30  # one message per 50 ms, not one per evaluation


def test_an_evaluation_held_for_its_batch_leaves_during_the_next_evaluation(engine, tmp_path):
    """A fast evaluation that ends within 50 ms of the last batch waits for the sender's alarm,
    which comes in the middle of the next evaluation (here a sleep of 0.6 s), not after it; a
    slow evaluation leaves as it ends. The alarm does not cut the sleep short."""
    spec = {
        "disciplines": [{"class_name": "Timestamp"}],
        "formulation": "DisciplinaryOpt",
        "design_space": {"x": {"lower_bound": [0.0], "upper_bound": [1.0]}, "delay": {"lower_bound": [0.0], "upper_bound": [0.6]}},
        "objective": {"name": "y"},
        "observables": ["t"],
        # (x, delay): (0, 0), (1, 0), (0, 0.6), (1, 0.6)
        "algorithm": {"name": "PYDOE_FULLFACT", "settings": {"n_samples": 4}},
    }
    sent = []
    before = signal.getsignal(signal.SIGALRM)
    sender = jobproc.EvaluationSender(lambda message: sent.append((time.time(), message)))
    (tmp_path / "w").mkdir()
    try:
        summary = study.run(engine, spec, tmp_path / "w", sender.send_batch, sender=sender)
    finally:
        sender.close()
    assert signal.getsignal(signal.SIGALRM) is before
    assert summary["n_evaluations"] == 4
    left = {}  # evaluation number: (when its message left, when it ended)
    for at, message in sent:
        for evaluation in study.unpack(message["batch"]):
            left[evaluation["evaluation"]] = (at, evaluation["observables"]["t"][0])
    assert sorted(left) == [1, 2, 3, 4]
    assert [round(left[n][1] - left[n - 1][1], 1) for n in (2, 3, 4)] == [0.0, 0.6, 0.6]
    assert left[1][0] - left[1][1] < 0.05  # the first goes at once
    assert left[2][0] - left[2][1] < 0.1 and left[2][0] < left[3][1] - 0.4  # during the third's sleep
    assert left[3][0] - left[3][1] < 0.05 and left[4][0] - left[4][1] < 0.05


def failing_doe(n_samples):
    return {
        "disciplines": [{"class_name": "Failing"}],
        "formulation": "DisciplinaryOpt",
        "design_space": {"x": {"lower_bound": [0.0], "upper_bound": [1.0]}},
        "objective": {"name": "y"},
        "algorithm": {"name": "PYDOE_LHS", "settings": {"n_samples": n_samples}},
    }


def test_a_doe_whose_every_evaluation_fails_fails_and_says_why(engine, tmp_path):
    # GEMSEO's DOE logs a point whose evaluation raised a ValueError and goes on: the study
    # would end finished with nothing.
    with pytest.raises(study.EvaluationsFailed) as raised:
        run_study(engine, failing_doe(4), tmp_path)
    text = str(raised.value)
    assert text.startswith("All 4 evaluations of the DOE failed") and "\n" not in text
    assert "the first raised ValueError: the model diverged at x=" in text
    # The job process reports it as the job's error, its text as the message.
    reply = jobproc.execute_job(
        engine, {"op": "study", "job": {"workdir": str(tmp_path)}, "spec": failing_doe(3), "max_processes": 1}, lambda _: None
    )
    assert reply["job_status"] == "failed" and reply["error"] == "EvaluationsFailed"
    assert reply["traceback"].startswith("All 3 evaluations of the DOE failed")
    assert OptimizationProblem.from_hdf(tmp_path / "problem.h5").design_space.variable_names == ["x"]


def one_point(number, x, y):
    """A packed batch of one evaluation, as a study's Recorder sends it."""
    return {"objective": "y", "sign": 1.0, "label": "y", "constraints": [], "tolerances": {}, "observables": [],
            "slices": [("x", 0, 1)], "first": number, "x": ("rows", [[x]]), "functions": {"y": ("rows", [[y]])}}


def test_nan_objectives_are_recorded_as_null_and_never_best(engine, tmp_path):
    summary, evaluations = run_study(engine, log_doe(-1.0, 1.0), tmp_path)
    assert summary["status"] == "finished" and summary["n_evaluations"] == 5
    assert [evaluation["objective"]["f"] for evaluation in evaluations] == [None, None, None, math.log(0.5), 0.0]
    assert summary["best"] == study.best(evaluations) and summary["best"]["evaluation"] == 4  # x = 0.5, feasible
    assert study.history_json(evaluations)["functions"]["f"] == [None, None, None, math.log(0.5), 0.0]
    rows = list(csv.DictReader(io.StringIO(study.history_csv(evaluations))))
    assert [row["f"] for row in rows] == ["", "", "", repr(math.log(0.5)), "0.0"]


def test_a_doe_whose_objective_is_nan_everywhere_fails_and_says_why(engine, tmp_path):
    # GEMSEO's result of such a run is a KeyError from its database: the study says what happened.
    evaluations = []
    with pytest.raises(study.EvaluationsFailed) as raised:
        run_study(engine, log_doe(-2.0, -1.0), tmp_path, evaluations)
    assert str(raised.value).startswith("The objective was NaN or infinite at each of the 5 points evaluated")
    assert "\n" not in str(raised.value)
    assert len(evaluations) == 5 and all(evaluation["objective"]["f"] is None for evaluation in evaluations)
    assert study.best(evaluations) is None
    assert OptimizationProblem.from_hdf(tmp_path / "problem.h5").design_space.variable_names == ["x"]
    reply = jobproc.execute_job(
        engine, {"op": "study", "job": {"workdir": str(tmp_path)}, "spec": log_doe(-2.0, -1.0), "max_processes": 1},
        lambda _: None,
    )
    assert reply["job_status"] == "failed" and reply["error"] == "EvaluationsFailed"
    assert reply["traceback"].startswith("The objective was NaN or infinite at each of the 5 points")


class StudyProcess:
    """A job process whose study sends a batch of evaluations, is deleted (cancelled, then
    removed), sends another, and ends."""

    pid = 4242

    def ask(self, message, deadline=None, should_stop=None, on_message=None, grace=0.0):
        import jobs
        import store

        on_message({"batch": one_point(1, 0.5, 1.0)})
        jobs.delete_study(store.get_study(message["job"]["study_id"]))
        on_message({"batch": one_point(2, 0.7, 0.5)})
        return {"ok": True, "job_status": "finished", "output_data": "{}"}


def test_a_study_deleted_while_it_runs_says_so_in_one_line(tmp_store, gaas_log, caplog):
    import jobs
    from test_internals import FakePool

    caplog.set_level(logging.INFO, logger="gaas")
    user_id = tmp_store.add_user("alice", "hash")
    study_fields = {"user_id": user_id, "name": "s", "spec": json.dumps(failing_doe(2)), "formulation": "DisciplinaryOpt",
                    "algorithm": "{}", "objective": '{"name": "y"}'}
    job_fields = {"user_id": user_id, "discipline_class_name": "Study", "job_type": "study", "job_status": "pending",
                  "execution_mode": "asynchronous"}
    row = tmp_store.create_study(study_fields, job_fields, jobs.workdir_prefix(user_id))
    assert jobs.run_queued(FakePool(StudyProcess()), [row["job_id"]], "worker:here:1:x") == ([None], [])
    assert tmp_store.get_study(row["id"]) is None
    lines = [record.getMessage() for record in gaas_log]
    assert not [record for record in gaas_log if record.exc_info], lines  # no traceback
    assert lines.count(f"study {row['id']} was deleted: its last evaluations are dropped") == 1, lines


def test_a_batch_converts_each_value_as_one_value_alone():
    """A batch's values packed together (study._column) and unpacked give what _numbers gives
    each alone: NaN and infinities null, complex values their real part, a value not computed None."""
    batches = [
        [numpy.array([1.0, 2.0]), numpy.array([numpy.nan, numpy.inf])],
        [numpy.float64(3.0), numpy.float64(-numpy.inf)],
        [numpy.array([1.0]), None, numpy.array([2.0, 3.0])],
        [numpy.array([1 + 2j]), numpy.array([3.0])],
        [numpy.array([[1.0, 2.0], [3.0, 4.0]])],
        [numpy.array([1, 2])],
    ]
    for values in batches:
        alone = [None if value is None else study._numbers(value) for value in values]
        assert study._unpacked(study._column(values)) == alone
    assert study._unpacked(study._column(batches[0])) == [[1.0, 2.0], [None, None]]
    assert study._unpacked(study._column(batches[3])) == [[1.0], [3.0]]
    assert study._column(batches[0])[0] == "d"  # one conversion for all, the common case


def test_gemseo_imported_with_light_stacks_makes_the_same_enums():
    """jobproc.light_stacks: GEMSEO's merged enums (merge_enums reads inspect.stack()) get the same
    module and qualified name as with the real inspect.stack, and pickle; the real one is back after."""
    names = ["gemseo.core.mdo_functions.mdo_function:MDOFunction.FunctionType",
             "gemseo.core.discipline.discipline:Discipline.ApproximationMode",
             "gemseo.core.discipline.discipline:Discipline.LinearizationMode",
             "gemseo.core.chains.chain:MDOChain.LinearizationMode",
             "gemseo.algos.evaluation_problem:EvaluationProblem.DifferentiationMethod"]
    code = (
        "import importlib, inspect, json, pickle, sys\n"
        "light = sys.argv[1] == 'light'\n"
        "if light:\n"
        "    import jobproc; context = jobproc.light_stacks(); context.__enter__()\n"
        "import gemseo, gemseo.algos.evaluation_problem, gemseo.core.chains.chain\n"
        "if light:\n"
        "    context.__exit__(None, None, None); assert inspect.stack is jobproc.STACK\n"
        "found = []\n"
        f"for name in {names!r}:\n"
        "    module, path = name.split(':'); enum = importlib.import_module(module)\n"
        "    for part in path.split('.'): enum = getattr(enum, part)\n"
        "    member = next(iter(enum))\n"
        "    assert pickle.loads(pickle.dumps(member)) is member\n"
        "    found.append([enum.__module__, enum.__qualname__, [m.value for m in enum], enum.__doc__])\n"
        "print(json.dumps(found))\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code, how], cwd=CODE, capture_output=True, text=True, timeout=300)
            for how in ("light", "real")]
    assert all(run.returncode == 0 for run in runs), [run.stderr[-2000:] for run in runs]
    assert runs[0].stdout == runs[1].stdout and len(json.loads(runs[0].stdout)) == len(names)
