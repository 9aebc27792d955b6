"""Warm job processes: GEMSEO imported once, then forked, then one request at a time.

pool.Pool starts `python jobproc.py FD`, the *zygote*: it imports GEMSEO, scans the discipline
factory, then only forks. Each fork is a job process, warm from birth and sharing the zygote's
memory, the leader of its own process group (so that a cancel or a timeout stops it with
everything it started), talking to the pool over the socket the pool passed along. This module
is the only place where GEMSEO is imported: the web app and the consumer stay small.
"""

import contextlib
import ctypes
import gc
import inspect
import json
import math
import os
import resource
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection

import orjson

LOG_NAME = "gaas-job.log"  # files.LOG_NAME; this module imports no gaas module
REUSE = os.environ.get("GAAS_REUSE_DISCIPLINES", "1") == "1"
# Discipline classes whose JSON options can run code or commands, read or write any server file,
# or make the server send requests: served only when the admin enables them by name, and so are
# their subclasses (a plugin may derive from one under another name). The first three were shown
# exploitable here; the others run code or touch paths by design (README). AnalyticDiscipline
# (sympy's parser is an eval) is served to all: its options are checked by formulas.py, and GEMSEO
# gets sympy objects built from the checked text, never the text.
UNSAFE = frozenset(
    {
        "DiscFromExe",  # runs command_line, reads and writes any path
        "HTTPDiscipline",  # requests to any host, uploads any server file
        "RemoteDiscipline",  # gaas's client (client/), if installed beside the server: the same
        "XLSDiscipline",  # opens any workbook and runs its macros
        "JobSchedulerDisciplineWrapper",  # runs scheduler commands
        "SLURM",
        "LSF",
        "MDOScenarioAdapter",  # writes optimization histories to a chosen path
        "MDOObjectiveScenarioAdapter",
        "AutoPyDiscipline",  # wraps a Python callable
        "ArrayBasedFunctionDiscipline",
        "LinearLinkDiscipline",
        "SurrogateDiscipline",
        "DataDrivenScalableDiscipline",
    }
)


class ClientError(Exception):
    """A mistake in the request, reported to the client as a 4xx."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status


def _die_with_parent(on_death):
    """Call on_death when the parent goes, even if it was SIGKILLed (kernel parent-death signal,
    with a polling thread as a backstop)."""
    signal.signal(signal.SIGTERM, lambda *_: on_death())
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        on_death()

    threading.Thread(target=watch, daemon=True).start()


def _kill_own_group():
    os.killpg(0, signal.SIGKILL)


# What GEMSEO's ExecutionStatistics._init_shared_memory_attrs_before sets: plain_statistics()
# replaces it only while it sets exactly these (tests/test_study_core.py fails when they move).
STATISTICS_NAMES = ("_ExecutionStatistics__duration", "_ExecutionStatistics__n_executions", "_ExecutionStatistics__n_linearizations")


class PlainCounter:
    """A statistic's stand-in while GEMSEO's statistics are off (then nobody reads or counts it;
    statistics turned on later count in this process only)."""

    __slots__ = ("value",)
    lock = threading.Lock()  # one for all: an increment holds it a moment, never nested

    def __init__(self, value):
        self.value = value

    def get_lock(self):
        return self.lock


def plain_statistics():
    """GEMSEO makes three multiprocessing.Values (a named semaphore and shared memory each) for
    every discipline, MDA and chain it builds, statistics on or off: with them off, plain
    counters (a Sellar MDF scenario has 21, about a third of its build). Return whether done."""
    from gemseo.core.execution_statistics import ExecutionStatistics

    shared = ExecutionStatistics._init_shared_memory_attrs_before
    if getattr(shared, "shared", None) is not None:
        return True
    code = shared.__code__
    if set(code.co_names) != {"Value", *STATISTICS_NAMES}:
        return False  # another GEMSEO: keep its own

    def plain_or_shared(self):
        if ExecutionStatistics.is_enabled:
            shared(self)
        else:
            for name, value in zip(STATISTICS_NAMES, (0.0, 0, 0)):
                setattr(self, name, PlainCounter(value))

    plain_or_shared.shared = shared
    ExecutionStatistics._init_shared_memory_attrs_before = plain_or_shared
    return True


def serial_mdas():
    """A job process runs on one core, as a study's DOE does unless allowed more: GEMSEO's Jacobi
    MDA (MDF's) would run each discipline of every iteration in a thread of its own, one per CPU,
    which for disciplines in Python only adds the threads' cost (a Sellar MDF study: 18% of its
    run). A spec may still ask its MDA for n_processes, up to GEMSEO_HTTP_STUDY_MAX_PROCESSES.
    gemseo.configure(enable_parallel_execution=False) sets the default on the base settings class
    only, after which the classes already made keep theirs: each is set here. Jacobi's iterates
    agree with the threaded ones to the MDA's tolerance (tests/test_study_core.py)."""
    from gemseo.mda.base_parallel_mda_settings import BaseParallelMDASettings

    classes = [BaseParallelMDASettings]
    while classes:
        settings_class = classes.pop()
        settings_class.set_default_n_processes(1)
        classes.extend(settings_class.__subclasses__())


