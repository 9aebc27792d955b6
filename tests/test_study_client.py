"""gaas_client.run_study against the live service: the problem and the history it returns, the
progress it shows, Ctrl-C (in a process of its own), re-attaching, and a refused spec."""

import contextlib
import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest
from gemseo.problems.mdo.sellar.sellar_1 import Sellar1
from gemseo.problems.mdo.sellar.sellar_2 import Sellar2
from gemseo.problems.mdo.sellar.sellar_system import SellarSystem
from numpy import asarray, isnan
from numpy.testing import assert_allclose

from conftest import CODE
from gaas_client import RemoteError, follow_study, run_study
from sellar import sellar_scenario
from study_specs import sellar_spec

LOGIN = {"user": "alice", "password": "alice-pw"}


def slow_spec(n_samples=60, delay=0.1):
    """A DOE of n_samples evaluations of delay seconds each: echo = the integer part of tag, f and
    g computed from it; g <= 0 (feasible) for tags up to 60 only."""
    return {
        "name": "slow",
        "disciplines": [
            {"class_name": "WriteTag"},
            {"class_name": "AnalyticDiscipline", "options": {"expressions": {"f": "(echo - 30)**2/100", "g": "echo - 60"}}},
        ],
        "formulation": "DisciplinaryOpt",
        "design_space": {"tag": {"lower_bound": [0.0], "upper_bound": [99.0]}},
        "objective": {"name": "f"},
        "constraints": [{"name": "g", "type": "ineq"}],
        "observables": ["echo"],
        "algorithm": {"name": "PYDOE_LHS", "settings": {"n_samples": n_samples, "random_state": 1}},
        "input_data": {"delay": [delay]},
    }


def submit(api, spec):
    response = api.post("/v1/study", json=spec)
    assert response.status_code == 202, response.text
    return response.json()


