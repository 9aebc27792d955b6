"""Studies (API.md Part 4): a whole GEMSEO scenario run as one job, inside a warm job process.

check() is the semantic check of a StudyInput, run() builds and runs the scenario and hands each
evaluation to a callback as soon as it is complete, and the pure helpers (best, history_json,
history_csv, to_text, from_text) need no GEMSEO, so the web app can use them.

An evaluation record is a dict, stored as one JSON text:
{"evaluation": k, "x": {name: [...]}, "objective": {name: f}, "constraints": {name: [...]},
 "observables": {name: [...]}, "feasible": bool, "violation": float or null (infinite)}.
"""

import csv
import gc
import io
import itertools
import logging
import math
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import orjson

import jobproc
from jobproc import DOE_REFUSED, ClientError

H5_NAME = "problem.h5"
STOP_POLL = 0.05  # seconds between two calls of should_stop()
# Post-processings that write no plain image: Animation writes a GIF from frames and a temporary
# database at paths of its settings, and runs another post-processing given by name.
POST_REFUSED = frozenset({"Animation"})
# What the service decides for a post-processing: where its images go, and never on a screen.
POST_FIXED = frozenset({"save", "show", "file_path", "directory_path", "file_name"})
IMAGE_EXTENSIONS = frozenset({"png", "pdf", "svg", "jpg"})


class Plan(NamedTuple):
    """A checked study: whether it is a DOE, its scenario, built and ready to run, and its
    disciplines in the order of the spec."""

    doe: bool
    scenario: object
    disciplines: list


# --- the check -------------------------------------------------------------------------------


def check(engine, spec, max_processes=1):
    """Check a StudyInput against this install; return whether it is a DOE study."""
    return _checked(engine, spec, max_processes).doe


def _checked(engine, spec, max_processes):
    disciplines = _disciplines(engine, spec["disciplines"])
    inputs = {name for discipline in disciplines for name in discipline.io.input_grammar.names}
    outputs = {name for discipline in disciplines for name in discipline.io.output_grammar.names}
    _check_formulation(spec)
    doe = _check_algorithm(spec["algorithm"], max_processes)
    _check_design_space(spec["design_space"], inputs)
    _check_output("objective.name", spec["objective"]["name"], outputs)
    for index, constraint in enumerate(spec.get("constraints", [])):
        _check_output(f"constraints[{index}].name", constraint["name"], outputs)
        if constraint.get("type", "ineq") not in ("ineq", "eq"):
            raise ClientError(422, f"Field 'constraints[{index}].type' must be 'ineq' or 'eq'.")
    for index, name in enumerate(spec.get("observables", [])):
        _check_output(f"observables[{index}]", name, outputs)
    input_data = _input_data(spec.get("input_data", {}), disciplines, spec["design_space"])
    for index, post in enumerate(spec.get("post_processing", [])):
        _check_post(post, f"post_processing[{index}]")
    # What only the whole tells: a formulation that refuses these disciplines or this design
    # space, an algorithm that cannot handle the problem (equality constraints, say).
    try:
        scenario = _scenario(disciplines, input_data, doe, spec)
    except Exception as error:
        text = f"GEMSEO cannot build this {spec['formulation']} scenario: {jobproc.first_line(error, 3)}"
        raise ClientError(422, f"Field 'formulation': {text}") from None
    _check_mda_processes(scenario.formulation, max_processes)
    name = spec["algorithm"]["name"]
    library, info = _algorithm_library(name)
    reason = library._get_unsuitability_reason(info, scenario.formulation.optimization_problem)
    if reason:
        raise ClientError(422, f"Field 'algorithm.name': {name} cannot solve this problem: {reason}.")
    return Plan(doe, scenario, disciplines)


def _check_mda_processes(formulation, max_processes):
    """An MDA may run its disciplines on several threads or processes (n_processes in its
    settings, its inner MDAs' too): no more than a DOE may (jobproc.serial_mdas sets 1 by default)."""
    mdas = [formulation.mda] if getattr(formulation, "mda", None) is not None else []
    while mdas:
        mda = mdas.pop()
        mdas += [*getattr(mda, "inner_mdas", ()), *getattr(mda, "mda_sequence", ())]
        wanted = getattr(mda.settings, "n_processes", 1)
        if wanted > max_processes:
            raise ClientError(
                422,
                f"Field 'formulation_settings': its MDA {type(mda).__name__} asks for n_processes={wanted};"
                f" at most {max_processes} on this server.",
            )


def _disciplines(engine, entries):
    if not entries:
        raise ClientError(422, "Field 'disciplines' must name at least one discipline.")
    built = []
    for index, entry in enumerate(entries):
        name = entry["class_name"]
        if name not in engine.catalogue and name not in engine.disabled:
            raise ClientError(
                422,
                f"Field 'disciplines[{index}].class_name': unknown discipline {str(name)[:80]!r};"
                " GET /v1/discipline lists them.",
            )
        engine.check_name(name)  # 403 for a class that can run code or reach files
        try:
            discipline = engine.create(name, entry.get("options", {}))
        except ClientError as error:
            raise ClientError(error.status, f"Field 'disciplines[{index}].options': {error}") from None
        built.append(discipline)
    return built