def light_stack(context=1):
    """inspect.stack() without each frame's source lines and file lookup, for light_stacks()."""
    frame, found = sys._getframe(1), []
    while frame is not None:
        code = frame.f_code
        found.append(inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name, None, None))
        frame = frame.f_back
    return found


@contextlib.contextmanager
def light_stacks():
    """GEMSEO's merge_enums takes inspect.stack() to learn where each enum it builds is defined:
    the source lines of every frame and, for each, a scan of sys.modules, about 0.6 s of the 4 s
    CPU of GEMSEO's import and scan (measured). While they run, frames as inspect.stack(0) would
    give them, but with the code's own file name, not one resolved through its module."""
    inspect.stack = light_stack
    try:
        yield
    finally:
        inspect.stack = STACK


STACK = inspect.stack


class Engine:
    """What the job process does with GEMSEO."""

    def __init__(self, enabled):
        with light_stacks():
            self._start(enabled)

    def _start(self, enabled):
        import gemseo

        gemseo.configure(
            enable_discipline_statistics=False,
            enable_function_statistics=False,
            enable_progress_bar=False,
            # Every job builds a new discipline; a cache would only cost time.
            enable_discipline_cache=False,
        )
        plain_statistics()
        serial_mdas()
        from gemseo.disciplines.factory import DisciplineFactory

        import formulas

        self.formulas = formulas
        self.gemseo = gemseo
        self.instances = {}
        self.settings_of = {}  # DOE algorithm -> its settings a client may give
        self.factory = DisciplineFactory()
        served, disabled = [], []
        for name in gemseo.get_available_disciplines():
            unsafe = name in UNSAFE or any(base.__name__ in UNSAFE for base in self.cls(name).__mro__)
            (disabled if unsafe and name not in enabled else served).append(name)
        self.catalogue, self.disabled = sorted(served), sorted(disabled)
        # Fingerprinted here, in the zygote, before it forks: the code its jobs run, not a file
        # edited since (the results cache is keyed by it).
        self.code = {name: self.provenance(name)["code_sha256"] for name in self.catalogue}

    def provenance(self, name):
        import provenance

        return provenance.class_provenance(self.cls(name))

    def cls(self, name):
        return self.factory.get_class(name)

    def check_name(self, name):
        if name in self.disabled:
            raise ClientError(
                403,
                f"Discipline {name!r} is not enabled on this server: it can run code or reach files"
                " from its options. The administrator can enable it by adding its name to"
                " GEMSEO_HTTP_ENABLED_DISCIPLINES.",
            )
        if name not in self.catalogue:
            raise ClientError(404, f"Unknown discipline {name!r}.")

    def about(self, name):
        """What a client needs to build the class: its summary and constructor parameters."""
        self.check_name(name)
        cls = self.cls(name)
        doc = (inspect.getdoc(cls) or "").strip()
        parameters = []
        for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            entry = {"name": parameter.name, "required": parameter.default is parameter.empty}
            if not entry["required"]:
                entry["default"] = json_default(parameter.default)
            if parameter.annotation is not parameter.empty:
                entry["type"] = str(parameter.annotation)
            parameters.append(entry)
        return {
            "name": name,
            "description": doc.split("\n\n")[0].replace("\n", " ") if doc else "",
            "options_required": any(item["required"] for item in parameters),
            "parameters": parameters,
        }

    def analytic(self, name):
        """Whether the class computes formulas given in its options (AnalyticDiscipline or a subclass)."""
        return any(base.__name__ == "AnalyticDiscipline" for base in self.cls(name).__mro__)

    def create(self, name, options):
        self.check_name(name)
        if not isinstance(options, dict):
            raise ClientError(422, "discipline_options must be an object.")
        if self.analytic(name):
            try:
                options = self.formulas.checked_options(options)
            except self.formulas.FormulaError as error:
                raise ClientError(422, str(error)) from None
        try:
            discipline = self.gemseo.create_discipline(name, **options)
        except Exception as error:  # any constructor error is a bad option from the client
            raise ClientError(422, f"Invalid discipline_options for {name}: {error}") from None
        for grammar in (discipline.io.input_grammar, discipline.io.output_grammar):
            if type(grammar).__name__ == "JSONGrammar":
                grammar.validate = ShortArrayValidation(grammar.validate, grammar)
        return discipline

    def describe(self, name, options):
        import numpy

        import provenance

        discipline = self.create(name, options)
        defaults = discipline.io.input_grammar.defaults
        return {
            "input_names": list(discipline.io.input_grammar.names),
            "output_names": list(discipline.io.output_grammar.names),
            "inputs_schema": grammar_schema(discipline.io.input_grammar),
            "outputs_schema": grammar_schema(discipline.io.output_grammar),
            "default_input_data": to_json_values(discipline.io.input_grammar.defaults),
            # What the results cache needs to complete a request's inputs exactly: each default's
            # digest, and which defaults are arrays (a number given for one becomes an array).
            "default_digests": {name: provenance.value_digest(value) for name, value in defaults.items()},
            "array_defaults": sorted(name for name, value in defaults.items() if isinstance(value, numpy.ndarray)),
        }

    def doe(self, doe, max_points):
        """The points of a design of experiments, computed by GEMSEO's DOE library: a list of
        {variable: [values]}."""
        from gemseo import compute_doe, create_design_space
        from gemseo.algos.doe.factory import DOELibraryFactory

        algo = doe["algo_name"]
        # CustomDOE reads its points from a server file; explicit samples do that job.
        factory = DOELibraryFactory()
        if algo in DOE_REFUSED or algo not in factory.algorithms:
            usable = [name for name in ("PYDOE_LHS", "OT_SOBOL", "LHS", "PYDOE_FULLFACT") if name in factory.algorithms]
            raise ClientError(
                422,
                f"Field 'doe.algo_name': {str(algo)[:50]!r} is not a DOE algorithm of this server;"
                f" GET /v1/algorithms lists them (for instance {', '.join(usable)}).",
            )
        self.check_settings(factory, algo, doe.get("settings", {}))
        space = create_design_space()
        for name, bounds in doe["design_space"].items():
            try:
                space.add_variable(
                    name, len(bounds["lower_bound"]), lower_bound=bounds["lower_bound"], upper_bound=bounds["upper_bound"]
                )
            except Exception as error:
                raise ClientError(422, f"Field 'doe.design_space.{name}': {first_line(error)}") from None
        try:
            given = {"n_samples": doe["n_samples"]} if "n_samples" in doe else {}
            samples = compute_doe(space, algo_name=algo, **given, **doe.get("settings", {}))
        except Exception as error:
            raise ClientError(422, f"Field 'doe.settings': {algo} refused them: {first_line(error, 3)}") from None
        # Some settings decide the number of points themselves (a full factorial's levels).
        if len(samples) > max_points:
            raise ClientError(
                422,
                f"Field 'doe': {algo} with these settings gives {len(samples)} points; a batch may have at"
                f" most {max_points} (GEMSEO_HTTP_MAX_BATCH_SAMPLES).",
            )
        names, points = space.variable_names, []
        for row in samples:
            point, start = {}, 0
            for name in names:
                size = space.get_size(name)
                point[name] = [float(value) for value in row[start : start + size]]
                start += size
            points.append(point)
        return points

    def check_settings(self, factory, algo, given):
        """Refuse a setting that GET /v1/algorithms does not list for this algorithm (a callback,
        a path, a mapping handed on to another algorithm), and any refused algorithm named inside
        one (MorrisDOE's doe_algo_name="CustomDOE" would read a server file)."""
        allowed = self.settings_of.get(algo)
        if allowed is None:
            info = factory.get_class(factory.algo_names_to_libraries[algo]).ALGORITHM_INFOS[algo]
            allowed = self.settings_of[algo] = plain_settings(info.Settings)
        for name, value in given.items():
            if name not in allowed:
                raise ClientError(
                    422,
                    f"Field 'doe.settings.{str(name)[:50]}' is not a setting of {algo} that a client may give;"
                    " GET /v1/algorithms lists them.",
                )
            if isinstance(value, str) and value in DOE_REFUSED:
                raise ClientError(422, f"Field 'doe.settings.{name}': {value} is not served (it reads a server file).")

    def algorithms(self):
        """The DOE and optimisation algorithms of this install, with their plain-valued settings
        (what a client may send as JSON), from GEMSEO's own settings models."""
        from gemseo.algos.doe.factory import DOELibraryFactory
        from gemseo.algos.opt.factory import OptimizationLibraryFactory

        catalogue = {}
        for kind, factory in (("doe", DOELibraryFactory()), ("optimization", OptimizationLibraryFactory())):
            entries = []
            for algo, library in factory.algo_names_to_libraries.items():
                if algo in DOE_REFUSED:
                    continue
                info = factory.get_class(library).ALGORITHM_INFOS[algo]
                entries.append(
                    {"name": algo, "description": one_line(info.description), "settings": plain_settings(info.Settings)}
                )
            catalogue[kind] = sorted(entries, key=lambda entry: entry["name"])
        return catalogue

    def instance(self, job):
        """A discipline for this job: a new one, or for a plain execution one this user already
        ran with the same options. Reuse never skips a run (GEMSEO's cache is off) and never
        crosses users; it saves building grammars and their validators again."""
        if job["job_type"] != "execute" or not REUSE:
            return self.create(job["discipline_class_name"], job["discipline_options"])
        key = (job["user_id"], job["discipline_class_name"], json.dumps(job["discipline_options"], sort_keys=True))
        discipline = self.instances.pop(key, None)
        if discipline is None:
            discipline = self.create(job["discipline_class_name"], job["discipline_options"])
        self.instances[key] = discipline
        while len(self.instances) > 32:
            del self.instances[next(iter(self.instances))]
        return discipline

    def execute(self, job):
        """Run a job in the current directory; return the reply fields for the store."""
        discipline = self.instance(job)
        defaults = discipline.io.input_grammar.defaults
        given = orjson.loads(job["input_data"])
        unknown = sorted(set(given) - set(discipline.io.input_grammar.names))
        if unknown:
            raise ValueError(f"Unknown input names for {discipline.name}: {', '.join(unknown)}.")
        input_data = {name: to_array(value, defaults.get(name)) for name, value in given.items()}
        if self.analytic(job["discipline_class_name"]):
            # sympy computes Python integers exactly: x**y with x = 10, y = 10**8 never ends.
            input_data = self.formulas.float_inputs(input_data)
        data = discipline.execute(input_data)
        # The inputs as run: the client's (its JSON text, kept as is: re-encoding a big array
        # costs as much as the run) completed with the defaults it left out.
        defaults_used = {
            name: data[name]
            for name in discipline.io.input_grammar.names
            if name in data and name not in given
        }
        outputs = {name: data[name] for name in discipline.io.output_grammar.names if name in data}
        reply = {"output_data": dumps(outputs), "provenance": dumps(self.job_provenance(job, input_data, defaults_used))}
        if defaults_used:  # else the stored inputs are already right: not sent back, not rewritten
            reply["input_data"] = join_objects(job["input_data"], dumps(defaults_used))
        if job["job_type"] == "execute_and_linearize":
            discipline.linearization_mode = job["linearization_mode"]
            if job["differentiated_inputs"]:
                discipline.add_differentiated_inputs(job["differentiated_inputs"])
            if job["differentiated_outputs"]:
                discipline.add_differentiated_outputs(job["differentiated_outputs"])
            options = dict(job["linearize_options"])
            # Without names to differentiate, GEMSEO computes nothing: give the whole Jacobian.
            if not (job["differentiated_inputs"] or job["differentiated_outputs"]):
                options.setdefault("compute_all_jacobians", True)
            # The model ran just above: linearize at that point without running it again
            # (GEMSEO's cache is off, so execute=True, which the gemseo-http client sends, would).
            options["execute"] = False
            jacobian = discipline.linearize(input_data, **options)
            reply["jacobian_data"] = dumps(jacobian)
        return reply


    def study_provenance(self, spec):
        """A study's: this process's, and each of its disciplines' classes."""
        import provenance

        names = dict.fromkeys(entry["class_name"] for entry in spec["disciplines"])
        return {**provenance.process_provenance(), "disciplines": [self.provenance(name) for name in names]}

    def job_provenance(self, job, input_data, defaults_used):
        import provenance

        files = {entry["filename"]: entry.get("sha256sum", "") for entry in job["input_files"]}
        cls = self.cls(job["discipline_class_name"])
        return provenance.job_provenance(cls, {**input_data, **defaults_used}, files)


