"""Operators' commands: bin/gaas-admin (purge, users, backup and restore), bin/dev.sh, settings."""

import os
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import CODE, free_port
from test_api import upload

PRIVATE, PRIVATE_FOLDER = 0o600, 0o700


def admin(root, *args, stdin=None):
    return subprocess.run(
        [str(CODE / "bin" / "gaas-admin"), *args],
        input=stdin,
        env={"PATH": os.environ["PATH"], "GEMSEO_HTTP_ROOT_PATH": str(root), "GAAS_ENV_FILE": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )


def mode(path):
    return stat.S_IMODE(Path(path).stat().st_mode)


def users(root):
    result = admin(root, "list-users")
    assert result.returncode == 0, result.stderr
    return [line.split("\t")[1] for line in result.stdout.splitlines()]


def signed_out_soon(api, timeout=6):
    """Whether the API's token gets 401 within `timeout` s (the web app caches users for 5 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get("/v1/user/me/").status_code
        if status == 401:
            return True
        assert status == 200
        time.sleep(0.2)
    return False


@pytest.fixture
def umask_022():
    """Files made with the usual umask: only explicit modes make them private."""
    old = os.umask(0o022)
    yield
    os.umask(old)


# 1. purge


def test_purge_refuses_bad_ages_and_dry_run_removes_nothing(tmp_path):
    # Guards the --older-than check and --dry-run of `purge`: a bad age removes nothing and says
    # why; a dry run only counts.
    assert admin(tmp_path, "init").returncode == 0
    workdir = tmp_path / "workdir" / "user-1" / "job-1"
    workdir.mkdir(parents=True)
    (workdir / "out.txt").write_text("result")
    ended = time.time() - 60
    db = sqlite3.connect(tmp_path / "database" / "gaas.db", isolation_level=None)
    db.execute(
        "INSERT INTO jobs (user_id, discipline_class_name, job_type, job_status, execution_mode,"
        " created_at, started_at, ended_at, workdir) VALUES (1, 'Sellar1', 'execute', 'finished',"
        " 'synchronous', ?, ?, ?, ?)",
        (ended - 1, ended - 1, ended, str(workdir)),
    )
    db.close()

    def jobs_left():
        with sqlite3.connect(tmp_path / "database" / "gaas.db") as conn:
            return conn.execute("SELECT count(*) FROM jobs").fetchone()[0]

    for age in ("-1", "0", "nan", "inf"):
        result = admin(tmp_path, "purge", "--older-than", age)
        assert result.returncode != 0, age
        assert "--older-than must be a positive number of days" in result.stderr, age
        assert "Traceback" not in result.stderr
        assert jobs_left() == 1 and (workdir / "out.txt").exists(), age
    result = admin(tmp_path, "purge", "--older-than", "0.00001", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would remove 1 jobs" in result.stdout
    assert jobs_left() == 1 and (workdir / "out.txt").exists()
    result = admin(tmp_path, "purge", "--older-than", "0.00001")
    assert result.returncode == 0, result.stderr
    assert "removed 1 jobs" in result.stdout and "would" not in result.stdout
    assert jobs_left() == 0 and not workdir.exists()


# 2. create-user


def test_create_user_checks_the_name(tmp_path):
    # Guards USER_NAME in admin.py: empty, spaced or over-long names are refused with a message.
    for name in ("", "a b", "x" * 65, "a/b", "tab\tname"):
        result = admin(tmp_path, "create-user", name, "--password-stdin", stdin="pw\n")
        assert result.returncode != 0, repr(name)
        assert "not a usable user name" in result.stderr, repr(name)
        assert "Traceback" not in result.stderr
    assert users(tmp_path) == []
    for name in ("ok.name-1@x", "y" * 64):
        result = admin(tmp_path, "create-user", name, "--password-stdin", stdin="pw\n")
        assert result.returncode == 0, result.stderr
    assert users(tmp_path) == ["ok.name-1@x", "y" * 64]


def test_admin_commands_read_the_environment_file_of_the_units(tmp_path):
    # Guards bin/gaas-admin: without the service's settings in its environment it used the SQLite
    # store under the code ("create-user carol" succeeded, and carol got 401 from the service).
    # It reads the units' environment file, the process environment winning, and names its store.
    env_file, from_file, from_env = tmp_path / "gaas.env", tmp_path / "from-file", tmp_path / "from-env"
    env_file.write_text(f"# the units' settings\nGEMSEO_HTTP_ROOT_PATH={from_file}\nGEMSEO_HTTP_SECRET_KEY=\n")

    def run(*args, **env):
        return subprocess.run(
            [str(CODE / "bin" / "gaas-admin"), *args],
            input="carol-pw\n",
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    result = run("create-user", "carol", "--password-stdin", GAAS_ENV_FILE=str(env_file))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"store: sqlite {from_file}/database/gaas.db"]
    assert users(from_file) == ["carol"]
    result = run("create-user", "dave", "--password-stdin", GAAS_ENV_FILE=str(env_file), GEMSEO_HTTP_ROOT_PATH=str(from_env))
    assert result.returncode == 0, result.stderr
    assert users(from_env) == ["dave"] and users(from_file) == ["carol"]
    result = run("list-users", GAAS_ENV_FILE=str(tmp_path / "missing.env"), GEMSEO_HTTP_ROOT_PATH=str(from_env))
    assert result.returncode != 0 and "missing.env" in result.stderr and result.stdout == ""


# 3. set-password


def test_set_password_ends_the_old_sessions(live):
    # Guards the token_version bump of set-password: a token made before the change stops working.
    name = f"dora-{os.urandom(4).hex()}"  # a user of its own on the shared service
    live.add_user(name, "dora-pw")
    dora = live.api(name, "dora-pw")
    assert dora.get("/v1/user/me/").json()["username"] == name
    result = live.admin("set-password", name, "--password-stdin", stdin="dora-new-pw\n")
    assert result.returncode == 0, result.stderr
    assert signed_out_soon(dora), "the old token still works"
    refused = requests.post(live.url + "/token", data={"username": name, "password": "dora-pw"}, timeout=30)
    assert refused.status_code == 401
    renewed = live.api(name, "dora-new-pw")
    assert renewed.get("/v1/user/me/").json()["username"] == name


# 4. delete-user


def test_delete_user_removes_everything_of_theirs_only(fresh_service):
    # Guards jobs.delete_user: the user's jobs, job directories, uploads and partial uploads go
    # from the store and the disk, their sessions end, and another user's things stay.
    service = fresh_service(worker=False, GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice, bob = service.api("alice", "alice-pw"), service.api("bob", "bob-pw")
    alice_input = upload(alice, b"alice's input", "input.txt")
    alice_other = upload(alice, b"unused", "other.txt")
    partial = alice.post(
        "/v1/file/upload", files={"files": ("big.bin", b"x" * 10)}, data={"chunk_number": 0, "total_chunks": 2}
    )
    assert partial.status_code == 200, partial.text
    alice_job = alice.run("ReadInput", input_files=[alice_input])
    assert alice_job["job_status"] == "finished", alice_job["traceback"]
    bob_input = upload(bob, b"bob's input", "input.txt")
    bob_job = bob.run("ReadInput", input_files=[bob_input])
    assert bob_job["job_status"] == "finished", bob_job["traceback"]
    stored = service.root / "files"
    alice_workdir, bob_workdir = Path(alice_job["workdir"]), Path(bob_job["workdir"])
    assert (alice_workdir / "results" / "upper.txt").exists()
    assert len(list((stored / ".partial").iterdir())) == 1

    result = service.admin("delete-user", "alice")
    assert result.returncode == 0, result.stderr
    assert "with 1 jobs, 2 uploaded files and 1 unfinished uploads" in result.stdout
    assert not alice_workdir.exists() and not alice_workdir.parent.exists()
    for entry in (alice_input, alice_other):
        assert not (stored / entry["unique_filename"]).exists()
    assert list((stored / ".partial").iterdir()) == []
    assert signed_out_soon(alice), "a deleted user's token still works"
    assert "alice" not in [line.split("\t")[1] for line in service.admin("list-users").stdout.splitlines()]
    # Bob's job, directory and file are untouched.
    assert (bob_workdir / "results" / "upper.txt").read_text() == "BOB'S INPUT"
    assert (stored / bob_input["unique_filename"]).read_bytes() == b"bob's input"
    assert bob.get(f"/v1/job/{bob_job['id']}").json()["job_status"] == "finished"
    assert [entry["id"] for entry in bob.get("/v1/file").json()] == [bob_input["id"]]


# 5. Private databases and backups


def database_files(root):
    folder = root / "database"
    return [path for name in ("gaas.db", "huey.db") for path in folder.glob(name + "*")]


def test_databases_and_backups_are_private(tmp_path, fresh_service, umask_022):
    # Guards store.protect, the worker's LazySqliteStorage and `backup`: the store holds password
    # hashes, so its files, the queue's and every backup copy are 0600, the folder 0700.
    root = tmp_path / "init-only"
    assert admin(root, "init").returncode == 0
    assert mode(root / "database" / "gaas.db") == PRIVATE
    for path in database_files(root):
        assert mode(path) == PRIVATE, path

    # A synchronous job, and no worker: the web app writes both databases (huey.db for /health).
    service = fresh_service(worker=False, GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice = service.api("alice", "alice-pw")
    assert alice.run("Sellar1")["job_status"] == "finished"
    present = {path.name for path in database_files(service.root)}
    assert {"gaas.db", "huey.db"} <= present, present
    for path in database_files(service.root):
        assert mode(path) == PRIVATE, path

    folder = tmp_path / "backup"
    folder.mkdir(mode=0o755)
    result = service.admin("backup", str(folder))
    assert result.returncode == 0, result.stderr
    assert mode(folder) == PRIVATE_FOLDER
    assert sorted(path.name for path in folder.iterdir()) == ["gaas.db", "huey.db", "secret_key"]
    for name in ("gaas.db", "huey.db", "secret_key"):
        assert mode(folder / name) == PRIVATE, name


# 6. Backup and restore


def test_backup_and_restore_on_a_fresh_machine(tmp_path, fresh_service):
    # Guards the procedure of the README: backup, then init and restore on an empty root, keeps
    # the users, the jobs with their outputs, and the token key (sessions survive).
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice = service.api("alice", "alice-pw")
    job = alice.run("Sellar1", "asynchronous")
    ended = alice.wait(job["id"], timeout=120)
    assert ended["job_status"] == "finished", ended["traceback"]
    old_token = service.token("alice", "alice-pw")
    folder = tmp_path / "backup"
    result = service.admin("backup", str(folder))
    assert result.returncode == 0, result.stderr
    key = (service.root / "secret_key").read_bytes()
    service.close()

    subprocess.run(["rm", "-rf", str(service.root / "database"), str(service.root / "secret_key")], check=True)
    result = service.admin("init")
    assert result.returncode == 0, result.stderr
    assert (service.root / "secret_key").read_bytes() != key
    refused = service.admin("restore", str(folder))
    assert refused.returncode != 0
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
    result = service.admin("restore", "--force", str(folder))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("restored ") == 3
    assert (service.root / "secret_key").read_bytes() == key
    for name in ("database/gaas.db", "database/huey.db", "secret_key"):
        assert mode(service.root / name) == PRIVATE, name

    service.start_server()
    service.start_worker()
    again = service.api("alice", "alice-pw")
    restored = again.get(f"/v1/job/{job['id']}").json()
    assert restored["job_status"] == "finished"
    assert restored["output_data"] == ended["output_data"] and restored["output_data"]
    with_old_token = requests.get(
        service.url + "/v1/user/me/", headers={"Authorization": f"Bearer {old_token}"}, timeout=30
    )
    assert with_old_token.status_code == 200 and with_old_token.json()["username"] == "alice"
    # The worker runs on the restored store and queue: the health report finds its heartbeat.
    deadline = time.monotonic() + 60
    while requests.get(service.url + "/health", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, requests.get(service.url + "/health", timeout=30).text
        time.sleep(0.2)
    # And it runs new jobs (waiting for the warm processes also makes the stop quick: a pool
    # closed while its zygote still imports GEMSEO waits 10 s for it).
    assert again.wait(again.run("Sellar1", "asynchronous")["id"], timeout=120)["job_status"] == "finished"


def test_restore_and_copy_store_refuse_a_running_service(tmp_path, fresh_service):
    # Guards admin.refuse_if_running: `restore --force` and `copy-store` under a running service
    # replaced its store while it wrote (or copied a store still changing); a fresh heartbeat in
    # the store stops them with a message, and once the service is stopped they run.
    service = fresh_service(worker=False, GEMSEO_HTTP_SYNC_PROCESSES=1)
    folder = tmp_path / "backup"
    assert service.admin("backup", str(folder)).returncode == 0
    for command in (("restore", "--force", str(folder)), ("copy-store", "postgresql://gaas@127.0.0.1:9/gaas")):
        refused = service.admin(*command)
        assert refused.returncode != 0, command
        assert "the service is running" in refused.stderr and "stop gaas-server" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr and "restored" not in refused.stdout
    service.close()
    result = service.admin("restore", "--force", str(folder))
    assert result.returncode == 0, result.stderr


# 7. bin/dev.sh


def processes_of(root):
    """PIDs of the processes started with this root in their environment."""
    marker = f"GEMSEO_HTTP_ROOT_PATH={root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def none_left(root, timeout=30):
    deadline = time.monotonic() + timeout
    while processes_of(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_of(root)


def dev_env(root, port):
    env = {key: value for key, value in os.environ.items() if not key.startswith("GEMSEO_HTTP_")}
    env.update(
        GEMSEO_HTTP_ROOT_PATH=str(root),
        GEMSEO_HTTP_PORT=str(port),
        GEMSEO_HTTP_WORKERS="1",
        GEMSEO_HTTP_SYNC_PROCESSES="1",
    )
    return env


def start_dev(root, port, out, **settings):
    return subprocess.Popen(
        [str(CODE / "bin" / "dev.sh")],
        env=dict(dev_env(root, port), **settings),
        stdin=subprocess.DEVNULL,
        stdout=open(out, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_started(process, port, out, timeout=120):
    """Wait for /health to answer; return the password dev.sh printed."""
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, Path(out).read_text(errors="replace")[-3000:]
        try:
            if requests.get(url, timeout=5).status_code in (200, 503):
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    else:
        raise AssertionError("dev.sh did not start:\n" + Path(out).read_text(errors="replace")[-3000:])
    found = re.search(r"user: demo  password: (\S+)", Path(out).read_text(errors="replace"))
    assert found, Path(out).read_text(errors="replace")[-3000:]
    return found.group(1)


def kill_left(process, root):
    """After a failed test: kill dev.sh's group and whatever it started with this root."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for pid in processes_of(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def interrupt(process, timeout=60):
    """Ctrl-C: SIGINT to dev.sh's process group."""
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout)


