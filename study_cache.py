"""The results cache inside a study (API.md Part 5): each discipline of a study whose class is
cached looks its points up and offers its own, keyed exactly as a job's (cache.keys: job type
"execute", no input files), so that a study run again replays its history from the store and a
point that a batch computed is a hit.

The worker sends, with the study, the keys known in scope at its start (the first
store.KNOWN_KEY characters of each): a point whose key is not among them is a miss without a
round trip; one that is is asked for on the pipe ({"cache_get": [keys]}) and the worker answers
from the store. What the disciplines compute leaves with the evaluations ({"cache_put": [...]}).
A Jacobian is kept under a key of its own (job type "study_linearize", with the linearisation
mode and the differentiated names): reused only for what it was computed. Job processes only.
"""

import hashlib
import threading

import numpy
import orjson
from gemseo.caches.simple_cache import SimpleCache

import provenance


class StudyCaches:
    """A study's side of the cache: the keys known at its start, the entries to send, the counts."""

    def __init__(self, request, code, ask):
        self.parts, self.lookup = request["parts"], request["lookup"]
        self.known = frozenset(request.get("known", ())) if self.lookup else frozenset()
        self.width = len(next(iter(self.known), ""))  # store.KNOWN_KEY
        self.code, self.ask = code, ask
        self.lock = threading.Lock()
        self.puts, self.hits, self.misses = [], 0, 0

    def attach(self, disciplines, entries):
        """Give each discipline of a cached class its DisciplineCache."""
        for discipline, entry, parts in zip(disciplines, entries, self.parts):
            if parts is not None:
                discipline.cache = DisciplineCache(self, discipline, parts, self.code[entry["class_name"]])

    def count(self, hit):
        with self.lock:  # an MDA runs its disciplines in threads
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def put(self, key, class_name, text):
        with self.lock:
            self.puts.append((key, class_name, text))

    def message(self):
        """The entries to send with a batch of evaluations ({} when none)."""
        with self.lock:
            puts, self.puts = self.puts, []
        return {"cache_put": puts} if puts else {}

    def last_message(self):
        """The entries left and the lookups' counts, sent before the reply."""
        return {"cache_put": self.message().get("cache_put", []), "cache_counts": {"hit": self.hits, "miss": self.misses}}

    def get(self, keys):
        """{key: JSON text} of the keys the worker found in the store."""
        return self.ask({"cache_get": keys})["cache_entries"]


class DisciplineCache(SimpleCache):
    """GEMSEO's SimpleCache (the last entry, in this process), which looks up in the store a point
    it does not hold and sends what the discipline computes."""

    def __init__(self, caches, discipline, parts, code):
        super().__init__()
        self.caches, self.discipline, self.code = caches, discipline, code
        self.parts, self.class_name = parts, parts[1]
        self.execute_prefix = orjson.dumps([*parts, "execute"])
        self.jacobian_prefix = (None, b"")  # (the names it is for, the prefix)
        self.digest = None  # the inputs' digest of the last entry
        self.looked = None  # that of the last lookup, for the outputs that follow it

    def __getitem__(self, input_data):
        entry = super().__getitem__(input_data)
        if entry.outputs:
            return entry
        inputs = self.looked = _inputs_sha256(input_data)
        if not self.caches.lookup:
            return entry
        keys = [key for key in (self._key(self.execute_prefix, inputs), self._jacobian_key(inputs)) if key]
        wanted = [key for key in keys if key[: self.caches.width] in self.caches.known]
        found = self.caches.get(wanted) if wanted and wanted[0] == keys[0] else {}
        outputs = _outputs(found.get(keys[0]))
        self.caches.count(outputs is not None)
        if outputs is None:
            return entry
        super().cache_outputs(input_data, outputs)
        jacobian = _jacobian(found.get(keys[1])) if len(keys) > 1 else None
        if jacobian:
            super().cache_jacobian(input_data, jacobian)
        self.digest, self.looked = inputs, None
        return self.last_entry

    def cache_outputs(self, input_data, output_data):
        held = self._holds(input_data)
        if held and self.last_entry.outputs:
            return  # GEMSEO's SimpleCache keeps them as they are too
        super().cache_outputs(input_data, output_data)
        if not held:
            # The digest of the lookup just before (GEMSEO's execute: look up, run, cache).
            self.digest = self.looked or _inputs_sha256(input_data)
        self.looked = None
        text = _text(output_data, 1)
        if text is not None:
            self.caches.put(self._key(self.execute_prefix, self.digest), self.class_name, text)

    def cache_jacobian(self, input_data, jacobian_data):
        if not self._holds(input_data):
            self.digest = _inputs_sha256(input_data)
        super().cache_jacobian(input_data, jacobian_data)
        key = self._jacobian_key(self.digest)
        ins, outs = self._differentiated()
        # Only a Jacobian with every differentiated pair: a hit is then all GEMSEO needs.
        if key is None or not all(name in jacobian_data and ins <= jacobian_data[name].keys() for name in outs):
            return
        text = _text({name: {other: jacobian_data[name][other] for other in ins} for name in outs}, 2)
        if text is not None:
            self.caches.put(key, self.class_name, text)

    def _holds(self, input_data):
        """Whether the last entry is at these inputs."""
        return len(self) != 0 and super().__getitem__(input_data).inputs is self.last_entry.inputs

    def _differentiated(self):
        discipline = self.discipline
        return set(discipline._differentiated_input_names), sorted(discipline._differentiated_output_names)

    def _jacobian_key(self, inputs):
        """The key of the Jacobian of the differentiated names at these inputs; None when none."""
        ins, outs = self._differentiated()
        if not (ins and outs):
            return None
        names = (str(self.discipline.linearization_mode), sorted(ins), outs)
        if self.jacobian_prefix[0] != names:
            self.jacobian_prefix = (names, orjson.dumps([*self.parts, "study_linearize", *names]))
        return self._key(self.jacobian_prefix[1], inputs)

    def _key(self, prefix, inputs):
        return f"{hashlib.sha256(prefix + inputs.encode()).hexdigest()}:{self.code}"


def _inputs_sha256(input_data):
    """provenance.inputs_sha256 of complete input data, as a job's key digests it (cache.keys)."""
    return provenance.inputs_sha256({name: provenance.value_digest(value) for name, value in input_data.items()})


PLAIN = (numpy.dtype(float), numpy.dtype(numpy.int64))


def _text(data, depth):
    """JSON text of outputs (depth 1) or a Jacobian (depth 2) whose arrays all come back as they
    are (float64 or int64, finite, not empty); None for any other."""
    arrays = [matrix for row in data.values() for matrix in row.values()] if depth == 2 else list(data.values())
    for array in arrays:
        if not (isinstance(array, numpy.ndarray) and array.dtype in PLAIN and array.size and array.ndim == depth):
            return None
        if array.dtype.kind == "f" and not numpy.isfinite(array).all():
            return None
    try:
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:  # not contiguous
        return None


def _outputs(text):
    """The outputs of a JSON text (a job's or a study's), or None when one would not come back
    as the discipline computed it (a miss, never a wrong hit)."""
    if text is None:
        return None
    outputs = {}
    for name, value in orjson.loads(text).items():
        array = numpy.array(value) if isinstance(value, list) else None
        if array is None or array.dtype not in PLAIN or array.ndim != 1:
            return None
        outputs[name] = array
    return outputs


def _jacobian(text):
    if text is None:
        return None
    return {name: {other: numpy.array(matrix, dtype=float) for other, matrix in row.items()} for name, row in orjson.loads(text).items()}