def grammar_schema(grammar):
    """The JSON schema of a grammar; for a simple grammar (names and Python types), one built
    from its types, as GEMSEO builds a JSON grammar from types."""
    if type(grammar).__name__ == "JSONGrammar":
        return grammar.schema
    from gemseo.core.grammars.json_grammar import JSONGrammar

    converted = JSONGrammar(grammar.name)
    converted.update_from_types({name: grammar[name] for name in grammar.names if grammar[name] is not None})
    schema = dict(converted.schema)
    known = schema.get("properties", {})
    schema["properties"] = {name: known.get(name, {}) for name in grammar.names}
    schema["required"] = sorted(grammar.required_names)
    return schema


def json_default(value):
    """A constructor default as JSON: plain values as they are, enums by value, others as text."""
    import enum

    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, (bool, int, float, str)) for item in value):
        return list(value)
    return repr(value)


DOE_REFUSED = frozenset({"CustomDOE"})
# JSON-schema types a client can give as they are; a setting of any other kind (a callable, a
# path, an object of a class) cannot come from a client and is not listed.
PLAIN_TYPES = frozenset({"boolean", "integer", "number", "string", "array", "null"})


def one_line(text):
    """The first paragraph of a docstring-like text, on one line."""
    return " ".join((text or "").strip().split("\n\n")[0].split())


