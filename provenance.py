"""Where a result comes from: the service and library versions, the code of the discipline that
computed it (its distribution and a SHA-256 of its source files), the host, and a SHA-256 of its
complete inputs.

What is fixed for a warm process is computed once (`process_provenance`), what is fixed for a
class once per class (`class_provenance`); only the inputs' digest is per job. Standard library,
and numpy for the inputs, already loaded where jobs run.
"""

import functools
import hashlib
import importlib.metadata
import inspect
import platform
import socket
import sys
import sysconfig
from pathlib import Path

CODE_DIR = Path(__file__).resolve().parent
_LIBRARY_ROOTS = tuple(
    Path(path).resolve() for path in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)


def service_version():
    """The service's version: the VERSION file beside the code (an install or an image may write
    one), else the commit of the git checkout it runs from, else "unknown"."""
    version_file = CODE_DIR / "VERSION"
    if version_file.is_file():
        return version_file.read_text().strip() or "unknown"
    return _git_commit(CODE_DIR / ".git") or "unknown"


def _git_commit(git):
    """HEAD's commit, read from the files (no git program needed), or None."""
    try:
        if git.is_file():  # a worktree: "gitdir: PATH"
            git = (git.parent / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        common = git / "commondir"
        roots = [git, (git / common.read_text().strip()).resolve()] if common.is_file() else [git]
        for root in roots:
            if (root / ref).is_file():
                return (root / ref).read_text().strip()
            packed = root / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
    except (OSError, IndexError):
        pass
    return None


@functools.cache
def process_provenance():
    """What every job of this process shares: versions and host (API.md Part 5)."""
    return {
        "gaas": service_version(),
        "gemseo": _version("gemseo"),
        "python": platform.python_version(),
        "host": socket.gethostname(),
    }


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _distributions():
    # About 0.2 s: once per process (the zygote's, before it forks).
    return importlib.metadata.packages_distributions()


@functools.cache
def class_provenance(cls):
    """The class, its module, the distribution that ships it ("NAME VERSION", None for a plugin
    found on GEMSEO_PATH) and code_sha256: the SHA-256 of the bytes of its source files in sorted
    path order, its own module's and those of its bases outside GEMSEO and the standard library,
    so that a plugin edited in place, or a base class it takes from another plugin, changes it.
    The files are read at the first call: make it when the class is loaded (the zygote, before it
    forks), so that it is the loaded code's."""
    digest = hashlib.sha256()
    for path in sorted(source_files(cls)):
        digest.update(path.read_bytes())
    top = cls.__module__.split(".")[0]
    name = (_distributions().get(top) or [None])[0]
    return {
        "class_name": cls.__name__,
        "module": cls.__module__,
        "code_sha256": digest.hexdigest(),
        "distribution": f"{name} {_version(name)}" if name else None,
    }


def source_files(cls):
    """The files whose change changes what cls computes, as far as its classes go: its own
    module's, then its bases' outside GEMSEO and the standard library, each once, in MRO order."""
    gemseo_root = Path(sys.modules["gemseo"].__file__).resolve().parent if "gemseo" in sys.modules else None
    found = []
    for index, klass in enumerate(cls.__mro__):
        path = _source_of(klass)
        if path is None or path in found:
            continue
        if index > 0 and (path.is_relative_to(gemseo_root) if gemseo_root else False):
            continue
        if index > 0 and any(path.is_relative_to(root) for root in _LIBRARY_ROOTS) and "site-packages" not in path.parts:
            continue
        found.append(path)
    return found


def _source_of(klass):
    try:
        return Path(inspect.getsourcefile(klass)).resolve()
    except (TypeError, OSError):  # builtins, classes made at run time
        return None


def value_digest(value):
    """A SHA-256 of one input value as the discipline gets it: its type, shape and bytes (1.0 and
    1, float and int arrays, differ: the discipline may treat them differently)."""
    import numpy

    value = numpy.asarray(value)
    if value.dtype.kind in "OUS":  # strings and objects: by their text
        raw = repr(value.tolist()).encode()
    else:
        raw = numpy.ascontiguousarray(value).tobytes()
    return hashlib.sha256(f"{value.dtype.str}\0{value.shape}\0".encode() + raw).hexdigest()


def inputs_sha256(digests, file_sha256s=()):
    """A SHA-256 of a job's complete inputs from each input's value_digest, in name order, then the
    SHA-256 of each input file by its name. Key order does not matter."""
    digest = hashlib.sha256()
    for name in sorted(digests):
        digest.update(f"{name}\0{digests[name]}\0".encode())
    for name, sha256 in sorted(dict(file_sha256s).items()):
        digest.update(f"file\0{name}\0{sha256}\0".encode())
    return digest.hexdigest()


def job_provenance(cls, input_data, file_sha256s=()):
    """The provenance of a job run here: this process's, the class's, and its inputs' digest."""
    digests = {name: value_digest(value) for name, value in input_data.items()}
    return {
        **process_provenance(),
        "discipline": class_provenance(cls),
        "inputs_sha256": inputs_sha256(digests, file_sha256s),
    }
