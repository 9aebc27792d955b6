"""Virtual environments of their own for the reference gemseo-http 3.0.0, which needs gemseo[all]:
its client for the tests, its server for the benchmark. gaas's venv never holds it, so the tests
run against the catalogue users get. Standard library only (bench/bench.py imports it).

Each venv is made once and kept in tests/.venvs/, in a folder named by a hash of what it holds;
pip's own cache makes a new one quick."""

import fcntl
import hashlib
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent
CACHE = CODE / "tests" / ".venvs"
# The programs making venvs in this process, for stop().
_running = set()
_lock = threading.Lock()
_stopped = False
# By venv, held while it is looked at or made: the file lock below excludes other processes only.
_making = {}


def pinned(name):
    """The line of requirements.txt that pins name, e.g. "gemseo==6.3.3"."""
    for line in (CODE / "requirements.txt").read_text().splitlines():
        if line.partition("==")[0].strip().lower() == name:
            return line.strip()
    raise LookupError(f"{name} is not pinned in requirements.txt")


# The same GEMSEO as gaas's, so that the reference and gaas differ by their own code only.
REFERENCE_CLIENT = ("gemseo-http==3.0.0", pinned("gemseo"))
REFERENCE_SERVER = ("gemseo-http[server]==3.0.0", pinned("gemseo"))
# The client's venvs (tests/test_client_package.py): the server's GEMSEO, and the newest GEMSEO 7
# on PyPI (a release candidate for now: bump it).
CLIENT_GEMSEOS = {"gemseo-6": pinned("gemseo"), "gemseo-7": "gemseo==7.0.0rc0"}


def client_requirements(gemseo):
    """The requirements of a venv for the client with that GEMSEO: its dependencies, not itself."""
    project = tomllib.loads((CODE / "client" / "pyproject.toml").read_text())["project"]
    return (gemseo, *project["dependencies"])


def venv(requirements, cache=CACHE):
    """The bin folder of a venv that holds requirements, made on the first call only."""
    key = hashlib.sha256("\n".join([sys.version, *requirements]).encode()).hexdigest()[:16]
    path = cache / key
    done = path / ".complete"
    cache.mkdir(parents=True, exist_ok=True)
    # Two sessions at once (the tests and the benchmark, xdist's workers) make it once; a venv
    # left half made by a killed run has no .complete and is made again. A POSIX lock, not
    # flock: a process forked meanwhile (a DOE's pool in a test) does not inherit it, and one
    # that hangs would otherwise hold it for every other session.
    with _lock:
        making = _making.setdefault(key, threading.Lock())
    with making, open(cache / f"{key}.lock", "w") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        if not done.exists():
            print(f"making a venv for {' '.join(requirements)} in {path} ...", file=sys.stderr, flush=True)
            shutil.rmtree(path, ignore_errors=True)
            python = str(path / "bin" / "python")
            _run([sys.executable, "-m", "venv", str(path)])
            # No byte-compiling of every module installed: half of pip's time for GEMSEO's
            # dependencies, when a venv imports few of them, compiled on first import.
            _run([python, "-m", "pip", "install", "--quiet", "--no-compile", *requirements])
            done.write_text("\n".join(requirements) + "\n")
    return path / "bin"


def _run(command):
    """Run command to its end, as subprocess.run(check=True) does, unless stop() ends it."""
    with _lock:
        if _stopped:
            raise RuntimeError("venvs.stop() was called: no venv is made any more")
        process = subprocess.Popen(command)
        _running.add(process)
    try:
        try:
            process.wait()
        except BaseException:  # Ctrl-C while a fixture waits for it: no pip left behind
            process.kill()
            process.wait()
            raise
        if process.returncode != 0:
            raise subprocess.CalledProcessError(process.returncode, command)
    finally:
        with _lock:
            _running.discard(process)


def stop():
    """End the venvs being made in background threads, and start none after: a session that
    ends (Ctrl-C included) must not wait for pip, nor leave a thread running pip while Python
    shuts down. A venv left half made has no .complete and is made again next time."""
    global _stopped
    with _lock:
        _stopped = True
        for process in _running:
            process.terminate()


# The venvs each test fixture needs (conftest.py begins them in the background).
FIXTURE_VENVS = {
    "reference_client": [REFERENCE_CLIENT],
    "client_venvs": [client_requirements(gemseo) for gemseo in CLIENT_GEMSEOS.values()],
}


def make_all():
    """Make every venv the test suite uses, one after the other."""
    for needs in FIXTURE_VENVS.values():
        for requirements in needs:
            venv(requirements)


if __name__ == "__main__":
    make_all()  # .ci/run, before the suite: see there