def plain_settings(model):
    """{name: {type, default, description}} of a GEMSEO settings model's plain-valued fields."""
    import warnings

    from pydantic.json_schema import GenerateJsonSchema

    class Lenient(GenerateJsonSchema):
        def handle_invalid_for_json_schema(self, schema, error_info):
            return {}  # an array or an object of a class: no JSON type, so not listed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # defaults that are not JSON are left out, silently
        schema = model.model_json_schema(schema_generator=Lenient)
    definitions = schema.get("$defs", {})
    settings = {}
    for name, field in schema.get("properties", {}).items():
        kind = json_type(field, definitions)
        if kind is None:
            continue
        entry = {"type": kind, "description": one_line(field.get("description"))}
        if "default" in field:
            default = field["default"]
            # JSON has no infinity: such a default (no limit) is given as the text "inf".
            entry["default"] = str(default) if isinstance(default, float) and not math.isfinite(default) else default
        else:
            entry["required"] = True
        settings[name] = entry
    return settings


def json_type(field, definitions):
    """The JSON type of a settings field's schema (one type, or "a|b" for a union), or None
    when the field cannot be a plain JSON value."""
    if "$ref" in field:
        field = definitions.get(field["$ref"].rpartition("/")[2], {})
    if "enum" in field:
        return field.get("type", "string")
    if "anyOf" in field:
        kinds = [json_type(option, definitions) for option in field["anyOf"]]
        return None if None in kinds else "|".join(dict.fromkeys(kinds))
    kind = field.get("type")
    if kind not in PLAIN_TYPES or field.get("format") == "path":
        return None
    if kind == "array" and json_type(field.get("items", {"type": "null"}), definitions) is None:
        return None
    return kind


