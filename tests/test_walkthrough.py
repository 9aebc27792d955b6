"""The README's curl walkthrough works as written, pasted into bash: against the test service,
and after the README's quick start on a fresh clone that installed requirements.txt only."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import CODE
from servers import free_port

README = CODE / "README.md"


def walkthrough():
    text = README.read_text()
    block = re.search(r"<!-- walkthrough:start -->\n```bash\n(.*?)```\n<!-- walkthrough:end -->", text, re.S)
    return block.group(1)


def paste(url, password, cwd):
    """Run the walkthrough as pasted into bash; return what it printed, checked."""
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + walkthrough()],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "URL": url, "PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"username":"demo"' in out
    assert "Sellar1" in out and '"x_1"' in out
    assert '{"y_1": [1.6733200530681511]}' in out
    assert '"y_1": {"x_1": [[' in out
    assert "downloaded the same bytes" in out
    lines = out.rstrip().splitlines()
    # The last job's status, the batch's status after its long poll, then the CSV header and two points.
    assert lines[-5:-3] == ["finished", "finished"], lines[-5:]
    assert lines[-3].startswith("batch_index,job_id,job_status,error,x_1,")
    assert all(line.split(",")[2] == "finished" for line in lines[-2:])


@pytest.mark.every_backend
def test_curl_walkthrough(live, tmp_path):
    live.add_user("demo", "demo-pw")
    paste(live.url, "demo-pw", tmp_path)


def test_quick_start_then_walkthrough_on_a_fresh_clone(tmp_path):
    """What a new user does: clone, bin/dev.sh (it installs requirements.txt alone), paste."""
    clone = tmp_path / "gaas"
    subprocess.run(["git", "clone", "-q", str(CODE), str(clone)], check=True)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GEMSEO_HTTP_", "GAAS_", "VIRTUAL_ENV"))}
    # pip leaves the byte-compiling of GEMSEO's dependencies to their first import: half its time.
    env.update(GEMSEO_HTTP_PORT=str(port), GAAS_ENV_FILE="", PIP_COMPILE="0")
    out = tmp_path / "dev.out"
    dev = subprocess.Popen(
        [str(clone / "bin" / "dev.sh")], cwd=clone, env=env, stdin=subprocess.DEVNULL,
        stdout=open(out, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 900  # the first start installs the requirements
        while True:
            assert dev.poll() is None, out.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, out.read_text(errors="replace")[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        password = re.search(r"user: demo  password: (\S+)", out.read_text()).group(1)
        # The clone's environment is the runtime one: the back ends, and nothing of the tests.
        check = "import importlib.util as u; print([bool(u.find_spec(n)) for n in ('openturns', 'pyDOE3', 'nlopt', 'pytest', 'sklearn')])"
        found = subprocess.run([str(clone / ".venv/bin/python"), "-c", check], capture_output=True, text=True, check=True)
        assert found.stdout.strip() == "[True, True, True, False, False]"
        paste(f"http://127.0.0.1:{port}", password, tmp_path)
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(120)