def _check_formulation(spec):
    from gemseo.formulations.factory import MDOFormulationFactory

    factory = MDOFormulationFactory()
    name = spec["formulation"]
    if name not in factory.class_names:
        known = ", ".join(factory.class_names)
        raise ClientError(422, f"Field 'formulation': {str(name)[:80]!r} is not a formulation of GEMSEO ({known}).")
    check_settings(factory.get_class(name).Settings, spec.get("formulation_settings", {}), "formulation_settings")


def _algorithm_library(name):
    """The library class of an algorithm and the algorithm's description (None, None when unknown)."""
    from gemseo.algos.doe.factory import DOELibraryFactory
    from gemseo.algos.opt.factory import OptimizationLibraryFactory

    for factory in (DOELibraryFactory(), OptimizationLibraryFactory()):
        library = factory.algo_names_to_libraries.get(name)
        if library is not None:
            cls = factory.get_class(library)
            return cls, cls.ALGORITHM_INFOS[name]
    return None, None


def _check_algorithm(algorithm, max_processes):
    name, settings = algorithm["name"], algorithm.get("settings", {})
    if name in DOE_REFUSED:
        raise ClientError(422, f"Field 'algorithm.name': {name} is not served (it reads a server file).")
    library, info = _algorithm_library(name)
    if library is None:
        raise ClientError(
            422, f"Field 'algorithm.name': {str(name)[:80]!r} is not an optimisation or DOE algorithm of this server;"
            " GET /v1/algorithms lists them."
        )
    checked = check_settings(info.Settings, settings, "algorithm.settings")
    if getattr(checked, "n_processes", 1) > max_processes:
        raise ClientError(
            422, f"Field 'algorithm.settings.n_processes': at most {max_processes} on this server"
            " (GEMSEO_HTTP_STUDY_MAX_PROCESSES)."
        )
    from gemseo.algos.doe.base_doe_library import BaseDOELibrary

    return issubclass(library, BaseDOELibrary)


def check_settings(model, given, where, fixed=frozenset()):
    """Check client settings against a GEMSEO settings model: known names, plain values only (a
    nested settings model is checked the same way, recursively), then GEMSEO's own validation;
    return the validated model."""
    from pydantic import BaseModel

    if not isinstance(given, dict):
        raise ClientError(422, f"Field '{where}' must be an object.")
    plain = _plain_settings(model)
    nested = []
    for name, value in given.items():
        path = f"{where}.{str(name)[:50]}"
        if name not in model.model_fields:
            raise ClientError(422, f"Field '{path}' is not a setting of {_model_name(model)}.")
        kind = plain.get(name, {}).get("type")
        if name in fixed or (kind != "boolean" and _names_a_file(name)):
            raise ClientError(422, f"Field '{path}': the service decides where files are written; it is not accepted.")
        _refuse_served_names(value, path)
        if kind is None:
            if not isinstance(value, dict):
                what = _kind_of(model.model_fields[name].annotation)
                raise ClientError(
                    422,
                    f"Field '{path}' is {what}; only plain values are accepted"
                    " (numbers, booleans, strings, lists of numbers).",
                )
            nested.append(name)
    # Which model a nested setting has may depend on another field (main_mda_name): built empty
    # first, it tells; each is then checked on its own, so that an error names its full path.
    instance = _validated(model, {**given, **{name: {} for name in nested}}, where)
    for name in nested:
        value = getattr(instance, name)
        if not isinstance(value, BaseModel):
            what = _kind_of(model.model_fields[name].annotation)
            text = f"Field '{where}.{name}' is {what}; only nested settings of GEMSEO models are accepted."
            raise ClientError(422, text)
        check_settings(type(value), given[name], f"{where}.{name}")
    return _validated(model, given, where) if nested else instance


def _validated(model, given, where):
    from pydantic import ValidationError

    try:
        return model(**given)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        path = f"{where}.{location}" if location else where
        raise ClientError(422, f"Field '{path}': {first['msg']}.") from None
    except Exception as error:  # a model validator of GEMSEO refusing a value
        raise ClientError(422, f"Field '{where}': {jobproc.first_line(error)}") from None


_PLAIN = {}


def _plain_settings(model):
    if model not in _PLAIN:
        _PLAIN[model] = jobproc.plain_settings(model)
    return _PLAIN[model]


def _model_name(model):
    return getattr(model, "_TARGET_CLASS_NAME", None) or model.__name__


def _names_a_file(name):
    # file_extension picks an image format, not a place (checked by _check_post)
    return name != "file_extension" and any(part in name for part in ("file", "path", "directory"))