def first_line(error, lines=1):
    """The first lines of an exception's text, for a client."""
    return " ".join(str(error).strip().splitlines()[:lines])[:300]


class ShortArrayValidation:
    """A grammar's validate(), checking a big 1-D number array by its first element when the
    schema of that name is exactly "an array of numbers", and skipping a big array it does not list.

    For such an array the answer is the same (every element of an int, float or complex array is
    a number once GEMSEO casts it), GEMSEO's messages are unchanged, and the JSON-schema check of
    a million elements (0.4 s per direction) is gone.
    """

    BIG = 1000

    def __init__(self, validate, grammar):
        self.validate, self.grammar = validate, grammar

    def __call__(self, data, *args, **kwargs):
        big = [name for name, value in data.items() if getattr(value, "size", 0) >= self.BIG]
        if big:
            schema = self.grammar.schema
            properties = schema.get("properties", {})
            # A name the schema does not list is not checked at all (the output grammar sees
            # the inputs too), unless the schema constrains extra names.
            unchecked = not ({"additionalProperties", "patternProperties"} & schema.keys())
            short = dict(data)
            for name in big:
                value = data[name]
                if name not in properties:
                    plain = unchecked and hasattr(value, "ndim")
                else:
                    plain = properties[name] == {"type": "array", "items": {"type": "number"}}
                    plain = plain and getattr(value, "ndim", 0) == 1 and value.dtype.kind in "fiuc"
                if plain:
                    short[name] = value[:1]
            data = short
        return self.validate(data, *args, **kwargs)