def test_dev_sh_on_a_busy_port_changes_nothing(tmp_path):
    # Guards the port check of bin/dev.sh: on a port in use it says so and stops before it makes
    # the demo user or starts a worker.
    root = tmp_path / "root"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(CODE / "bin" / "dev.sh")],
            env=dev_env(root, port),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode != 0
    assert "in use" in result.stderr and str(port) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "demo" not in users(root)
    assert not (root / "demo-password").exists()
    assert processes_of(root) == []


def test_dev_sh_keeps_its_demo_password(tmp_path):
    # Guards bin/dev.sh: the demo password is made once, kept 0600 under the root and printed
    # again at the next start; Ctrl-C stops the server, the worker and their job processes.
    root, port = tmp_path / "root", free_port()
    processes = []
    try:
        processes.append(start_dev(root, port, tmp_path / "first.out"))
        first = wait_started(processes[-1], port, tmp_path / "first.out")
        signed_in = requests.post(
            f"http://127.0.0.1:{port}/token", data={"username": "demo", "password": first}, timeout=60
        )
        assert signed_in.status_code == 200, signed_in.text
        interrupt(processes[-1])
        assert none_left(root) == []
        processes.append(start_dev(root, port, tmp_path / "second.out"))
        second = wait_started(processes[-1], port, tmp_path / "second.out")
        assert second == first
        assert mode(root / "demo-password") == PRIVATE
        assert (root / "demo-password").read_text().strip() == first
        interrupt(processes[-1])
        assert none_left(root) == []
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid in processes_of(root):  # children of the dev.sh started here, if any outlived it
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_dev_sh_stops_on_a_ctrl_c_during_start_up(tmp_path):
    # Guards bin/dev.sh against a lost Ctrl-C: bash starts background children with SIGINT
    # ignored, so a worker that was still importing GEMSEO when Ctrl-C came never saw it and ran
    # on. Here the Ctrl-C comes while the worker is starting.
    root, port = tmp_path / "root", free_port()
    process = start_dev(root, port, tmp_path / "out")
    try:
        deadline = time.monotonic() + 120
        while not any(b"huey_consumer" in command_line(pid) for pid in processes_of(root)):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "out").read_text()
            time.sleep(0.05)
        assert "Huey consumer started" not in (tmp_path / "out").read_text()
        interrupt(process, timeout=30)
        assert none_left(root) == []
    finally:
        kill_left(process, root)