def _kind_of(annotation):
    text = str(annotation)
    if "Path" in text:
        return "a path"
    if "Callable" in text:
        return "a callable"
    if "type[" in text:
        return "a class"
    return "an object"


def _refuse_served_names(value, path):
    """A refused algorithm named inside a setting (MorrisDOE's doe_algo_name="CustomDOE")."""
    values = value if isinstance(value, list) else [value]
    for item in values:
        if isinstance(item, str) and item in DOE_REFUSED:
            raise ClientError(422, f"Field '{path}': {item} is not served (it reads a server file).")


def _check_design_space(space, inputs):
    if not space:
        raise ClientError(422, "Field 'design_space' must have at least one variable.")
    for name, variable in space.items():
        where = f"design_space.{str(name)[:50]}"
        if name not in inputs:
            raise ClientError(422, f"Field '{where}': {str(name)[:50]!r} is not an input of the disciplines.")
        lower, upper = variable["lower_bound"], variable["upper_bound"]
        if not lower or len(lower) != len(upper):
            text = f"Field '{where}': lower_bound and upper_bound must have the same length, at least 1."
            raise ClientError(422, text)
        for index, (low, high) in enumerate(zip(lower, upper)):
            if low > high:
                raise ClientError(422, f"Field '{where}.lower_bound[{index}]': {low} is above the upper bound {high}.")
        value = variable.get("value")
        if value is None:
            continue
        if len(value) != len(lower):
            raise ClientError(422, f"Field '{where}.value' must have the length of the bounds ({len(lower)}).")
        for index, (low, item, high) in enumerate(zip(lower, value, upper)):
            if not low <= item <= high:
                raise ClientError(422, f"Field '{where}.value[{index}]': {item} is not within [{low}, {high}].")


def _check_output(where, name, outputs):
    if name not in outputs:
        raise ClientError(422, f"Field '{where}': {str(name)[:50]!r} is not an output of the disciplines.")


def _input_data(given, disciplines, space):
    """The client's input values as GEMSEO arrays, checked against each discipline's defaults."""
    converted = {}
    for name, value in given.items():
        where = f"input_data.{str(name)[:50]}"
        owners = [discipline for discipline in disciplines if name in discipline.io.input_grammar.names]
        if not owners:
            raise ClientError(422, f"Field '{where}': {str(name)[:50]!r} is not an input of the disciplines.")
        if name in space:
            raise ClientError(422, f"Field '{where}': {name!r} is a design variable; give its value in design_space.")
        default = next((d.io.input_grammar.defaults[name] for d in owners if name in d.io.input_grammar.defaults), None)
        if isinstance(value, str) and isinstance(default, str):
            converted[name] = value
            continue
        try:
            array = jobproc.to_array(value, default)
        except ValueError:
            array = None
        if not (hasattr(array, "dtype") and array.dtype.kind in "biuf" and array.ndim == 1):
            raise ClientError(422, f"Field '{where}' must be a number or a list of numbers.")
        size = getattr(default, "size", None)
        if size is not None and array.size != size:
            raise ClientError(422, f"Field '{where}' must have {size} values, as the discipline's default.")
        converted[name] = array
    return converted


def _check_post(post, where):
    from gemseo.post.factory import PostFactory

    factory = PostFactory()
    name = post["name"]
    served = [item for item in factory.class_names if item not in POST_REFUSED]
    if name not in served:
        raise ClientError(
            422, f"Field '{where}.name': {str(name)[:80]!r} is not a post-processing served here ({', '.join(served)})."
        )
    settings = post.get("settings", {})
    extension = settings.get("file_extension") if isinstance(settings, dict) else None
    if extension is not None and extension not in IMAGE_EXTENSIONS:
        known = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ClientError(422, f"Field '{where}.settings.file_extension' must be one of {known}.")
    check_settings(factory.get_class(name).Settings, settings, f"{where}.settings", fixed=POST_FIXED)


# --- the run ---------------------------------------------------------------------------------


def warm():
    """Scan GEMSEO's formulations, MDAs, caches and algorithms now (in the zygote, before it forks):
    else the first study and the first check of each job process pay it, 50 to 150 ms."""
    from gemseo.algos.doe.factory import DOELibraryFactory
    from gemseo.algos.opt.factory import OptimizationLibraryFactory
    from gemseo.caches.factory import CacheFactory
    from gemseo.formulations.factory import MDOFormulationFactory
    from gemseo.mda.factory import MDAFactory

    # The scans import the modules they find; factories keep what they found.
    factories = (MDOFormulationFactory(), MDAFactory(), CacheFactory(), DOELibraryFactory(), OptimizationLibraryFactory())
    for factory in factories:
        factory.class_names if hasattr(factory, "class_names") else factory.algo_names_to_libraries  # noqa: B018