def wait_study(api, study_id, timeout=60):
    for _ in range(timeout // 5):
        study = api.get(f"/v1/study/{study_id}?long_polling=true&long_polling_timeout=5").json()
        if study["study_status"] in ("finished", "failed"):
            return study
    raise AssertionError(f"study {study_id} did not end in {timeout} s")


@pytest.fixture(scope="module")
def sellar_run(live, tmp_path_factory):
    """One MDF Sellar study with SLSQP, run by the client, its progress lines captured (stderr
    then is no terminal)."""
    folder = tmp_path_factory.mktemp("study")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        result = run_study(sellar_spec(), live.url, directory=folder, **LOGIN)
    return {**result._asdict(), "stderr": stderr.getvalue(), "folder": folder}


def test_run_study_returns_the_local_problem(live, sellar_run):
    local = sellar_scenario([Sellar1(), Sellar2(), SellarSystem()])
    local.add_observable("y_1")
    local.execute(algo_name="SLSQP", max_iter=50)
    expected = local.formulation.optimization_problem

    from gemseo.algos.optimization_problem import OptimizationProblem

    problem = sellar_run["problem"]
    assert problem.optimum.is_feasible
    assert problem.optimum.objective == pytest.approx(expected.optimum.objective, rel=1e-6)
    assert_allclose(problem.optimum.design, expected.optimum.design, rtol=1e-6, atol=1e-12)
    assert len(problem.database) == len(expected.database)
    n_obj = len(expected.database.get_function_history("obj"))
    assert len(problem.database.get_function_history("obj")) == n_obj
    kept = OptimizationProblem.from_hdf(sellar_run["folder"] / "problem.h5")  # the file run_study kept
    assert len(kept.database) == len(problem.database) and kept.optimum.objective == problem.optimum.objective
    study = sellar_run["study"]
    assert study["study_status"] == "finished" and study["n_evaluations"] == n_obj
    assert sellar_run["job_id"] == study["job_id"]
    assert sellar_run["best"]["objective"] == pytest.approx(expected.optimum.objective, rel=1e-6)
    assert sellar_run["best"]["feasible"] is True
    # Plain lines (stderr is no terminal), the last one the end.
    lines = [line for line in sellar_run["stderr"].splitlines() if line.startswith("Study ")]  # not GEMSEO's log
    assert "\r" not in sellar_run["stderr"]
    assert lines[-1].startswith(f"Study {study['id']} finished: {n_obj} evaluations, best obj 3.18339 (feasible)")


def test_the_history_dataset_equals_the_history_json(live, alice, sellar_run):
    study_id = sellar_run["study"]["id"]
    result = follow_study(study_id, live.url, progress=False, **LOGIN)  # re-attached, after its end
    history = alice.get(f"/v1/study/{study_id}/history").json()
    dataset = result.history
    assert list(dataset.index) == history["evaluation"] == list(range(1, len(history["evaluation"]) + 1))
    assert set(dataset.get_variable_names("designs")) == set(history["x"]) == {"x_1", "x_2", "x_shared"}
    assert set(dataset.get_variable_names("functions")) == set(history["functions"]) == {"obj", "c_1", "c_2", "y_1"}
    for group, key in (("designs", "x"), ("functions", "functions")):
        for name, values in history[key].items():
            column = dataset.get_view(group_names=group, variable_names=name).to_numpy()
            for row, value in enumerate(values):
                if value is None:
                    assert isnan(column[row]).all()
                else:
                    assert column[row].tolist() == asarray(value, dtype=float).reshape(-1).tolist()
    assert result.best == sellar_run["best"]
    assert result.problem.optimum.objective == pytest.approx(sellar_run["best"]["objective"], rel=1e-12)


def test_a_refused_spec_raises_with_the_servers_detail(live):
    spec = sellar_spec(algorithm={"name": "NoSuchAlgorithm"})
    with pytest.raises(RemoteError, match=r"POST /v1/study: 422 .*algorithm\.name.*NoSuchAlgorithm"):
        run_study(spec, live.url, progress=False, **LOGIN)
    with pytest.raises(RemoteError, match="Signing in as 'alice': 401"):
        run_study(sellar_spec(), live.url, user="alice", password="wrong", progress=False)
    with pytest.raises(RemoteError, match=r"GET /v1/study/999999: 404"):
        follow_study(999999, live.url, progress=False, **LOGIN)


def test_ctrl_c_cancels_the_study_on_the_server(live, alice):
    code = (
        "import json, sys\n"
        "import gaas_client\n"
        "gaas_client.run_study(json.loads(sys.argv[2]), sys.argv[1], 'alice', 'alice-pw')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, live.url, json.dumps(slow_spec(n_samples=300))],
        env=dict(os.environ, PYTHONPATH=str(CODE / "client")),
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = process.stderr.readline()
        while first.startswith("Study ") and " running: " not in first:  # pending yet
            first = process.stderr.readline()
        assert first.startswith("Study ") and " running: " in first, first + process.stderr.read()
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode != 0
    study_id = int(first.split()[1])
    assert f"Study {study_id} cancelled on the server." in rest
    assert "KeyboardInterrupt" in rest
    study = wait_study(alice, study_id, timeout=30)
    assert (study["study_status"], study["error"]) == ("failed", "cancelled")
    assert 1 <= study["n_evaluations"] < 300  # its history so far is kept


def read_until(fd, text, timeout=60):
    """What a terminal (the master side of a pty) shows until text appears."""
    seen, deadline = b"", time.monotonic() + timeout
    while text.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"{text!r} not shown in {timeout} s: {seen.decode(errors='replace')[-2000:]}"
        seen += os.read(fd, 4096)
    return seen.decode(errors="replace")


def test_ctrl_c_on_a_terminal_asks_before_cancelling(live, alice):
    code = (
        "import json, sys\n"
        "import gaas_client\n"
        "gaas_client.run_study(json.loads(sys.argv[2]), sys.argv[1], 'alice', 'alice-pw')\n"
    )
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", code, live.url, json.dumps(slow_spec(n_samples=300))],
        env=dict(os.environ, PYTHONPATH=str(CODE / "client")), stdin=slave, stdout=slave, stderr=slave,
    )
    os.close(slave)
    try:
        shown = read_until(master, " running: ")
        shown += read_until(master, " running: ")  # rewritten in place: a carriage return, no new line
        assert "\r" in shown and "evaluations" in shown
        process.send_signal(signal.SIGINT)
        read_until(master, "Cancel the study on the server? [y/N] ")
        os.write(master, b"y\n")
        end = read_until(master, "cancelled on the server.")
        assert process.wait(30) != 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    study_id = int(end.split("Study ")[-1].split()[0])
    assert wait_study(alice, study_id, timeout=30)["error"] == "cancelled"


def test_follow_a_running_study_until_its_end(live, alice, capfd):
    study = submit(alice, slow_spec(n_samples=12, delay=0.1))
    result = follow_study(study["id"], live.url, poll_timeout=5, **LOGIN)
    assert result.study["study_status"] == "finished" and result.study["n_evaluations"] == 12
    assert list(result.history.index) == list(range(1, 13))
    echo = result.history.get_view(variable_names="echo").to_numpy().ravel()
    tag = result.history.get_view(variable_names="tag").to_numpy().ravel()
    assert echo.tolist() == [float(int(t)) for t in tag]
    feasible = [e <= 60 for e in echo]
    assert result.best["feasible"] is any(feasible)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("Study ")]
    assert lines[0].startswith(f"Study {study['id']} ") and lines[-1].startswith(f"Study {study['id']} finished: 12 evaluations")

    cancelled = submit(alice, slow_spec(n_samples=2, delay=5))
    assert alice.post(f"/v1/study/{cancelled['id']}/cancel").status_code == 200
    with pytest.raises(RemoteError, match=rf"Study {cancelled['id']} failed on the server \(cancelled\)"):
        follow_study(cancelled["id"], live.url, progress=False, **LOGIN)