def test_dev_sh_runs_the_several_machines_mode(tmp_path, backends):
    # Guards the README's recipe to try PostgreSQL and Redis on one machine: bin/dev.sh with both
    # URLs set makes its demo user in PostgreSQL and runs jobs through Redis.
    root, port = tmp_path / "root", free_port()
    out = tmp_path / "out"
    process = start_dev(root, port, out, **backends.settings("postgresql+redis"))
    try:
        password = wait_started(process, port, out)
        url = f"http://127.0.0.1:{port}"
        token = requests.post(url + "/token", data={"username": "demo", "password": password}, timeout=60).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        job = requests.post(url + "/v1/discipline/Sellar1/execute?execution_mode=asynchronous", json={}, headers=headers, timeout=60).json()
        deadline = time.monotonic() + 180
        while (ended := requests.get(f"{url}/v1/job/{job['id']}?long_polling=true&long_polling_timeout=5", headers=headers, timeout=60).json())["job_status"] not in ("finished", "failed"):
            assert time.monotonic() < deadline, ended
        assert ended["job_status"] == "finished", ended
        health = requests.get(url + "/health", timeout=30).json()
        assert health["store"].startswith("postgresql"), health
        assert not (root / "database" / "gaas.db").exists()
        interrupt(process)
        assert none_left(root) == []
    finally:
        kill_left(process, root)


def command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


# 8. Boolean settings


def show_flag(value):
    return subprocess.run(
        [sys.executable, "-c", "import settings; print(settings.REQUEUE_LOST_JOBS)"],
        cwd=CODE,
        env={"PATH": os.environ["PATH"], "GEMSEO_HTTP_REQUEUE_LOST_JOBS": value},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_boolean_settings():
    # Guards settings._flag: the usual spellings are read, anything else stops with the key named.
    for value, shown in (("on", "True"), ("TRUE", "True"), ("1", "True"), ("off", "False"), ("no", "False"), ("", "False")):
        result = show_flag(value)
        assert result.returncode == 0 and result.stdout.strip() == shown, (value, result.stderr)
    result = show_flag("maybe")
    assert result.returncode != 0
    assert "GEMSEO_HTTP_REQUEUE_LOST_JOBS" in result.stderr and "maybe" in result.stderr
    assert "Traceback" not in result.stderr
