"""Provenance of results: versions, the discipline's code fingerprint, the inputs' digest."""

import hashlib
import importlib
import importlib.metadata
import platform
import subprocess
import sys

import numpy
import pytest

import provenance

PLUGIN_BASE = '''
from gemseo.core.discipline import Discipline

class Scaled(Discipline):
    factor = 2.0
'''
PLUGIN = '''
from prov_base import Scaled

class Doubler(Scaled):
    pass
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A plugin module whose class takes its base from another plugin module, both in tmp_path."""
    (tmp_path / "prov_base.py").write_text(PLUGIN_BASE)
    (tmp_path / "prov_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("prov_plugin").Doubler
    for name in ("prov_plugin", "prov_base"):
        sys.modules.pop(name, None)


def fingerprint(*paths):
    """API.md Part 5: the bytes of the defining files, in sorted path order."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_a_gemseo_class_is_known_by_its_distribution_and_its_own_module():
    from gemseo.problems.mdo.sellar.sellar_1 import Sellar1

    found = provenance.class_provenance(Sellar1)
    module_file = sys.modules[Sellar1.__module__].__file__
    assert found == {
        "class_name": "Sellar1",
        "module": "gemseo.problems.mdo.sellar.sellar_1",
        # GEMSEO's own base classes are named by its version, not hashed.
        "code_sha256": fingerprint(__import__("pathlib").Path(module_file).resolve()),
        "distribution": "gemseo " + importlib.metadata.version("gemseo"),
    }


def test_a_plugin_is_known_by_its_files_and_their_bases_outside_gemseo(plugin, tmp_path):
    found = provenance.class_provenance(plugin)
    assert provenance.source_files(plugin) == [tmp_path / "prov_plugin.py", tmp_path / "prov_base.py"]
    assert found["distribution"] is None
    assert found["module"] == "prov_plugin" and found["class_name"] == "Doubler"
    assert found["code_sha256"] == fingerprint(tmp_path / "prov_plugin.py", tmp_path / "prov_base.py")
    # An edit of the base class's file, in place, is another fingerprint (for a process that
    # loads it: a warm process fingerprints the code it loaded, once).
    (tmp_path / "prov_base.py").write_text(PLUGIN_BASE.replace("2.0", "3.0"))
    assert provenance.class_provenance.__wrapped__(plugin)["code_sha256"] != found["code_sha256"]


def test_the_process_provenance_names_versions_and_host():
    found = provenance.process_provenance()
    assert found["gemseo"] == importlib.metadata.version("gemseo")
    assert found["python"] == platform.python_version()
    assert found["host"] == __import__("socket").gethostname()
    assert found["gaas"]


def test_the_service_version_is_the_version_file_else_the_commit(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    monkeypatch.setattr(provenance, "CODE_DIR", code)
    assert provenance.service_version() == "unknown"
    subprocess.run(["git", "init", "-q", str(code)], check=True)
    (code / "a").write_text("a")
    git = ["git", "-C", str(code), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "a"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert provenance.service_version() == head
    subprocess.run([*git, "pack-refs", "--all"], check=True)  # the commit now only in packed-refs
    assert provenance.service_version() == head
    (code / "VERSION").write_text("2.1.0\n")
    assert provenance.service_version() == "2.1.0"


def digest_of(data, files=()):
    return provenance.inputs_sha256({name: provenance.value_digest(value) for name, value in data.items()}, files)


def test_the_inputs_digest_tells_values_types_shapes_and_files_apart():
    base = {"x": numpy.array([1.0, 2.0]), "name": numpy.array(["a"])}
    digest = digest_of(base)
    # The same inputs in another order, or as other objects of equal value: the same digest.
    assert digest_of({"name": ["a"], "x": numpy.array([1.0, 2.0])}) == digest
    different = [
        {**base, "x": numpy.array([1.0, 2.0000000000000004])},
        {**base, "x": numpy.array([1, 2])},
        {**base, "x": numpy.array([[1.0, 2.0]])},
        {**base, "name": numpy.array(["b"])},
        {**base, "y": numpy.array([0.0])},
        {"x\0": numpy.array([1.0, 2.0]), "name": numpy.array(["a"])},
    ]
    digests = {digest_of(data) for data in different}
    assert digest not in digests and len(digests) == len(different)
    with_file = digest_of(base, {"in.txt": "ab" * 32})
    assert with_file != digest
    assert digest_of(base, {"in.txt": "cd" * 32}) != with_file
    assert digest_of(base, {"other.txt": "ab" * 32}) != with_file



def test_the_cache_digests_a_short_list_of_floats_as_numpy_does():
    # cache._digest skips numpy for a batch's usual point: the digest must be value_digest's.
    import random

    import cache
    import jobproc

    rng = random.Random(19)
    values = [[0.0], [-0.0], [5e-324], [1.7976931348623157e308], [float(2**60)], [0.1, 0.2, 0.30000000000000004]]
    values += [[rng.uniform(-1e6, 1e6) for _ in range(size)] for size in (1, 2, 3, 10, 64)]
    # Not for the shortcut: ints, bools, mixed, nested, empty, long lists, scalars, strings.
    values += [[1], [True], [1.0, 2], [[1.0, 2.0]], [], [0.5] * 65, 1.5, 2, "a", ["a", "b"]]
    for value in values:
        for default in (None, numpy.zeros(1)):
            expected = provenance.value_digest(jobproc.to_array(value, default))
            assert cache._digest(value, default) == expected, value
