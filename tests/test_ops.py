"""Operations: install into a prefix, retention, backups."""

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import CODE
from test_api import upload


def run(command, env=None, **kwargs):
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def installed():
    # Under /var/tmp with mode 755: the service user must reach the prefix and the data.
    base = Path(tempfile.mkdtemp(prefix="gaas-install-", dir="/var/tmp"))
    base.chmod(0o755)
    env = dict(os.environ, GAAS_ENV_FILE=str(base / "etc" / "gaas.env"), GAAS_DATA_DIR=str(base / "data"))
    # pip leaves the byte-compiling of GEMSEO's dependencies to their first import: half its time
    # (and of the removal), and these tests import few of them.
    env.update(PIP_COMPILE="0")
    first = run([str(CODE / "bin" / "install.sh"), str(base / "opt")], env=env)
    yield base, env, first
    shutil.rmtree(base, ignore_errors=True)


def test_install_into_a_prefix_without_systemd(installed):
    base, env, first = installed
    prefix = base / "opt"
    assert "systemd is not running here" in first or "enabled and started" in first
    assert (prefix / "gaas.py").exists() and (prefix / ".venv" / "bin" / "uvicorn").exists()
    assert not (prefix / ".git").exists()
    env_file = (base / "etc" / "gaas.env").read_text()
    secret = [line for line in env_file.splitlines() if line.startswith("GEMSEO_HTTP_SECRET_KEY=")][0]
    assert len(secret.split("=", 1)[1]) == 64
    assert f"GEMSEO_HTTP_ROOT_PATH={base / 'data'}" in env_file
    assert (base / "data" / "database" / "gaas.db").exists()
    assert (base / "data").stat().st_uid == int(run(["id", "-u", "gaas"]))
    units = (prefix / "systemd" / "gaas-worker.service").read_text()
    assert f"ExecStart={prefix}/bin/run_worker.sh" in units and "/opt/gaas" not in units
    assert str(CODE) not in units + env_file


def test_install_again_keeps_the_environment_file(installed):
    base, env, _ = installed
    env_file = base / "etc" / "gaas.env"
    env_file.write_text(env_file.read_text() + "GEMSEO_HTTP_LOG_LEVEL=DEBUG\n")
    before = env_file.read_text()
    second = run([str(CODE / "bin" / "install.sh"), str(base / "opt")], env=env)
    assert f"kept {env_file}" in second
    assert env_file.read_text() == before


def test_units_pass_systemd_analyze_verify(installed):
    base, _, _ = installed
    units = [str(base / "opt" / "systemd" / name) for name in ("gaas-server.service", "gaas-worker.service")]
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    worker = Path(units[1]).read_text()
    assert "KillSignal=SIGINT" in worker and "TimeoutStopSec=6h" in worker
    for unit in units:
        text = Path(unit).read_text()
        for line in ("NoNewPrivileges=true", "ProtectSystem=strict", "PrivateTmp=true", "EnvironmentFile="):
            assert line in text


def test_installed_service_runs_as_its_user(installed, tmp_path):
    base, _, _ = installed
    env_file, prefix = base / "etc" / "gaas.env", base / "opt"
    port = 18000 + os.getpid() % 1000
    script = f'set -a; . "{env_file}"; set +a; export GEMSEO_HTTP_PORT={port}; exec "{prefix}/bin/run_server.sh"'
    server = subprocess.Popen(["runuser", "-u", "gaas", "--", "bash", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        import requests

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert response.status_code == 503  # no worker runs: the report says so
        assert "worker" in response.json()["reason"]
    finally:
        server.terminate()
        server.wait(30)


def admin(live, *args):
    return run([str(CODE / "bin" / "gaas-admin"), *args], env=live.env)


def test_retention_removes_exactly_what_it_should(live, alice):
    db = sqlite3.connect(live.root / "database" / "gaas.db", isolation_level=None)
    old_file = upload(alice, b"old and unused", "old-unused.txt")
    kept_by_job = upload(alice, b"used by a recent job", "input.txt")
    freed_by_purge = upload(alice, b"used by an old job only", "input.txt")
    recent_unused = upload(alice, b"recent and unused", "recent.txt")
    old_job = alice.run("ReadInput", input_files=[freed_by_purge])
    recent_job = alice.run("ReadInput", input_files=[kept_by_job])
    running_long_ago = alice.run("Sleeper", "asynchronous", input_data={"duration": [30]})
    long_ago = time.time() - 40 * 86400
    db.execute("UPDATE jobs SET ended_at = ?, created_at = ? WHERE id = ?", (long_ago, long_ago, old_job["id"]))
    db.execute("UPDATE jobs SET created_at = ? WHERE id = ?", (long_ago, running_long_ago["id"]))
    for record in (old_file, kept_by_job, freed_by_purge):
        db.execute("UPDATE files SET created_at = ? WHERE id = ?", (long_ago, record["id"]))
    before = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    out = admin(live, "purge", "--older-than", "30")
    assert "removed 1 jobs, 0 batches, 2 files" in out
    assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == before - 1
    assert alice.get(f"/v1/job/{old_job['id']}").status_code == 404
    assert not Path(old_job["workdir"]).exists()
    assert alice.get(f"/v1/job/{recent_job['id']}").status_code == 200
    assert alice.get(f"/v1/job/{running_long_ago['id']}").status_code == 200  # not ended: kept
    remaining = {item["id"] for item in alice.get("/v1/file").json()}
    assert old_file["id"] not in remaining and freed_by_purge["id"] not in remaining
    assert kept_by_job["id"] in remaining and recent_unused["id"] in remaining
    files = live.root / "files"
    assert not (files / old_file["unique_filename"]).exists()
    # The per-user counts kept by triggers still match the rows after deletes and updates.
    counted = db.execute("SELECT user_id, job_status, n FROM job_counts WHERE n != 0 ORDER BY 1, 2").fetchall()
    actual = db.execute("SELECT user_id, job_status, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    assert counted == actual
    # The data of deleted jobs went with them.
    assert db.execute("SELECT count(*) FROM job_data WHERE job_id NOT IN (SELECT id FROM jobs)").fetchone()[0] == 0
    assert (files / kept_by_job["unique_filename"]).exists()
    alice.post(f"/v1/job/{running_long_ago['id']}/cancel")


def test_backup_while_running(live, alice, tmp_path):
    job = alice.run("Sellar1")
    out = admin(live, "backup", str(tmp_path / "backup"))
    assert "gaas.db" in out and "huey.db" in out
    copy = sqlite3.connect(tmp_path / "backup" / "gaas.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    row = copy.execute(
        "SELECT job_status, output_data FROM jobs JOIN job_data ON job_id = id WHERE id = ?", (job["id"],)
    ).fetchone()
    assert row[0] == "finished" and json.loads(row[1]) == job["output_data"]
    live_count = sqlite3.connect(live.root / "database" / "gaas.db").execute("SELECT count(*) FROM jobs").fetchone()[0]
    assert copy.execute("SELECT count(*) FROM jobs").fetchone()[0] == live_count