def to_array(value, default):
    """Turn a JSON value into what GEMSEO expects: arrays for numbers, as the defaults are."""
    import numpy

    if isinstance(value, list):
        # numpy first: a Python scan for strings cost 45 ms on a million numbers.
        try:
            array = numpy.array(value)
        except ValueError:  # ragged
            if any(isinstance(item, str) for item in value):
                return value
            raise
        return value if array.dtype.kind in "US" else array
    if isinstance(value, (int, float)) and isinstance(default, numpy.ndarray):
        return numpy.array([value])
    return value


def to_json_values(data):
    """Turn GEMSEO data (arrays, sparse matrices, numpy scalars) into JSON values."""
    plain = (str, int, float, bool, list, dict, type(None))
    return {name: value if isinstance(value, plain) else to_json_value(value) for name, value in data.items()}


def to_json_value(value):
    """A JSON value for what neither json nor orjson writes as it is."""
    import numpy

    if hasattr(value, "toarray"):  # sparse matrices
        value = value.toarray()
    if isinstance(value, numpy.ndarray):
        return numpy.real(value).tolist()
    if isinstance(value, numpy.generic):
        return numpy.real(value).item()
    if isinstance(value, complex):
        return value.real
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def join_objects(first, second):
    """Join the texts of two JSON objects with distinct keys into one."""
    if second.strip() == "{}":
        return first
    if first.strip() == "{}":
        return second
    return first.rstrip()[:-1] + ", " + second.lstrip()[1:]


def dumps(value):
    """JSON text of GEMSEO data. orjson writes number arrays itself, twenty times faster than
    json on lists; NaN and infinities become null, as they are not JSON."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=to_json_value).decode()
    except TypeError:  # an integer beyond 64 bits: the standard library writes those
        plain = json.loads(json.dumps(value, default=to_json_value))
        return json.dumps(_nan_to_none(plain))


def _nan_to_none(value):
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, list):
        return [_nan_to_none(item) for item in value]
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    return value


class redirected_output:
    """Send fds 1 and 2 (C and Fortran output too) to a log file while a job runs."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        log = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)


class memory_limit:
    """Let a job add at most `megabytes` of address space to this warm process (and children)."""

    def __init__(self, megabytes):
        self.extra = int(megabytes * 1024 * 1024) if megabytes else None

    def __enter__(self):
        if self.extra:
            self.saved = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (_address_space() + self.extra, self.saved[1]))

    def __exit__(self, *exc):
        if self.extra:
            resource.setrlimit(resource.RLIMIT_AS, self.saved)


def _address_space():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def handle(engine, request, idle_dir, send=None, ask=None):
    """Answer one request (send() carries a study's evaluations before the reply, ask() sends a
    question and returns the answer); never raises."""
    try:
        if request["op"] == "catalogue":
            return {"ok": True, "value": {"served": engine.catalogue, "disabled": engine.disabled, "code": engine.code}}
        if request["op"] == "about":
            return {"ok": True, "value": engine.about(request["name"])}
        if request["op"] == "algorithms":
            return {"ok": True, "value": engine.algorithms()}
        if request["op"] == "doe":
            with memory_limit(request.get("memory_limit_mb")):
                return {"ok": True, "value": engine.doe(request["doe"], request["max_points"])}
        if request["op"] == "describe":
            os.chdir(idle_dir)
            # Building a discipline runs its constructor: limited like a job (the caller also
            # gives it a deadline).
            with memory_limit(request.get("memory_limit_mb")):
                return {"ok": True, "value": engine.describe(request["name"], request["options"])}
        if request["op"] == "check_study":
            import study

            os.chdir(idle_dir)  # building the disciplines runs their constructors
            with memory_limit(request.get("memory_limit_mb")):
                return {"ok": True, "value": {"doe": study.check(engine, request["spec"], request["max_processes"])}}
        return execute_job(engine, request, send, ask)
    except ClientError as error:
        return {"ok": False, "status": error.status, "detail": str(error)}
    except MemoryError:
        what = {"doe": "Computing the DOE", "check_study": "Checking the study"}.get(request["op"], "Building the discipline")
        limit = f"{request.get('memory_limit_mb') or 0:g} MiB"
        return {"ok": False, "status": 422, "detail": f"{what} went past its memory limit ({limit})."}
    except Exception as error:
        traceback.print_exc()
        return {"ok": False, "status": 500, "detail": f"{type(error).__name__}: {error}"}
    finally:
        os.chdir(idle_dir)


