"""client/gaas_client.py against the live service: MDO with GEMSEO's cache on, batches as datasets, files."""

import json
import os
import subprocess
import sys

import gemseo
import pytest
from gemseo import create_design_space
from gemseo import create_scenario
from gemseo.problems.mdo.sellar.sellar_1 import Sellar1
from gemseo.problems.mdo.sellar.sellar_2 import Sellar2
from gemseo.problems.mdo.sellar.sellar_system import SellarSystem
from numpy import array
from numpy import isnan
from numpy.testing import assert_allclose

import gaas_client
from conftest import CODE
from gaas_client import RemoteDiscipline
from gaas_client import RemoteError
from gaas_client import run_batch
from sellar import SELLAR, assert_reaches, jobs_since, newest_job_id, optimum, sellar_scenario


@pytest.fixture(autouse=True, scope="module")
def gemseo_defaults():
    """GEMSEO's own configuration, as a client has it: a test that built a jobproc.Engine in
    this process before (its cache off, for jobs) leaves none of it here."""
    gemseo.configure()


def remote(live, class_name, **options):
    return RemoteDiscipline(class_name, live.url, "alice", "alice-pw", **options)


@pytest.mark.parametrize(
    ("formulation_name", "options"),
    [("MDF", {}), ("IDF", {"asynchronous": True, "linearize_with_execute": True})],
    ids=["MDF-synchronous", "IDF-asynchronous-linearize-with-execute"],
)
def test_sellar_with_remote_disciplines_reaches_the_local_optimum(live, alice, formulation_name, options):
    local = sellar_scenario([Sellar1(), Sellar2(), SellarSystem()], formulation_name)
    local.execute(algo_name="SLSQP", max_iter=30)
    expected = local.optimization_result

    before = newest_job_id(alice)
    disciplines = [remote(live, class_name, **options) for class_name in SELLAR]
    assert all(discipline.cache is not None for discipline in disciplines)  # GEMSEO's default, kept
    scenario = sellar_scenario(disciplines, formulation_name)
    scenario.execute(algo_name="SLSQP", max_iter=30)

    n_gradients = assert_reaches(optimum(scenario), expected)
    jobs = jobs_since(alice, before)
    assert all(job["job_status"] == "finished" for job in jobs)
    for class_name in SELLAR:
        types = [job["job_type"] for job in jobs if job["discipline_class_name"] == class_name]
        if options.get("linearize_with_execute"):
            # Every run brought its Jacobian: a linearization never needed a job of its own.
            assert set(types) == {"execute_and_linearize"}, class_name
        else:
            assert types.count("execute_and_linearize") >= n_gradients, class_name


def test_a_point_is_linearized_by_the_server_once(live, alice):
    with_execute = remote(live, "Sellar1", linearize_with_execute=True)
    with_execute.execute({"x_1": array([2.0])})
    job_id = with_execute.last_job["id"]
    jacobian = with_execute.linearize({"x_1": array([2.0])}, compute_all_jacobians=True)
    assert with_execute.last_job["id"] == job_id  # the Jacobian came with the run, from the cache
    assert jacobian["y_1"]["x_1"][0, 0] == pytest.approx(0.5 / (2.0 + 1.0 - 0.2) ** 0.5)
    assert jacobian["y_1"]["x_shared"].shape == (1, 2)
    assert "x_2" not in jacobian["y_1"]  # the server sends it, but Sellar1 has no such input

    before = newest_job_id(alice)
    discipline = remote(live, "Sellar1", name="linearized once")
    discipline.linearize({"x_1": array([2.0])}, compute_all_jacobians=True)
    discipline.execute({"x_1": array([3.0])})  # GEMSEO's simple cache now forgets x_1 = 2
    again = discipline.linearize({"x_1": array([2.0])}, compute_all_jacobians=True)
    assert again["y_1"]["x_1"] == pytest.approx(jacobian["y_1"]["x_1"])
    # Run again at x_1 = 2 (no cache entry), but its Jacobian is not asked again.
    jobs = sorted(jobs_since(alice, before), key=lambda job: job["id"])
    types = [job["job_type"] for job in jobs if job["name"] == "linearized once"]
    assert types == ["execute", "execute_and_linearize", "execute", "execute"]


def test_batch_of_a_doe_equals_a_local_doe_scenario(live):
    design_space = create_design_space()
    design_space.add_variable("x_1", lower_bound=0.0, upper_bound=10.0)
    local = create_scenario([Sellar1()], "y_1", design_space, scenario_type="DOE", formulation_name="DisciplinaryOpt")
    local.execute(algo_name="PYDOE_LHS", n_samples=20, random_state=1)
    expected = local.to_dataset(opt_naming=False).to_dict_of_arrays()

    doe = {"algo_name": "PYDOE_LHS", "n_samples": 20, "design_space": design_space, "settings": {"random_state": 1}}
    dataset = run_batch("Sellar1", live.url, "alice", "alice-pw", doe=doe, progress=False)
    result = dataset.to_dict_of_arrays()

    assert {group: set(arrays) for group, arrays in result.items()} == {"inputs": {"x_1"}, "outputs": {"y_1"}}
    for group, arrays in expected.items():
        for name, values in arrays.items():
            assert_allclose(result[group][name], values, rtol=1e-10)
    assert dataset.misc["batch_id"] > 0
    assert dataset.misc["job_status"] == ["finished"] * 20