def _stopped_criterion():
    from gemseo.algos.stop_criteria import TerminationCriterion

    # A TerminationCriterion is what GEMSEO's driver catches to end a run with its result so far.
    class StudyStopped(TerminationCriterion):
        """A cancel or a timeout of the study."""

    return StudyStopped


class Recorder:
    """A store listener of the problem's database: one record per point of the database at which
    the objective was evaluated, once every function of the point is there or, for a point where
    the algorithm computed only some, once a later point is in the database. Called at each
    stored value, it only asks pace(); hand_on() then takes the points added to the database
    since its last call, a batch at a time (a look at each point as it was stored cost 9 us an
    evaluation, packing included; this, 3 to 4: bench/study_core.py).

    hand_on() packs the values of those points (each function's values at all of them as one
    array's bytes: pack()) and gives them on: with `pace`, the packed batch itself, which the
    worker unpacks into records (unpack()), so that building them costs the study's process
    nothing, when pace() says so or later when the sender calls hand_on(); without, the records
    of each point as it completes."""

    def __init__(self, problem, record, stop, pace=None):
        self.problem, self.record, self.stop, self.pace = problem, record, stop, pace
        # The database's own ordered dict: the new points are its last ones, taken without
        # walking the older ones (its Mapping interface has no reverse order).
        self.entries = problem.database._Database__data
        self.seen = len(self.entries)  # points before this index were looked at
        self.waiting, self.last_key = [], None  # (key, outputs) of points not complete yet
        # The count, whether any objective was a number, and without pace the best point: the
        # caller stores the records.
        self.count, self.best, self.finite, self.wanted = 0, None, False, None
        # Held while a batch is packed and given on: the sender's alarm, whose handler may run in
        # the middle of it, comes back later.
        self.lock = threading.Lock()

    def __call__(self, _x_vect):
        if self.pace is None or self.pace():
            self.hand_on()
        self.stop.poll()

    def _new_points(self, last):
        """(x, outputs) of the points to record now, in the database's order: the points added
        since the last call, and those left waiting then, that have the objective and are
        complete, or are not the database's last point any more, or all of them when `last`
        (the run is over). A point with no value yet waits: GEMSEO's parallel DOE stores each
        sample empty first and fills them in the order they end."""
        entries, seen = self.entries, self.seen
        size = len(entries)
        if size == seen and not self.waiting:
            return []
        if self.wanted is None:
            self._learn()
        added = list(itertools.islice(reversed(entries.items()), size - seen))
        added.reverse()
        self.seen = size
        if added:
            self.last_key = added[-1][0]
        points, waiting, wanted, objective = [], [], self.wanted, self.objective
        for key, outputs in (*self.waiting, *added) if self.waiting else added:
            if wanted <= outputs.keys():
                points.append((key.wrapped_array, outputs))
            elif not last and (not outputs or key is self.last_key):
                waiting.append((key, outputs))  # the database fills this dict in place
            elif objective in outputs:
                points.append((key.wrapped_array, outputs))
        self.waiting = waiting
        return points

    def _learn(self):
        """The functions and variables, known once the driver has set the problem up."""
        problem = self.problem
        self.objective = problem.objective.name
        constraints = [function.name for function in problem.constraints]
        tolerances = problem.tolerances  # the algorithm's, set by GEMSEO's driver before any evaluation
        observables = [function.name for function in problem.observables]
        self.wanted = {self.objective, *constraints, *observables}
        space, start, slices = problem.design_space, 0, []
        for name in space.variable_names:
            size = space.get_size(name)
            slices.append((name, start, start + size))
            start += size
        self.header = {
            "objective": self.objective,
            # GEMSEO stores -f to maximise f: the client gets f, under its name.
            "sign": 1.0 if problem.minimize_objective else -1.0,
            "label": self.objective if problem.minimize_objective else self.objective.removeprefix("-"),
            "constraints": constraints,
            "tolerances": {
                function.name: (function.f_type == function.ConstraintType.EQ, tolerances.equality if
                                function.f_type == function.ConstraintType.EQ else tolerances.inequality)
                for function in problem.constraints
            },
            "observables": observables,
            "slices": slices,
        }

    def hand_on(self, last=False):
        """Pack the new complete points, in order, and give them to `record`; with `last`, every
        new point. A stop that comes meanwhile waits for the end: the caller's write is never
        cut half-way."""
        holding, self.stop.holding = self.stop.holding, True
        try:
            with self.lock:
                points = self._new_points(last)
                if points:
                    self._give(points)
        finally:
            self.stop.holding = holding
            if not holding:
                self.stop.check()

    def _give(self, points):
        # No collection while a batch is packed and handed on: the collections its objects
        # would set off traverse the whole scenario again.
        collecting = gc.isenabled()
        gc.disable()
        try:
            batch = self.pack(points)
            if self.pace is not None:
                self.record(batch)
                return
            records = unpack(batch)
            kept = [self.best, *records] if self.best else records
            self.best = best_record(kept, self.header["sign"] < 0)
            self.record(records)
        finally:
            if collecting:
                gc.enable()

    def pack(self, points):
        """The batch of these points that unpack() turns into their records: the header, their
        first number, and each function's values (and the points) as one column each."""
        values = {name: [outputs.get(name) for _, outputs in points] for name in self.wanted}
        if not self.finite:
            self.finite = any(_has_number(value) for value in values[self.objective])
        batch = {**self.header, "first": self.count + 1, "x": _column([x for x, _ in points]),
                 "functions": {name: _column(column) for name, column in values.items()}}
        self.count += len(points)
        return batch


