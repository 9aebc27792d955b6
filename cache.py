"""The results cache's key (API.md Part 5): what makes two jobs compute the same thing.

A job's key is the SHA-256 of everything its results depend on but the code, then ":" and the
code's fingerprint (provenance.class_provenance's code_sha256, as the zygotes computed it): the
scope (the user, or "*" when results are shared), the class, its options as canonical JSON, the
job type and linearisation fields, and the complete inputs: each given input's digest as the job
process will convert it, each default's as the description reported it, the input files' SHA-256.
Inputs equal in value but not in type (1 and 1.0) give two keys: a miss, never a wrong hit.
The store finds a job's source by it (store.create_job, create_batch); jobs.py settles the rest.
"""

import functools
import hashlib
import struct
import sys
from typing import NamedTuple

import orjson

import jobproc
import provenance
import settings


class Discipline:
    """What a key needs to know of a discipline built with given options: its code's fingerprint
    (None: not cached) and its description's defaults."""

    def __init__(self, name, code_sha256, description):
        uncached = settings.CACHE == "off" or name in settings.UNCACHED_DISCIPLINES
        self.code_sha256 = None if uncached else code_sha256
        # provenance.inputs_sha256's bytes of each default, made once for all the keys.
        self.named = {name: _named(name, digest) for name, digest in description.get("default_digests", {}).items()}
        self.arrays = frozenset(description.get("array_defaults", ()))
        self.array = _array() if self.arrays else None


# Disciplines by description: the web app keeps a description per class and options, and a
# request's key then starts from that one's work (the object is held, so its id stays its own).
_disciplines = {}


def discipline(name, code_sha256, description):
    """Discipline(name, code_sha256, description), made once per description object."""
    key = (name, code_sha256, id(description), settings.CACHE, name in settings.UNCACHED_DISCIPLINES)
    found = _disciplines.get(key)
    if found is None or found[0] is not description:
        if len(_disciplines) >= 1024:
            _disciplines.clear()
        found = _disciplines[key] = (description, Discipline(name, code_sha256, description))
    return found[1]


class Request(NamedTuple):
    """A job's (or a batch's) part in the cache: its discipline, its given inputs (a dict, or a
    list of dicts for a batch's points), and whether it may take earlier results ("cache")."""

    discipline: Discipline
    input_data: dict | list
    lookup: bool


def key(fields, input_data, discipline):
    """The cache key of a job (its store columns `fields`, input_files resolved, and its given
    input_data as a dict), or None when its class is not cached."""
    return keys(fields, [input_data], discipline)[0]


def keys(fields, points, discipline):
    """The cache keys of jobs that differ only by their given input_data (a batch's points)."""
    if discipline is None or discipline.code_sha256 is None:
        return [None] * len(points)
    given_files = fields["input_files"]
    input_files = {} if given_files == "[]" else {entry["filename"]: entry.get("sha256sum", "") for entry in orjson.loads(given_files)}
    parts = [*scope_parts(fields["user_id"], fields["discipline_class_name"], fields["discipline_options"]), fields["job_type"]]
    if fields["job_type"] == "execute_and_linearize":
        parts += [fields["linearization_mode"], _canonical(fields["linearize_options"])]
        parts += [fields["differentiated_inputs"], fields["differentiated_outputs"]]
    common = orjson.dumps(parts)
    # provenance.inputs_sha256's bytes, name by name, the defaults' made with the discipline.
    files = b"".join(f"file\0{name}\0{sha256}\0".encode() for name, sha256 in sorted(input_files.items()))
    found, code, arrays = [], discipline.code_sha256, discipline.arrays
    for input_data in points:
        named = discipline.named.copy()
        for name, value in input_data.items():
            named[name] = _named(name, _digest(value, discipline.array if name in arrays else None))
        inputs = hashlib.sha256(b"".join([named[name] for name in sorted(named)]) + files).hexdigest()
        found.append(f"{hashlib.sha256(common + inputs.encode()).hexdigest()}:{code}")
    return found


def _named(name, digest):
    return f"{name}\0{digest}\0".encode()


def scope_parts(user_id, class_name, options_text):
    """The first parts of a key: whose results, which class, which options (canonical JSON)."""
    return [user_id if settings.CACHE == "user" else "*", class_name, _canonical(options_text)]


def study_request(user_id, spec):
    """What a study's job process needs to key its disciplines' evaluations as jobs (API.md
    Part 5): for each entry of spec["disciplines"], its scope_parts, or None when its class is
    not cached (study_cache.py appends the job type and the inputs' digest, as keys() does);
    None for a study with the cache off. Its "known" keys the worker adds (jobs.py)."""
    if settings.CACHE == "off":
        return None
    parts = [
        None if entry["class_name"] in settings.UNCACHED_DISCIPLINES
        else scope_parts(user_id, entry["class_name"], orjson.dumps(entry.get("options", {})))
        for entry in spec["disciplines"]
    ]
    if not any(parts):
        return None
    return {"parts": parts, "lookup": spec.get("cache", True)}


# numpy's name of its float64 in this machine's byte order, as value_digest writes it.
FLOAT64 = b"<f8" if sys.byteorder == "little" else b">f8"


def _digest(value, default):
    """provenance.value_digest of a given value as jobproc.to_array converts it. A short list of
    floats (a batch's point, most often) is digested without numpy, 2 us instead of 4: its array
    would be float64 of shape (n,), its bytes those doubles in native order, as struct packs them."""
    if type(value) is list and 0 < len(value) <= 64 and all(type(item) is float for item in value):
        head = b"%s\0(%d,)\0" % (FLOAT64, len(value))
        return hashlib.sha256(head + struct.pack(f"={len(value)}d", *value)).hexdigest()
    return provenance.value_digest(jobproc.to_array(value, default))


@functools.lru_cache(maxsize=256)
def _canonical(text):
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS).decode()


def _array():
    """An array default, for jobproc.to_array: a number given for one becomes a 1-array."""
    import numpy

    return numpy.empty(0)