def test_batch_of_samples_with_a_failed_point(live, capfd):
    # A point of valid inputs that the model refuses (bad inputs are refused whole, with 422).
    samples = [{"x": array([1.0])}, {"x": -2.0}, {"x": [4.0]}]
    with pytest.warns(UserWarning, match="1 of 3 points .* failed"):
        dataset = run_batch("SquareRoot", live.url, "alice", "alice-pw", samples=samples)
    assert "3/3 points, 1 failed" in capfd.readouterr().err

    assert dataset.get_view(variable_names="x").to_numpy().ravel().tolist() == [1.0, -2.0, 4.0]
    y = dataset.get_view(variable_names="y").to_numpy().ravel()
    assert y[0] == 1.0 and y[2] == 2.0 and isnan(y[1])
    assert dataset.misc["error"][1] == "ValueError"


def test_input_file_uploaded_once_and_output_folder_downloaded(live, alice, tmp_path):
    source = tmp_path / "input.txt"
    # More than two chunks, to check their order and the SHA-256 of the whole.
    source.write_bytes(b"abcd" * (gaas_client.CHUNK_SIZE // 2 + 1000))
    downloads = tmp_path / "downloads"
    discipline = remote(live, "ReadInput", input_files=[source], output_files=["results"], directory=downloads)
    assert discipline.execute()["length"][0] == source.stat().st_size
    assert (downloads / "results" / "upper.txt").read_bytes() == source.read_bytes().upper()

    n_files = len(alice.get("/v1/file").json())
    discipline.execute({"x": array([2.0])})
    assert len(alice.get("/v1/file").json()) == n_files  # unchanged: not uploaded again
    source.write_bytes(b"changed")
    assert discipline.execute({"x": array([3.0])})["length"][0] == 7.0
    assert (downloads / "results" / "upper.txt").read_bytes() == b"CHANGED"


@pytest.mark.parametrize("asynchronous", [False, True])
def test_failed_job_raises_with_the_server_message(live, asynchronous):
    discipline = remote(live, "Failing", asynchronous=asynchronous, poll_timeout=5)
    with pytest.raises(RemoteError, match=r"\(ValueError\): ValueError: the model diverged at x=1.0") as info:
        discipline.execute()
    assert 'in _run\n    raise ValueError("the model diverged' in str(info.value)  # the remote traceback


def test_refused_token_unknown_discipline_and_wrong_password(live):
    discipline = remote(live, "Sellar1")
    discipline.connection.token = "expired"
    assert discipline.execute({"x_1": array([2.0])})["y_1"][0] == pytest.approx((2.0 + 1.0 - 0.2) ** 0.5)
    assert discipline.connection.token != "expired"  # signed in again after the 401
    with pytest.raises(RemoteError, match="404 Unknown discipline 'NoSuchThing'"):
        remote(live, "NoSuchThing")
    with pytest.raises(RemoteError, match="Signing in as 'alice': 401"):
        RemoteDiscipline("Sellar1", live.url, "alice", "wrong")


@pytest.fixture(scope="module", autouse=True)
def factory_process(live, tmp_path_factory):
    """GEMSEO's factory in a process with client/ on GEMSEO_PATH, started before the
    first test: its half minute of importing GEMSEO then overlaps the other tests. It runs as
    bob, so that the tests counting alice's jobs never see its job."""
    code = (
        "import json, sys, gemseo, numpy\n"
        "discipline = gemseo.create_discipline('RemoteDiscipline', discipline_class_name='Sellar1',"
        " url=sys.argv[1], user='bob', password='bob-pw')\n"
        "print(json.dumps({'class': type(discipline).__name__,"
        " 'y_1': discipline.execute({'x_1': numpy.array([2.0])})['y_1'].tolist()}))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, live.url],
        cwd=tmp_path_factory.mktemp("factory"),
        env={**os.environ, "GEMSEO_PATH": str(CODE / "client")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_gemseo_factory_finds_remote_discipline_on_gemseo_path(factory_process):
    stdout, stderr = factory_process.communicate(timeout=180)
    assert factory_process.returncode == 0, stderr
    answer = json.loads(stdout.strip().splitlines()[-1])
    assert answer["class"] == "RemoteDiscipline"
    assert answer["y_1"][0] == pytest.approx((2.0 + 1.0 - 0.2) ** 0.5)