def execute_job(engine, request, send=None, ask=None):
    job = request["job"]
    sender = caches = None
    if request["op"] == "study":
        if request.get("cache"):
            import study_cache

            caches = study_cache.StudyCaches(request["cache"], engine.code, ask)
        sender = EvaluationSender(send, [caches.lock] if caches else [])
        if caches is not None:
            sender.extra = caches.message
    try:
        os.chdir(job["workdir"])
        with redirected_output(LOG_NAME), memory_limit(request.get("memory_limit_mb")):
            if sender is None:
                reply = engine.execute(job)
            else:
                reply = run_study(engine, request, sender, caches)
                reply["provenance"] = dumps(engine.study_provenance(request["spec"]))
    except MemoryError:
        return {
            "ok": True,
            "job_status": "failed",
            "error": "memory",
            "traceback": f"The job went past its memory limit of {request['memory_limit_mb']:g} MB.\n"
            + traceback.format_exc(),
        }
    except (Exception, SystemExit) as error:
        # A discipline calling sys.exit() fails its job; it does not end the warm process.
        text = str(error) if isinstance(error, ClientError) else discipline_traceback(error)
        return {"ok": True, "job_status": "failed", "error": type(error).__name__, "traceback": text}
    finally:
        if sender is not None:
            sender.close()  # every evaluation was sent by study.run, before the reply
        if caches is not None:
            send(caches.last_message())
    return {"ok": True, "job_status": "finished", **reply}


def run_study(engine, request, sender, caches=None):
    """Run a study in the current directory (the job's); return the reply fields for the store."""
    import study

    summary = study.run(
        engine, request["spec"], os.getcwd(), sender.send_batch, max_processes=request["max_processes"], sender=sender,
        caches=caches,
    )
    return {"output_data": dumps(summary)}


class EvaluationSender:
    """Sends a study's evaluations to the pool as {"batch": ...}, in batches, from the study's
    own thread; the worker builds their records (study.unpack). At each stored value the
    recorder asks pace(): if FLUSH_INTERVAL has passed since the last batch, it hands on at once
    (a slow study sends each evaluation as it ends); else a one-shot SIGALRM timer calls
    hand_on() (set by study.run) at the end of the interval, so a fast study sends one message
    per interval and an evaluation leaves at most FLUSH_INTERVAL after it ended.

    Why a signal and not a thread: each time a thread takes the GIL from the study's thread,
    twice a batch, costs the study about 1.5 ms of system time on a 2-vCPU guest (a DOE of 200 us
    evaluations ran 15-20% slower, bench/RESULTS.md). The handler runs in the study's thread,
    between two bytecodes or inside a wait that a signal interrupts (a sleep, a lock, select or
    poll). The limit: during one C call that does not return to Python (a compiled solver, or a
    read or waitpid, which resume after the signal so that C code never sees EINTR), the handler
    waits for its end, as a thread would for the GIL that a solver holds. Away from the main
    thread there is no signal: each evaluation is sent as it ends."""

    FLUSH_INTERVAL = 0.05
    RETRY = 0.002  # when the alarm came in the middle of a send or of the recorder: again this soon

    def __init__(self, send, locks=()):
        self.send, self.extra = send, dict  # extra: what goes with each batch (study_cache.py)
        # Locks that the study's thread may hold when the alarm comes: its handler does not wait
        # for them (it would wait for itself) but comes back.
        self.locks = [lock for lock in (getattr(send, "lock", None), *locks) if lock is not None]
        self.hand_on = lambda: None
        self.last, self.armed, self.saved = 0.0, False, None
        self.alarms = threading.current_thread() is threading.main_thread()
        if self.alarms:
            # None when the handler was not set from Python: the default is put back then.
            self.saved = signal.signal(signal.SIGALRM, self._on_alarm)
            # The reads and writes of C code that the alarm interrupts resume on their own.
            signal.siginterrupt(signal.SIGALRM, False)

    def follow(self, hand_on, lock):
        """The recorder's hand_on(), and the lock it holds meanwhile."""
        self.hand_on = hand_on
        self.locks.append(lock)

    def send_batch(self, batch):
        self.send({"batch": batch, **self.extra()})
        self.last = time.monotonic()

    def pace(self):
        """Whether the caller hands its evaluations on now; if not, they go at the alarm."""
        now = time.monotonic()
        if not self.alarms or now - self.last >= self.FLUSH_INTERVAL:
            return True
        if not self.armed:
            self.armed = True
            signal.setitimer(signal.ITIMER_REAL, self.last + self.FLUSH_INTERVAL - now)
        return False

    def _on_alarm(self, *_):
        self.armed = False
        if not self.alarms:
            return
        if any(lock.locked() for lock in self.locks):
            self.armed = True
            signal.setitimer(signal.ITIMER_REAL, self.RETRY)
            return
        self.hand_on()

    def close(self):
        if self.alarms:
            signal.setitimer(signal.ITIMER_REAL, 0)  # first: no alarm comes once the old handler is back
            signal.signal(signal.SIGALRM, signal.SIG_DFL if self.saved is None else self.saved)
            self.alarms = False


