"""The client as a user installs it: a wheel of client/ in clean venvs, one with the server's
GEMSEO and one with the newest GEMSEO 7, nothing of the server, against the live service."""

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import venvs
from conftest import CODE

CLIENT = CODE / "client"
CHECK = CODE / "tests" / "client_package_check.py"
GEMSEOS = venvs.CLIENT_GEMSEOS
PIP_TIMEOUT = 900


@pytest.fixture(scope="session")
def client_wheel(tmp_path_factory):
    """A wheel of client/, built as `pip wheel` builds it for a user."""
    folder = tmp_path_factory.mktemp("client-wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), str(CLIENT)],
        capture_output=True, text=True, timeout=PIP_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = folder.glob("gaas_client-*.whl")
    return wheel


@pytest.fixture(scope="session")
def client_venvs(client_wheel):
    """The Python of each venv of GEMSEOS with the client's dependencies (tests/venvs.py: kept
    between runs, begun at the session's start: conftest.py), this wheel installed in it."""

    def made(requirement):
        python = venvs.venv(venvs.client_requirements(requirement)) / "python"
        command = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(client_wheel)]
        subprocess.run(command, check=True, timeout=PIP_TIMEOUT)
        return python

    with ThreadPoolExecutor(len(GEMSEOS)) as pool:
        return dict(zip(GEMSEOS, pool.map(made, GEMSEOS.values())))


@pytest.fixture(scope="module")
def checks(live, client_venvs, tmp_path_factory):
    """tests/client_package_check.py run in every venv at once, as a user of its own; the
    processes, each test waits for its own."""
    live.add_user("packaged", "packaged-pw")
    # No GEMSEO_PATH, no PYTHONPATH, not the script's folder (-I): the venv alone.
    env = {key: value for key, value in os.environ.items() if key not in ("GEMSEO_PATH", "PYTHONPATH")}
    processes = {
        name: subprocess.Popen(
            [str(python), "-I", str(CHECK), live.url, "packaged", "packaged-pw"],
            cwd=tmp_path_factory.mktemp(name), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, python in client_venvs.items()
    }
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("name", GEMSEOS)
def test_installed_client_runs_sellar_remotely(checks, client_venvs, name):
    process = checks[name]
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-5000:]
    answer = json.loads(stdout.strip().splitlines()[-1])

    assert answer["gemseo"] == GEMSEOS[name].partition("==")[2]
    assert answer["client_file"].startswith(str(client_venvs[name].parent.parent))  # the wheel's, not client/
    assert answer["server_importable"] == []
    assert answer["gemseo_path"] is None
    assert answer["client_warnings"] == []
    assert answer["factory"]["class"] == "RemoteDiscipline"
    assert answer["factory"]["y_1"] == pytest.approx([2.8**0.5])
    assert answer["synchronous"] == pytest.approx([3.8**0.5])
    assert answer["asynchronous"] == pytest.approx([3.0])
    local, remote = answer["local_mdf"], answer["remote_mdf"]
    assert remote["is_feasible"]
    assert remote["f_opt"] == pytest.approx(local["f_opt"], rel=1e-4)
    assert remote["x_opt"] == pytest.approx(local["x_opt"], abs=1e-4)
    assert answer["batch"] == {
        "inputs": {"x_1": [[1.0], [4.0]]},
        "outputs": {"y_1": [pytest.approx([1.8**0.5]), pytest.approx([4.8**0.5])]},
    }
    study = answer["study"]
    assert study["best"] == pytest.approx(local["f_opt"], rel=1e-4)
    assert study["history"] == "OptimizationDataset" and study["designs"] == ["x_1", "x_2", "x_shared"]
    assert study["rows"] == study["evaluations"] >= 2


def test_server_does_not_import_the_client():
    imported = {}
    for path in CODE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            imported[path.name] = imported.get(path.name, set()) | {name.partition(".")[0] for name in names}
    assert [name for name, modules in imported.items() if "gaas_client" in modules] == []
    assert not (CODE / "gaas_client.py").exists()
