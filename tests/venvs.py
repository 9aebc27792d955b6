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
import tomllib
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent
CACHE = CODE / "tests" / ".venvs"


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
    # Two sessions at once (the tests and the benchmark) make it once; a venv left half made by a
    # killed run has no .complete and is made again.
    with open(cache / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            print(f"making a venv for {' '.join(requirements)} in {path} ...", file=sys.stderr, flush=True)
            shutil.rmtree(path, ignore_errors=True)
            python = str(path / "bin" / "python")
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
            # No byte-compiling of every module installed: half of pip's time for GEMSEO's
            # dependencies, when a venv imports few of them, compiled on first import.
            subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-compile", *requirements], check=True)
            done.write_text("\n".join(requirements) + "\n")
    return path / "bin"
