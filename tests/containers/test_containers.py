"""The image (Containerfile) and compose.yaml, for real, with podman: a Debian base made here with
mmdebstrap (no image registry is reached), images built from it, containers reached by HTTP on
loopback, a worker container killed with `podman kill`. A stage of its own: `bin/test.sh --containers`.

What is built or started is named after this session and removed at the end, even on failure;
the base image and the images with their layers stay, so the next run on this machine reuses them."""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import CODE, PLUGINS, Api
from servers import free_port, running
from test_walkthrough import paste

HERE = Path(__file__).resolve().parent
BASE = "localhost/gaas-test-base:bookworm"
SERVICES = "localhost/gaas-test-services:bookworm"
RUN = f"gaastest{os.getpid()}"
# Kept after the run: its layers (the requirements above all) make the next build quick.
IMAGE = "localhost/gaas-test:latest"
TIMINGS = CODE / "tests" / "artifacts" / "containers.txt"
ENV = dict(os.environ, CONTAINERS_CONF=str(HERE / "containers.conf"))


def run(*argv, timeout=900, check=True, **kwargs):
    """Run a command with the tests' podman settings; return the completed process, checked."""
    result = subprocess.run(argv, env=kwargs.pop("env", ENV), capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def podman(*args, **kwargs):
    return run("podman", *args, **kwargs)


def note(line):
    """Print a measurement and keep it in tests/artifacts/containers.txt."""
    print(line)
    TIMINGS.parent.mkdir(exist_ok=True)
    with TIMINGS.open("a") as out:
        out.write(line + "\n")


def build(tag, context, *args):
    """podman build; return the seconds it took and its log. pip trusts this machine's CA through a
    mounted pip.conf, so the Containerfile itself needs no mount."""
    with tempfile.TemporaryDirectory() as tmp:
        pip_conf = Path(tmp) / "pip.conf"
        pip_conf.write_text("[global]\ncert = /run/gaas-build-ca.crt\n")
        start = time.monotonic()
        result = podman("build", "--format", "docker", "--network", "host",
                        "--volume", "/etc/ssl/certs/ca-certificates.crt:/run/gaas-build-ca.crt:ro",
                        "--volume", f"{pip_conf}:/etc/pip.conf:ro",
                        "--build-arg", f"BASE={BASE}", "-t", tag, *args, str(context))
        return time.monotonic() - start, result.stdout + result.stderr


def until(check, timeout, what):
    """Call check() until it returns something true, and return that; fail with what() after timeout."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(what())
        time.sleep(0.3)
    return found


def healthy(url):
    try:
        return requests.get(f"{url}/health", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def wait_healthy(url, container, timeout=120):
    until(lambda: healthy(url), timeout,
          lambda: f"{url}/health did not answer 200 in {timeout} s\n" + podman("logs", container, check=False).stderr[-3000:])


def sign_in(url, user, password):
    response = requests.post(f"{url}/token", data={"username": user, "password": password}, timeout=30)
    assert response.status_code == 200, response.text
    return Api(url, response.json()["access_token"])


def wait_status(api, job_id, statuses, timeout=60):
    """Return the job once its status is one of statuses."""
    def reached():
        job = api.get(f"/v1/job/{job_id}").json()
        return job if job["job_status"] in statuses else None
    return until(reached, timeout, lambda: f"job {job_id} is not {' or '.join(statuses)} after {timeout} s")


def sweep():
    """Remove what an earlier session left when it was killed before its clean-up: the names
    carry the session's process id, and only those of ended sessions are touched."""
    listings = {"container": ("ps", "-a"), "volume": ("volume", "ls"), "network": ("network", "ls")}
    for kind, listing in listings.items():
        names = podman(*listing, "--format", "{{.Name}}" if kind != "container" else "{{.Names}}",
                       "--filter", "name=^gaastest", check=False).stdout.split()
        for name in names:
            pid = re.match(r"gaastest(\d+)", name)
            if pid and not running(int(pid.group(1))):
                podman(kind, "rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def image():
    """The gaas image of this tree, on a base made here unless a previous run left one."""
    sweep()
    TIMINGS.unlink(missing_ok=True)
    if podman("image", "exists", BASE, check=False).returncode:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.monotonic()
            run("mmdebstrap", "--variant=minbase", "--quiet", "bookworm", f"{tmp}/base.tar")
            podman("import", "--quiet", f"{tmp}/base.tar", BASE)
            note(f"base image made by mmdebstrap and imported: {time.monotonic() - start:.0f} s")
    else:
        note(f"base image {BASE} reused")
    seconds, _ = build(IMAGE, CODE)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    note(f"gaas image: built in {seconds:.0f} s, {size / 1e6:.0f} MB")
    seconds, _ = build(SERVICES, HERE, "-f", str(HERE / "services.Containerfile"))
    note(f"PostgreSQL and Redis test image: built in {seconds:.0f} s")
    return IMAGE


def test_image_settings_and_layers(image, tmp_path):
    """The image runs as gaas with its data under the volume, stops with SIGINT, checks /health;
    a change of code rebuilds without reinstalling the requirements."""
    fields = "{{.Config.User}}|{{.Config.StopSignal}}|{{json .Config.Volumes}}|{{json .Config.Cmd}}|{{.HealthCheck}}"
    config = podman("image", "inspect", "--format", fields, image).stdout
    user, stop_signal, volumes, cmd, health = config.strip().split("|")
    assert (user, stop_signal, cmd) == ("gaas", "SIGINT", '["bin/run_all.sh"]')
    assert "/var/lib/gaas" in volumes and "/health" in health
    listing = podman("run", "--rm", image, "bash", "-c", "ls -A /opt/gaas; ls -ld /var/lib/gaas").stdout
    assert "tests" not in listing.split() and ".venv" in listing.split() and "var" not in listing.split()
    assert "gaas gaas" in listing

    # A tree like this one with one module changed: the requirements' layer comes from the cache.
    context = tmp_path / "tree"
    files = run("git", "ls-files", "-z", cwd=CODE, env=None).stdout.split("\0")
    for name in filter(None, files):
        if (CODE / name).is_file():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(CODE / name, context / name)
    with (context / "settings.py").open("a") as out:
        out.write("# changed\n")
    tag = f"localhost/{RUN}-changed:latest"
    try:
        seconds, log = build(tag, context)
        note(f"gaas image after a code change (requirements layer cached): {seconds:.0f} s")
        lines = log.splitlines()
        step = next(i for i, line in enumerate(lines) if line.startswith("STEP") and "RUN" in line and "bin/setup.sh" in line)
        assert lines[step + 1].startswith("--> Using cache"), log[-3000:]
        changed = podman("run", "--rm", tag, "tail", "-1", "settings.py").stdout
        assert changed == "# changed\n"
    finally:
        podman("rmi", "--force", tag, check=False)


def test_one_container_walkthrough_users_and_stop(image, tmp_path):
    """`podman run -p 8000:8000 gaas` with SQLite and its worker inside: the README's walkthrough,
    users made by gaas-admin inside it, and a stop (SIGINT) that lets a running job finish."""
    name, volume = f"{RUN}-one", f"{RUN}-one-data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        # As the README runs it, hardened: only the volume and /tmp writable, no privilege to gain.
        podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", "-v", f"{volume}:/var/lib/gaas",
               "--read-only", "--tmpfs", "/tmp", "--security-opt", "no-new-privileges", "--cap-drop", "ALL",
               "-v", f"{PLUGINS}:/opt/gaas-plugins:ro", "-e", "GEMSEO_PATH=/opt/gaas-plugins", image)
        wait_healthy(url, container=name)
        made = podman("exec", "-i", name, "bin/gaas-admin", "create-user", "demo", "--password-stdin",
                      input="demo-password\n")
        assert "created user 'demo'" in made.stdout, made.stdout + made.stderr
        paste(url, "demo-password", tmp_path)
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        backup = podman("exec", name, "bin/gaas-admin", "backup", "/var/lib/gaas/backup")
        listed = podman("exec", name, "ls", "/var/lib/gaas/backup").stdout.split()
        assert {"gaas.db", "huey.db", "secret_key"} <= set(listed), backup.stdout + backup.stderr

        api = sign_in(url, "demo", "demo-password")
        job = api.run("Sleeper", mode="asynchronous", input_data={"duration": [4.0]})
        wait_status(api, job["id"], ("running",))
        # The image's stop signal is SIGINT: the worker finishes the running job before it exits.
        start = time.monotonic()
        podman("stop", "--time", "60", name)
        stopped = time.monotonic() - start
        # It ended on the SIGINT (130 as after a Ctrl-C, or 0), not on a SIGKILL at the timeout (137).
        assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() in ("0", "130")
        assert stopped < 30, f"the stop took {stopped:.0f} s"
        podman("start", name)
        wait_healthy(url, container=name)
        api = sign_in(url, "demo", "demo-password")  # the data and the demo user live in the volume
        ended = api.get(f"/v1/job/{job['id']}").json()
        assert (ended["job_status"], ended["output_data"]) == ("finished", {"slept": [4.0]}), ended
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
        podman("volume", "rm", "--force", volume, check=False)


class Compose:
    """compose.yaml with the tests' override, in a folder of its own with its .env, as a user has it."""

    def __init__(self, folder, image, workers):
        self.folder = folder
        self.project = f"{RUN}c"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(CODE / "compose.yaml", folder)
        shutil.copy(HERE / "compose.test.yaml", folder)
        secret = os.urandom(32).hex()
        # One thread per worker container, so two jobs at once need both containers; lost jobs
        # are found after 5 s instead of 30.
        (folder / ".env").write_text(
            f"GEMSEO_HTTP_SECRET_KEY={secret}\nPOSTGRES_PASSWORD={os.urandom(12).hex()}\n"
            "GEMSEO_HTTP_WORKERS=1\nGEMSEO_HTTP_HEARTBEAT_TIMEOUT=5\nGEMSEO_HTTP_HEARTBEAT_INTERVAL=1\n"
        )
        self.env = dict(ENV, GAAS_IMAGE=image, GAAS_TEST_SERVICES=SERVICES, GAAS_PORT=str(self.port),
                        GAAS_WORKERS=str(workers), GAAS_PLUGINS=str(PLUGINS))

    def __call__(self, *args, **kwargs):
        return run("podman-compose", "-p", self.project, "-f", "compose.yaml", "-f", "compose.test.yaml",
                   *args, cwd=self.folder, env=self.env, **kwargs)

    def container(self, service, number=1):
        return f"{self.project}_{service}_{number}"

    def sql(self, statement):
        out = podman("exec", self.container("postgres"), "psql", "-h", "/tmp", "-U", "gaas", "-d", "gaas",
                     "-Atc", statement).stdout
        return [line.split("|") for line in out.splitlines()]

    def remove(self):
        """Containers, volumes and the network of the project, whatever state they are in."""
        self("down", "-v", check=False, timeout=300)
        labelled = podman("ps", "-aq", "--filter", f"label=io.podman.compose.project={self.project}", check=False)
        for container in labelled.stdout.split():
            podman("rm", "--force", "--time", "0", container, check=False)
        for volume in ("data", "postgres", "redis"):
            podman("volume", "rm", "--force", f"{self.project}_{volume}", check=False)
        podman("network", "rm", "--force", f"{self.project}_default", check=False)


@pytest.fixture
def stack(image, tmp_path):
    compose = Compose(tmp_path, image, workers=2)
    try:
        yield compose
    finally:
        compose.remove()


def test_compose_spreads_survives_a_killed_worker_and_keeps_data(stack):
    # Coming from one container: a SQLite store in the data volume, copied into PostgreSQL by a
    # one-off command before the stack starts (README, "Containers"). podman-compose does not
    # pass on a one-off command's status: its output tells.
    stack("up", "-d", "postgres", "redis")
    sqlite = ("-e", "GEMSEO_HTTP_DATABASE_URL=", "-e", "GEMSEO_HTTP_REDIS_URL=")
    made = stack("run", "-T", "--rm", *sqlite, "web", "bin/gaas-admin", "create-user", "alice", "--password-stdin",
                 input="alice-password\n")
    assert "store: sqlite /var/lib/gaas/database/gaas.db" in made.stderr, made.stdout + made.stderr
    copied = stack("run", "-T", "--rm", "web", "bin/gaas-admin", "copy-store")
    assert "copied 1 users, 0 jobs" in copied.stdout, copied.stdout + copied.stderr
    start = time.monotonic()
    stack("up", "-d")
    wait_healthy(stack.url, container=stack.container("web"))
    note(f"compose stack up and healthy: {time.monotonic() - start:.0f} s")
    api = sign_in(stack.url, "alice", "alice-password")
    ready = stack("run", "-T", "--rm", "web", "bin/gaas-admin", "init")
    assert "schema ready (postgresql postgres:5432/gaas)" in ready.stdout, ready.stdout + ready.stderr
    backup = podman("exec", stack.container("web"), "bin/gaas-admin", "backup", "/var/lib/gaas/backup")
    assert "wrote /var/lib/gaas/backup/gaas.pgdump" in backup.stdout, backup.stdout + backup.stderr

    # Two worker containers, one thread each: four jobs of 2 s run on both.
    hosts = {podman("inspect", "--format", "{{.Config.Hostname}}", stack.container("worker", n)).stdout.strip(): n
             for n in (1, 2)}
    jobs = [api.run("Sleeper", mode="asynchronous", input_data={"duration": [2.0]}, cache=False)["id"] for _ in range(4)]  # each runs: no single flight
    for job_id in jobs:
        assert api.wait(job_id)["job_status"] == "finished"
    owners = stack.sql(f"SELECT owner FROM jobs WHERE id IN ({','.join(map(str, jobs))})")
    ran_on = {hosts[owner.split(":")[1].split("/")[0]] for (owner,) in owners}
    assert ran_on == {1, 2}

    # A worker container killed in the middle of a job: the job ends (lost, or run again), and
    # the stack goes on taking jobs.
    job = api.run("Sleeper", mode="asynchronous", input_data={"duration": [20.0]})
    wait_status(api, job["id"], ("running",))
    (owner,), = stack.sql(f"SELECT owner FROM jobs WHERE id = {job['id']}")
    victim = stack.container("worker", hosts[owner.split(":")[1].split("/")[0]])
    podman("kill", victim)
    killed = time.monotonic()
    ended = wait_status(api, job["id"], ("finished", "failed"), timeout=90)
    assert ended["job_status"] == "finished" or ended["error"] == "lost", ended
    note(f"job of the killed worker container: {ended['job_status']} {ended['error']}".rstrip()
         + f", {time.monotonic() - killed:.0f} s after the kill")
    after = api.run("Sleeper", mode="asynchronous", input_data={"duration": [0.1]})
    assert api.wait(after["id"])["job_status"] == "finished"
    assert stack.sql("SELECT count(*) FROM jobs WHERE job_status IN ('pending', 'running')") == [["0"]]

    # down, then up: users, jobs, files and tokens are kept in the volumes.
    upload = api.post("/v1/file/upload", files={"files": ("kept.txt", b"kept")},
                      data={"chunk_number": "0", "total_chunks": "1"})
    assert upload.status_code == 200, upload.text
    stack("down", timeout=300)
    assert not podman("ps", "-aq", "--filter", f"label=io.podman.compose.project={stack.project}").stdout.split()
    stack("up", "-d")
    wait_healthy(stack.url, container=stack.container("web"))
    assert api.get(f"/v1/job/{jobs[0]}").json()["output_data"] == {"slept": [2.0]}
    assert [f["filename"] for f in api.get("/v1/file").json()] == ["kept.txt"]
    assert sign_in(stack.url, "alice", "alice-password").get("/v1/user/me/").json()["username"] == "alice"