def _has_number(value):
    import numpy

    return value is not None and bool(numpy.isfinite(numpy.real(value)).any())


def _column(values):
    """Values of one function (or design points) for unpack(): ("d", count, bytes, finite) when
    they stack into one float array (one conversion for all), else ("rows", their rows)."""
    import numpy

    if not any(value is None for value in values):
        try:
            stack = numpy.asarray(values)
        except ValueError:  # of different sizes
            stack = None
        if stack is not None and stack.dtype.char == "d" and stack.ndim >= 1:
            return ("d", len(values), stack.tobytes(), bool(numpy.isfinite(stack).all()))
    return ("rows", [None if value is None else _numbers(value) for value in values])


def _numbers(value):
    """A function's value as a list of floats, null for NaN and infinities (not JSON)."""
    if isinstance(value, float):  # numpy's float64 too
        return [_finite(float(value))]
    import numpy

    array = numpy.real(numpy.asarray(value, dtype=complex if numpy.iscomplexobj(value) else float)).ravel()
    numbers = array.tolist()
    return numbers if numpy.isfinite(array).all() else [_finite(number) for number in numbers]


def _finite(value):
    return value if math.isfinite(value) else None


class _StopSignal:
    """Stops the run on SIGTERM or when should_stop() turns true. Deterministic: the recorder
    asks should_stop() and checks the flag at each stored value, so the next evaluation after a
    stop request ends the driver. For a long evaluation, in the main
    thread, a SIGTERM handler raises at once (time.sleep and most blocking calls return early on
    a signal), and a watcher thread turns should_stop() into such a signal."""

    def __init__(self, criterion, should_stop):
        self.criterion, self.should_stop = criterion, should_stop
        self.event, self.finished, self.delivered = threading.Event(), threading.Event(), threading.Event()
        self.main = threading.current_thread() is threading.main_thread()
        self.raising = self.holding = self.signalled = False
        # The watcher signals only while the handler is ours: a SIGTERM after the run would kill.
        self.lock = threading.Lock()
        self.saved = None

    def is_set(self):
        return self.event.is_set()

    def __enter__(self):
        self.raising = True
        if self.main:
            self.saved = signal.signal(signal.SIGTERM, self._on_signal)
        if self.should_stop is not None:
            threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _on_signal(self, *_):
        self.delivered.set()
        self.event.set()
        self._raise()

    def _raise(self):
        if self.raising and not self.holding:
            self.raising = False  # once: the end of the run (problem.h5, images) is not interrupted
            raise self.criterion

    def check(self):
        """Raise if a stop came and may raise here."""
        if self.event.is_set():
            self._raise()

    def poll(self):
        """Ask should_stop() now, then check."""
        if self.raising and self.should_stop is not None and self.should_stop():
            self.event.set()
        self.check()

    def _watch(self):
        while not self.finished.wait(STOP_POLL):
            if self.should_stop():
                self.event.set()
                with self.lock:
                    if self.main and self.raising and not self.holding:
                        self.signalled = True
                        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
                return

    def calm(self):
        """From now on a stop only sets the flag."""
        with self.lock:
            self.raising = False
        self.finished.set()

    def __exit__(self, *exc):
        self.calm()
        if self.main:
            # A signal the watcher sent must reach our handler before the old one is back.
            deadline = time.monotonic() + 1.0
            while self.signalled and not self.delivered.is_set() and time.monotonic() < deadline:
                time.sleep(0.001)
            signal.signal(signal.SIGTERM, self.saved)


class EvaluationsFailed(ClientError):
    """A DOE study none of whose points gave the objective: GEMSEO's DOE goes on past a point
    whose evaluation raises, and would end it finished with nothing; or a study that GEMSEO
    could not end because the objective was never a number (NaN), its points recorded."""

    def __init__(self, detail):
        super().__init__(422, detail)