def discipline_traceback(error):
    """The traceback of a job's exception from the first frame that is not this module's: the
    user reads GEMSEO's and the discipline's frames, not the service's."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def serve(fd, engine, idle_dir):
    """The life of a forked job process: answer requests until the pool hangs up."""
    os.setsid()
    _die_with_parent(_kill_own_group)
    import numpy

    numpy.random.seed()  # forks would otherwise share the zygote's random state
    conn = Connection(fd)
    conn.send({"ready": True, "pid": os.getpid()})
    lock, asking = threading.Lock(), threading.Lock()  # a study sends from several threads

    def send(message):
        with lock:
            conn.send(message)

    send.lock = lock  # a study's alarm (EvaluationSender) must not send in the middle of a send

    def ask(message):
        with asking:  # one question at a time: an MDA runs its disciplines in threads
            send(message)
            return conn.recv()

    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        send(handle(engine, request, idle_dir, send, ask))


def zygote(control, engine, idle_dir):
    """Fork job processes on request and report how they ended; single-threaded, so forks are
    safe. Requests and replies are JSON datagrams on a SOCK_SEQPACKET socket."""
    children, statuses = set(), {}

    def reap(pid=-1, flags=os.WNOHANG):
        while children:
            try:
                done, status = os.waitpid(pid, flags)
            except ChildProcessError:
                return
            if done == 0:
                return
            children.discard(done)
            statuses[done] = os.waitstatus_to_exitcode(status)
            if pid != -1:
                return

    def stop():
        for child in list(children):
            try:
                os.killpg(child, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)

    _die_with_parent(stop)
    control.send(b'{"ready": true}')
    while True:
        if not select.select([control], [], [], 1.0)[0]:
            reap()
            continue
        message, fds, _, _ = socket.recv_fds(control, 65536, 1)
        if not message:
            stop()
        request = json.loads(message)
        if request["op"] == "fork":
            pid = os.fork()
            if pid == 0:
                control.close()
                try:
                    serve(fds[0], engine, idle_dir)
                finally:
                    os._exit(0)
            os.close(fds[0])
            children.add(pid)
            reply = {"pid": pid}
        else:  # "wait": the exit code of a child that was killed or hung up
            pid = request["pid"]
            if pid in children:
                reap(pid, 0)
            reply = {"status": statuses.pop(pid, None)}
        reap()
        if len(statuses) > 1000:
            statuses.clear()
        control.send(json.dumps(reply).encode())


def main():
    # study.py imports this module by name: let it find this one, not load a second copy whose
    # ClientError handle() would not catch.
    sys.modules.setdefault("jobproc", sys.modules[__name__])
    control = socket.socket(fileno=int(sys.argv[1]))
    # A Ctrl-C or a unit's SIGINT is for the consumer, which then lets running jobs finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    idle_dir = os.environ.get("GAAS_IDLE_DIR", "/")
    os.chdir(idle_dir)
    enabled = frozenset(filter(None, os.environ.get("GAAS_ENABLED", "").split(",")))
    engine = Engine(enabled)
    # Loaded here, once, not by the first study of each job process (about 0.2 s: the optimiser,
    # h5py and study.py's own imports, GEMSEO's scan of its formulations and algorithms).
    import study
    import study_cache  # noqa: F401

    study.warm()

    # Objects that exist now are never collected: their pages stay shared with the forks.
    gc.freeze()
    zygote(control, engine, idle_dir)


if __name__ == "__main__":
    main()