class _SkippedPoints(logging.Handler):
    """While a DOE runs, counts the points it skipped because their evaluation raised (GEMSEO
    logs each with its exception, then goes on), keeping the first exception."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.count, self.first = 0, None

    def emit(self, record):
        if record.exc_info and record.exc_info[1] is not None:
            self.count += 1
            if self.first is None:
                self.first = record.exc_info[1]

    def __enter__(self):
        from gemseo.algos.doe import base_doe_library

        base_doe_library.LOGGER.addHandler(self)

    def __exit__(self, *exc):
        from gemseo.algos.doe import base_doe_library

        base_doe_library.LOGGER.removeHandler(self)

    def summary(self):
        if not self.count:
            return "The DOE evaluated the objective at none of its points."
        error = self.first
        return (
            f"All {self.count} evaluations of the DOE failed (each is in the job's log); the first raised"
            f" {type(error).__name__}: {jobproc.first_line(error)}"
        )


def run(engine, spec, workdir, record, should_stop=None, max_processes=1, sender=None, caches=None):
    """Run a study in workdir, calling record([evaluation]) as each evaluation completes (with a
    sender, record(batch) with the evaluations that ended since the last batch, as the sender
    paces them: the caller unpacks the batch, and the summary's best is None, left to it); with
    caches (study_cache.StudyCaches), its disciplines use the results cache; write problem.h5
    and the post-processing images there, even when stopped; return a summary."""
    from gemseo.core.discipline import Discipline

    workdir = Path(workdir).resolve()
    stop = _StopSignal(_stopped_criterion(), should_stop)
    saved_dir, saved_cache = os.getcwd(), Discipline.default_cache_type
    os.chdir(workdir)  # anything GEMSEO writes by itself lands in the job's directory
    # The job process turns GEMSEO's cache off (a job runs a discipline once); a scenario asks
    # its disciplines, MDAs and chains once per function at each point: GEMSEO's default for them.
    Discipline.default_cache_type = Discipline.CacheType.SIMPLE
    try:
        with stop:
            stop.holding = True  # a stop while the scenario is built: no run, problem.h5 all the same
            plan = _checked(engine, spec, max_processes)
            scenario, skipped = plan.scenario, _SkippedPoints()
            # A DOE on several processes evaluates in forked children: their caches would not
            # reach this process's pipe (GEMSEO's own cache is per process there too).
            if caches is not None and spec["algorithm"].get("settings", {}).get("n_processes", 1) <= 1:
                caches.attach(plan.disciplines, spec["disciplines"])
            problem = scenario.formulation.optimization_problem
            recorder = Recorder(problem, record, stop, sender and sender.pace)
            if sender is not None:
                sender.follow(recorder.hand_on, recorder.lock)
            problem.database.add_store_listener(recorder)
            failure = None
            try:
                stop.holding = False
                if stop.is_set() or (should_stop is not None and should_stop()):
                    stop.event.set()
                    raise stop.criterion
                with skipped:
                    scenario.execute(algo_name=spec["algorithm"]["name"], **spec["algorithm"].get("settings", {}))
                stop.calm()  # here and not only below: a stop raised here is caught below
            except Exception as error:
                # A stop raised where the driver does not catch it (inside an MDA), or an error
                # caused by it; any other error fails the job, after problem.h5 is written.
                stop.calm()
                if not stop.is_set():
                    failure = error
            finally:
                stop.calm()
                try:
                    recorder.hand_on(last=True)  # the last batch: the summary counts it
                finally:
                    write_problem(problem, workdir / H5_NAME)
            if failure is not None:
                # GEMSEO's result of a run whose objective was NaN everywhere is a KeyError.
                if recorder.count and not recorder.finite:
                    raise EvaluationsFailed(
                        f"The objective was NaN or infinite at each of the {recorder.count} points evaluated (they are"
                        f" in the history): GEMSEO has no result to give ({type(failure).__name__}:"
                        f" {jobproc.first_line(failure)})"
                    ) from failure
                raise failure
            if plan.doe and not recorder.count and not stop.is_set():
                raise EvaluationsFailed(skipped.summary())
            files, errors = [H5_NAME], []
            if recorder.count:
                _post_process(scenario, spec.get("post_processing", []), workdir, files, errors)
    finally:
        os.chdir(saved_dir)
        Discipline.default_cache_type = saved_cache
    summary = {
        "status": "stopped" if stop.is_set() else "finished",
        "n_evaluations": recorder.count,
        "best": best([recorder.best] if recorder.best else [], spec["objective"].get("maximize", False)),
        "files": files,
    }
    if errors:
        summary["post_processing_errors"] = errors
    return summary


def write_problem(problem, path):
    """problem.to_hdf(path), GEMSEO's own file, readable by OptimizationProblem.from_hdf; its
    database's points (most of the file: 3 or 4 datasets a point) written with h5py's low-level
    calls, a third of what its high-level ones cost, when every value is a number or an array of
    numbers (else GEMSEO writes it all)."""
    from gemseo.algos.database import Database

    database = problem.database
    points = list(database.items())
    if not all(outputs and all(_numeric(value) for value in outputs.values()) for _, outputs in points):
        problem.to_hdf(path)
        return
    # GEMSEO writes the problem's description, the design space and the empty x, k, v groups.
    problem.database = Database(database.name, database.input_space)
    try:
        problem.to_hdf(path)
    finally:
        problem.database = database
    import h5py
    import numpy

    # As GEMSEO's HDFDatabase.to_file writes point i: x/i its design vector; k/i the sorted names of
    # its outputs (resizable); v/i the scalar ones (resizable); v/arr_i/j the j-th name's array.
    names_type = h5py.string_dtype()
    with h5py.File(path, "a") as file:
        xs, keys, values = file["x"].id, file["k"].id, file["v"].id
        for index, (x, outputs) in enumerate(points):
            name = str(index).encode()
            _dataset(xs, name, x.wrapped_array)
            sorted_names = sorted(outputs)
            _dataset(keys, name, numpy.array(sorted_names, dtype=numpy.bytes_).astype(names_type), resizable=True)
            scalars, arrays = [], None
            for position, output in enumerate(sorted_names):
                value = outputs[output]
                if isinstance(value, (numpy.ndarray, list)):
                    if arrays is None:
                        arrays = h5py.h5g.create(values, f"arr_{index}".encode())
                    _dataset(arrays, str(position).encode(), _real(value))
                else:
                    scalars.append(value)
            if scalars:
                _dataset(values, name, _real(scalars), resizable=True)


def _numeric(value):
    """What write_problem writes itself: GEMSEO's own choices for a number or numeric array."""
    import numpy

    if isinstance(value, (numpy.ndarray, list)):
        return len(value) > 0 and numpy.asarray(value).dtype.kind in "biufc"
    return isinstance(value, (int, float, complex, numpy.number)) and not isinstance(value, bool)


def _real(value):
    import numpy

    return numpy.array(numpy.asarray(value).real, dtype=numpy.float64)


def _dataset(group, name, data, resizable=False):
    import h5py

    space = h5py.h5s.create_simple(data.shape, (h5py.h5s.UNLIMITED,) if resizable else None)
    properties = None
    if resizable:  # GEMSEO appends to these; a resizable dataset is chunked
        properties = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        properties.set_chunk(data.shape)
    h5py.h5d.create(group, name, h5py.h5t.py_create(data.dtype, logical=True), space, dcpl=properties).write(
        h5py.h5s.ALL, h5py.h5s.ALL, data
    )


def _post_process(scenario, posts, workdir, files, errors):
    for post in posts:
        try:
            done = scenario.post_process(
                post_name=post["name"], save=True, show=False, directory_path=workdir, **post.get("settings", {})
            )
        except Exception as error:  # one post-processing that cannot run does not fail the study
            traceback.print_exc()
            errors.append(f"{post['name']}: {type(error).__name__}: {jobproc.first_line(error)}")
            continue
        files += [str(Path(path).resolve().relative_to(workdir)) for path in done.output_file_paths]
    if posts:
        import matplotlib.pyplot

        matplotlib.pyplot.close("all")  # the warm process runs other jobs next


def _scenario(disciplines, input_data, doe, spec):
    from gemseo import create_design_space, create_scenario

    for discipline in disciplines:
        defaults = discipline.io.input_grammar.defaults
        for name, value in input_data.items():
            if name in discipline.io.input_grammar.names:
                defaults[name] = value
    space = create_design_space()
    for name, variable in spec["design_space"].items():
        space.add_variable(
            name,
            len(variable["lower_bound"]),
            lower_bound=variable["lower_bound"],
            upper_bound=variable["upper_bound"],
            value=variable.get("value"),
        )
    scenario = create_scenario(
        disciplines,
        spec["objective"]["name"],
        space,
        scenario_type="DOE" if doe else "MDO",
        maximize_objective=spec["objective"].get("maximize", False),
        formulation_name=spec["formulation"],
        **spec.get("formulation_settings", {}),
    )
    for constraint in spec.get("constraints", []):
        scenario.add_constraint(constraint["name"], constraint_type=constraint.get("type", "ineq"))
    for name in spec.get("observables", []):
        scenario.add_observable(name)
    return scenario


# --- pure helpers (no GEMSEO) ----------------------------------------------------------------


def to_text(evaluation):
    """One evaluation as the JSON text to store."""
    return orjson.dumps(evaluation).decode()


def from_text(text):
    """An evaluation from its stored text."""
    return orjson.loads(text)


def unpack(batch):
    """The evaluation records of a batch that a study's Recorder packed (pure Python: the worker
    builds them, not the study's process)."""
    xs = _unpacked(batch["x"])
    columns = {name: _unpacked(column) for name, column in batch["functions"].items()}
    objectives, sign, label, tolerances = columns[batch["objective"]], batch["sign"], batch["label"], batch["tolerances"]
    records = []
    for index, flat in enumerate(xs):
        objective = objectives[index]
        objective = sign * objective[0] if len(objective) == 1 and objective[0] is not None else None
        constraints = {name: columns[name][index] for name in batch["constraints"]}
        feasible, violation = _judge(constraints, tolerances)
        records.append({
            "evaluation": batch["first"] + index,
            "x": {name: flat[start:end] for name, start, end in batch["slices"]},
            "objective": {label: objective},
            "constraints": constraints,
            "observables": {name: columns[name][index] for name in batch["observables"]},
            "feasible": feasible,
            "violation": violation,
        })
    return records


def _unpacked(column):
    """A column of a packed batch as one list of floats per point (null for NaN and infinities),
    None where a value is None."""
    if column[0] == "rows":
        return column[1]
    _, count, data, finite = column
    flat = memoryview(data).cast("d").tolist()
    if not finite:
        flat = [_finite(number) for number in flat]
    size = len(flat) // count
    return [flat[start : start + size] for start in range(0, count * size, size)] if size else [[] for _ in range(count)]


def _judge(constraints, tolerances):
    """Feasibility and violation measure as GEMSEO decides them (Constraints.is_point_feasible,
    OptimizationHistory.check_design_point_is_feasible), from the recorded values: GEMSEO's
    methods read the database again and cost up to 100 us a point."""
    feasible, total = True, 0.0
    for name, values in constraints.items():
        if values is None:
            return False, total  # not computed: not feasible, and GEMSEO's measure stops there
        equality, tolerance = tolerances[name]
        for value in values:
            if value is None:
                return False, None  # NaN: infinitely violated
            excess = (abs(value) if equality else value) - tolerance
            if excess > 0:
                feasible, total = False, total + excess * excess
    return feasible, total


def best(evaluations, maximize=False):
    """The Study's `best`: the best feasible evaluation, else the one with the smallest
    constraint violation; None when there is none."""
    chosen = best_record(evaluations, maximize)
    if chosen is None:
        return None
    return {
        "evaluation": chosen["evaluation"],
        "x": chosen["x"],
        "objective": next(iter(chosen["objective"].values())),
        "constraints": chosen["constraints"],
        "feasible": chosen["feasible"],
    }


def best_record(evaluations, maximize=False):
    """The record that best() describes. best_record([kept, *new]) follows a study as it runs
    without reading its whole history again."""
    chosen, chosen_rank = None, None
    for evaluation in evaluations:
        rank = _rank(evaluation, maximize)
        if rank is not None and (chosen_rank is None or rank < chosen_rank):
            chosen, chosen_rank = evaluation, rank
    return chosen


def _rank(evaluation, maximize):
    """What best() minimises: feasible points first by objective, then the others by violation;
    None for a point without an objective value."""
    objective = next(iter(evaluation["objective"].values()))
    if objective is None:
        return None
    objective = -objective if maximize else objective
    if evaluation["feasible"]:
        return (0, objective)
    violation = evaluation["violation"]
    return (1, math.inf if violation is None else violation, objective)


def _functions(evaluation):
    return {**evaluation["objective"], **evaluation["constraints"], **evaluation["observables"]}


def _scalar(values):
    """A function's value as the history gives it: a number for a size-1 value."""
    return values[0] if isinstance(values, list) and len(values) == 1 else values


def history_json(evaluations, since=0):
    """The evaluations numbered above `since`, in the History format of Part 4."""
    chosen = [evaluation for evaluation in evaluations if evaluation["evaluation"] > since]
    x, functions = {}, {}
    for evaluation in chosen:
        for name in evaluation["x"]:
            x.setdefault(name, [])
        for name in _functions(evaluation):
            functions.setdefault(name, [])
    for evaluation in chosen:
        values = _functions(evaluation)
        for name, column in x.items():
            column.append(evaluation["x"].get(name))
        for name, column in functions.items():
            column.append(_scalar(values.get(name)))
    return {
        "evaluation": [evaluation["evaluation"] for evaluation in chosen],
        "x": x,
        "functions": functions,
        "feasible": [evaluation["feasible"] for evaluation in chosen],
    }


def history_csv(evaluations, since=0):
    """The same evaluations as CSV: evaluation, feasible, then one column per scalar component,
    design variables first."""
    history = history_json(evaluations, since)
    columns = []  # (header, column of values, size)
    for group in (history["x"], history["functions"]):
        for name, values in group.items():
            sizes = [len(value) if isinstance(value, list) else 1 for value in values if value is not None]
            size = max(sizes, default=1)
            columns.append((name, values, size))
    headers = ["evaluation", "feasible"]
    for name, _, size in columns:
        headers += [name] if size == 1 else [f"{name}[{index}]" for index in range(size)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    for row, number in enumerate(history["evaluation"]):
        cells = [number, "true" if history["feasible"][row] else "false"]
        for _, values, size in columns:
            value = values[row]
            if value is None:
                cells += [""] * size
            else:
                cells += [_cell(item) for item in (value if isinstance(value, list) else [value])]
        writer.writerow(cells)
    return out.getvalue()


def _cell(value):
    return "" if value is None else repr(float(value))
