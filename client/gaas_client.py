"""A GEMSEO client of gaas: remote disciplines that GEMSEO can linearize, batches as datasets, and
studies (whole scenarios run on the server) followed live.

Needs only GEMSEO (6.3 or 7) and httpx. Installed (`pip install ./client`), it is a GEMSEO
plugin: GEMSEO's factory finds `RemoteDiscipline` through the `gemseo_plugins` entry point.
"""

import hashlib
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import closing, contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx
from numpy import asarray, atleast_1d, atleast_2d, full, generic, hstack, nan, ndarray

# GEMSEO 7 renamed these modules; it still imports the old names, but with a DeprecationWarning.
try:
    from gemseo.dataset import IODataset, OptimizationDataset
    from gemseo.discipline import Discipline
except ImportError:  # GEMSEO 6
    from gemseo.core.discipline import Discipline
    from gemseo.datasets.io_dataset import IODataset
    from gemseo.datasets.optimization_dataset import OptimizationDataset

CHUNK_SIZE = 4 * 1024 * 1024
HTTP_TIMEOUT = 60.0
ENDED = ("finished", "failed")
# The groups of an IODataset: IODataset.INPUT_GROUP in GEMSEO 6, IODataset.input_group in 7.
INPUTS, OUTPUTS = "inputs", "outputs"


class RemoteError(RuntimeError):
    """A job that failed on the server, or a request that the server refused."""


class Connection:
    """One user signed in on one gaas server."""

    def __init__(self, url, user, password, http=None):
        self.url = url.rstrip("/")
        self.user = user
        self.password = password
        self.http = http
        self.token = None

    def __getstate__(self):
        # GEMSEO pickles disciplines for parallel runs; an httpx client cannot be pickled.
        return {**self.__dict__, "http": None}

    def send(self, method, path, stream=False, timeout=HTTP_TIMEOUT, **kwargs):
        """Send a request with the token; on 401 sign in again once; raise on an error status."""
        if self.http is None:
            self.http = httpx.Client()
        for attempt in (1, 2):
            if self.token is None:
                self.sign_in()
            headers = {"Authorization": f"Bearer {self.token}"}
            request = self.http.build_request(method, self.url + path, headers=headers, timeout=timeout, **kwargs)
            response = self.http.send(request, stream=stream)
            if response.status_code != 401 or attempt == 2:
                break
            response.close()
            self.token = None  # expired, or the user's sessions were ended
        if response.is_error:
            response.read()
            raise RemoteError(f"{method} {path}: {response.status_code} {detail(response)}")
        return response

    def json(self, method, path, **kwargs):
        """Send a request and return its JSON answer."""
        return self.send(method, path, **kwargs).json()

    def sign_in(self):
        """Get a bearer token on /token."""
        form = {"username": self.user, "password": self.password}
        response = self.http.post(self.url + "/token", data=form, timeout=HTTP_TIMEOUT)
        if response.is_error:
            raise RemoteError(f"Signing in as {self.user!r}: {response.status_code} {detail(response)}")
        self.token = response.json()["access_token"]


class RemoteDiscipline(Discipline):
    """A discipline run by a gaas server, its Jacobian computed there too."""

    # The grammars come from the server's JSON Schemas (GEMSEO 7's default is SimpleGrammar).
    default_grammar_type = Discipline.GrammarType.JSON

    def __init__(self, discipline_class_name, url, user, password, discipline_options=None, name="",
                 asynchronous=False, poll_timeout=30.0, input_files=(), output_files=(), directory=".",
                 job_timeout=None, linearize_with_execute=False, http=None):
        """
        Args:
            discipline_class_name: The GEMSEO class on the server, e.g. "Sellar1".
            url: The base URL of the server, e.g. "http://127.0.0.1:8000".
            user: The user name.
            password: The password.
            discipline_options: The options of the class's constructor on the server.
            name: The name of the discipline; by default its class name.
            asynchronous: Whether to submit each run as a job and long-poll it,
                rather than wait for it in one request.
            poll_timeout: The longest wait of one long poll, in seconds.
            input_files: The local files to give each job (uploaded again only when changed).
            output_files: The files or folders of the job directory to download after each run.
            directory: Where to download them, under their paths in the job directory.
            job_timeout: The time limit of a job on the server, in seconds.
            linearize_with_execute: Whether every run also computes the Jacobian,
                so that linearizing at the inputs of the last run needs no other job.
            http: The httpx client to use; by default a new one.
        """
        super().__init__(name or discipline_class_name)
        self.discipline_class_name = discipline_class_name
        self.discipline_options = dict(discipline_options or {})
        self.asynchronous = asynchronous
        self.poll_timeout = poll_timeout
        self.input_files = [Path(path) for path in input_files]
        self.output_files = list(output_files)
        self.directory = Path(directory)
        self.job_timeout = job_timeout
        self.linearize_with_execute = linearize_with_execute
        self.connection = Connection(url, user, password, http)
        self.last_job = None
        self._uploads = {}  # path -> ((size, mtime), File object)
        self._last_jacobian = None  # (inputs as JSON, Jacobian) of the last job that linearized
        body = {"discipline_options": self.discipline_options}
        self.io.input_grammar.update_from_schema(self._describe("inputs_schema", body))
        self.io.output_grammar.update_from_schema(self._describe("outputs_schema", body))
        defaults = self._describe("default_input_data", body)
        self.io.input_grammar.defaults = {key: from_json(value) for key, value in defaults.items()}

    def _describe(self, what, body):
        return self.connection.json("POST", f"/v1/discipline/{self.discipline_class_name}/{what}", json=body)

    def _run(self, input_data):
        inputs = to_json(input_data)
        job = self.submit(inputs, self.linearize_with_execute)
        if self.linearize_with_execute:
            # GEMSEO reads this flag: it then caches this Jacobian with the outputs, and
            # linearize at these inputs takes it from the cache instead of computing it.
            self.jac = {output_name: dict(row) for output_name, row in self._jacobian(inputs, job).items()}
            self._has_jacobian = True
        self._download(job)
        names = self.io.output_grammar.names
        return {key: from_json(value) for key, value in job["output_data"].items() if key in names}

    def _compute_jacobian(self, input_names=(), output_names=()):
        inputs = to_json(self.io.get_input_data(with_namespaces=False))
        last = self._last_jacobian
        if last and last[0] == inputs and all(i in last[1].get(o, {}) for o in output_names for i in input_names):
            jacobian = last[1]  # the server linearized at this point already: no second run
        else:
            jacobian = self._jacobian(inputs, self.submit(inputs, True, input_names, output_names))
        # Zeros for every pair asked, then the server's matrices: the shapes GEMSEO checks.
        self._init_jacobian(input_names, output_names)
        for output_name, row in self.jac.items():
            for input_name in row:
                if input_name in jacobian.get(output_name, {}):
                    row[input_name] = jacobian[output_name][input_name].copy()

    def _jacobian(self, inputs, job):
        """The Jacobian of a job as 2-D arrays, on the names of this discipline; remembered."""
        input_names, output_names = self.io.input_grammar.names, self.io.output_grammar.names
        jacobian = {
            output_name: {key: matrix(value) for key, value in row.items() if key in input_names}
            for output_name, row in job["jacobian_data"].items()
            if output_name in output_names
        }
        self._last_jacobian = (inputs, jacobian)
        return jacobian

    def submit(self, inputs, linearize=False, input_names=(), output_names=()):
        """Run the discipline on the server at these JSON inputs; return the ended job."""
        body = {"name": self.name, "discipline_options": self.discipline_options, "input_data": inputs}
        body["input_files"] = [self._upload(path) for path in self.input_files]
        if self.job_timeout:
            body["timeout"] = self.job_timeout
        if linearize:
            body["linearize"] = True
            if input_names and output_names:
                body["differentiated_inputs"], body["differentiated_outputs"] = list(input_names), list(output_names)
            else:
                body["linearize_options"] = {"compute_all_jacobians": True}
        mode = "asynchronous" if self.asynchronous else "synchronous"
        path = f"/v1/discipline/{self.discipline_class_name}/execute?execution_mode={mode}"
        # A synchronous answer comes once the model has run: no time limit on reading it.
        job = self.connection.json("POST", path, json=body, timeout=httpx.Timeout(HTTP_TIMEOUT, read=None))
        try:
            while job["job_status"] not in ENDED:
                poll = f"/v1/job/{job['id']}?long_polling=true&long_polling_timeout={self.poll_timeout}"
                job = self.connection.json("GET", poll, timeout=self.poll_timeout + HTTP_TIMEOUT)
        except KeyboardInterrupt:  # Ctrl-C stops the job too, not only the waiting
            self.connection.send("POST", f"/v1/job/{job['id']}/cancel")
            raise
        self.last_job = job
        if job["job_status"] == "failed":
            raise RemoteError(
                f"Job {job['id']} of {self.discipline_class_name} failed on the server ({job.get('error')}):"
                f" {job.get('message')}\nRemote traceback:\n{job.get('traceback')}"
            )
        return job

    def _upload(self, path):
        stamp = (path.stat().st_size, path.stat().st_mtime_ns)
        if self._uploads.get(path, (None,))[0] != stamp:
            self._uploads[path] = (stamp, upload(self.connection, path))
        return self._uploads[path][1]

    def _download(self, job):
        if not self.output_files:
            return
        tree = self.connection.json("GET", f"/v1/job/{job['id']}/files")
        for name in self.output_files:
            for relative in files_under(tree, name, job["id"]):
                download(self.connection, job["id"], relative, self.directory / relative)


def download(connection, job_id, relative, target):
    """Stream a file of a job's directory to target (its folders made as needed)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = f"/v1/job/{job_id}/files/download"
    response = connection.send("GET", path, stream=True, params={"filename": relative})
    with closing(response), target.open("wb") as handle:
        for block in response.iter_bytes():
            handle.write(block)


def upload(connection, path, chunk_size=None):
    """Upload a file in chunks; return its File object, checked against the local SHA-256."""
    path, chunk_size = Path(path), chunk_size or CHUNK_SIZE
    total = max(1, -(-path.stat().st_size // chunk_size))
    digest = hashlib.sha256()
    # A gaas extension: the chunks of two uploads of one file name never mix.
    form = {"total_chunks": str(total), "upload_id": uuid.uuid4().hex}
    with path.open("rb") as handle:
        for number in range(total):
            chunk = handle.read(chunk_size)
            digest.update(chunk)
            data = {**form, "chunk_number": str(number)}
            response = connection.send("POST", "/v1/file/upload", files={"files": (path.name, chunk)}, data=data)
    (entry,) = response.json()
    if entry["sha256sum"] != digest.hexdigest():
        raise RemoteError(f"The server's copy of {path} differs from it (SHA-256 {entry['sha256sum']}).")
    return entry


def files_under(tree, name, job_id):
    """The paths of the files at name in a job's file tree: itself, or every file of a folder."""
    node, name = tree, Path(name).as_posix()
    for part in Path(name).parts:
        if not isinstance(node, dict) or part not in node:
            raise RemoteError(f"Job {job_id} has no file {name!r} in its directory.")
        node = node[part]
    if node is None:
        return [name]
    return [path for child in node for path in files_under(tree, f"{name}/{child}", job_id)]


def run_batch(discipline_class_name, url, user, password, samples=None, doe=None, input_data=None,
              discipline_options=None, linearize=False, progress=True, poll=0.5, http=None):
    """Evaluate a discipline at many points on a gaas server; return them as an IODataset.

    Give either samples, a list of {input name: value}, or doe, the object of a batch request
    (its design_space may be a GEMSEO DesignSpace); input_data holds values shared by every
    point. The dataset holds the inputs the request gave and every output, NaN for the failed
    points; its misc holds "batch_id", "job_id", "job_status", "error" (one per point) and,
    with linearize, each point's "jacobian_data" (one more request per point).
    """
    with signed_in(url, user, password, http) as connection:
        return _run_batch(connection, discipline_class_name, samples, doe, input_data, discipline_options,
                          linearize, progress, poll)


@contextmanager
def signed_in(url, user, password, http=None):
    """A Connection whose own httpx client (when none is given) is closed at the end."""
    connection = Connection(url, user, password, http)
    try:
        yield connection
    finally:
        if http is None and connection.http is not None:
            connection.http.close()  # no socket left for the garbage collector


def _run_batch(connection, discipline_class_name, samples, doe, input_data, discipline_options, linearize,
               progress, poll):
    body = {"discipline_options": discipline_options or {}, "input_data": to_json(input_data or {})}
    body["linearize"] = linearize
    if samples is not None:
        body["samples"] = [to_json(point) for point in samples]
    if doe is not None:
        body["doe"] = doe_json(doe)
    batch = connection.json("POST", f"/v1/discipline/{discipline_class_name}/batch", json=body)
    start = time.monotonic()
    try:
        while batch["batch_status"] in ("pending", "running"):
            if progress:
                show_progress(batch, time.monotonic() - start)
            # A short long poll: a sleep that ends as soon as the batch does.
            path = f"/v1/batch/{batch['id']}?long_polling=true&long_polling_timeout={poll}"
            batch = connection.json("GET", path, timeout=poll + HTTP_TIMEOUT)
    except KeyboardInterrupt:  # Ctrl-C stops the points too, not only the waiting
        connection.send("POST", f"/v1/batch/{batch['id']}/cancel")
        raise
    if progress:
        show_progress(batch, time.monotonic() - start, end="\n")
    results = connection.json("GET", f"/v1/batch/{batch['id']}/results")
    # The inputs the request gave, as in the dataset of a DOEScenario; not the defaults.
    given = {*body["input_data"], *(name for point in body.get("samples", ()) for name in point)}
    dataset = to_dataset(results, given | set(body.get("doe", {}).get("design_space", {})))
    dataset.misc.update(batch_id=batch["id"], job_id=results["job_id"], job_status=results["job_status"])
    dataset.misc["error"] = results["error"]
    if linearize:
        jobs = [connection.json("GET", f"/v1/job/{job_id}") for job_id in results["job_id"]]
        dataset.misc["jacobian_data"] = [
            {out: {key: matrix(value) for key, value in row.items()} for out, row in job["jacobian_data"].items()}
            for job in jobs
        ]
    failed = batch["counts"]["failed"]
    if failed:
        errors = ", ".join(sorted({error for error in results["error"] if error}))
        message = f"{failed} of {batch['n_samples']} points of batch {batch['id']} failed ({errors})"
        warnings.warn(f"{message}; their outputs are NaN.", stacklevel=3)  # the line calling run_batch
    return dataset


def show_progress(batch, elapsed, end=""):
    """Draw one line on stderr: a bar, the points done and failed, the rate and the time left."""
    counts, total = batch["counts"], batch["n_samples"]
    done = counts["finished"] + counts["failed"]
    rate = done / elapsed if elapsed > 0 else 0.0
    left = f"{(total - done) / rate:.0f} s left" if rate and done < total else f"{elapsed:.1f} s"
    bar = "#" * (30 * done // total)
    line = f"\r[{bar:<30}] {done}/{total} points, {counts['failed']} failed, {rate:.0f}/s, {left}"
    sys.stderr.write(f"{line:<79}{end}")  # the spaces wipe the end of a longer previous line
    sys.stderr.flush()


# Studies: a whole scenario run on the server as one job (API.md Part 4)

H5_NAME = "problem.h5"
PLAIN_LINE_EVERY = 2.0  # seconds between two progress lines when stderr is not a terminal
# The groups of an OptimizationDataset (DESIGN_GROUP and FUNCTION_GROUP in GEMSEO 6).
DESIGNS, FUNCTIONS = "designs", "functions"


class StudyResult(NamedTuple):
    """An ended study, as run_study and follow_study return it."""

    study: dict  # the Study JSON
    job_id: int  # the study's job: its log and files are under /v1/job/{job_id}
    problem: object  # GEMSEO's OptimizationProblem, read from the job's problem.h5
    best: dict  # the best point: evaluation, x, objective, constraints, feasible
    history: object  # every evaluation, as a GEMSEO OptimizationDataset (groups designs, functions)


def run_study(spec, url, user, password, progress=True, poll_timeout=30.0, directory=None, http=None):
    """Run a study on a gaas server, show its progress, and return it as a StudyResult once it ends.

    spec is a StudyInput (API.md Part 4); its design_space may be a GEMSEO DesignSpace. The
    progress line on stderr gives the evaluations so far and the best objective. Ctrl-C asks
    whether to cancel the study on the server (without a terminal to ask on, it cancels), then
    raises KeyboardInterrupt; a study left running is followed again with follow_study. problem.h5
    is kept in directory when one is given. A refused spec or a failed study raises RemoteError.
    """
    body = dict(spec)
    if "design_space" in spec:  # else the server says what is missing
        body["design_space"] = space_json(spec["design_space"], values=True)
    with signed_in(url, user, password, http) as connection:
        study = connection.json("POST", "/v1/study", json=body)
        return _follow(connection, study, progress, poll_timeout, directory)


def follow_study(study_id, url, user, password, progress=True, poll_timeout=30.0, directory=None, http=None):
    """Re-attach to a study by its id, running or ended, as run_study follows it; return a StudyResult."""
    with signed_in(url, user, password, http) as connection:
        study = connection.json("GET", f"/v1/study/{int(study_id)}")
        return _follow(connection, study, progress, poll_timeout, directory)


def _follow(connection, study, progress, poll_timeout, directory):
    study_id = study["id"]
    history = empty_history()
    line = StudyProgress(study_id) if progress else None
    try:
        while True:
            ended = study["study_status"] in ENDED
            since = history["evaluation"][-1] if history["evaluation"] else 0
            # Once the study has ended, one plain read takes whatever came after the last poll.
            wait = "" if ended else f"&long_polling=true&long_polling_timeout={poll_timeout}"
            page = connection.json("GET", f"/v1/study/{study_id}/history?since={since}{wait}",
                                   timeout=poll_timeout + HTTP_TIMEOUT)
            extend_history(history, page)
            if ended and not page["evaluation"]:
                break
            study = connection.json("GET", f"/v1/study/{study_id}")
            if study["n_evaluations"] < len(history["evaluation"]):
                history = empty_history()  # run again from its start (its worker was lost, requeue on)
            if line:
                line.show(study)
    except KeyboardInterrupt:
        if line:
            line.close()
        ask_to_cancel(connection, study)
        raise
    if line:
        line.show(study, last=True)
    if study["study_status"] == "failed":
        raise RemoteError(
            f"Study {study_id} failed on the server ({study.get('error')}): {study.get('message')}"
            f"\nIts job's log: GET /v1/job/{study['job_id']}/log"
        )
    return StudyResult(study, study["job_id"], _problem(connection, study["job_id"], directory), study.get("best"),
                       history_dataset(history))


def empty_history():
    return {"evaluation": [], "x": {}, "functions": {}, "feasible": []}


def extend_history(history, page):
    """Append a History answer (API.md Part 4) to history, a column that appears late padded with nulls."""
    before, added = len(history["evaluation"]), len(page["evaluation"])
    history["evaluation"] += page["evaluation"]
    history["feasible"] += page["feasible"]
    for key in ("x", "functions"):
        for name, values in page[key].items():
            history[key].setdefault(name, [None] * before).extend(values)
        for values in history[key].values():
            values.extend([None] * (before + added - len(values)))


def history_dataset(history):
    """A study's history as an OptimizationDataset indexed by evaluation number; NaN where not computed."""
    groups = {DESIGNS: history["x"], FUNCTIONS: history["functions"]}
    dataset = table_dataset(OptimizationDataset, len(history["evaluation"]), groups)
    dataset.index = history["evaluation"]
    return dataset


def _problem(connection, job_id, directory):
    """The OptimizationProblem of the job's problem.h5, the file kept in directory if given."""
    try:
        from gemseo.optimization import OptimizationProblem
    except ImportError:  # GEMSEO 6
        from gemseo.algos.optimization_problem import OptimizationProblem

    with tempfile.TemporaryDirectory(prefix="gaas-study-") as folder:
        target = Path(directory or folder) / H5_NAME
        download(connection, job_id, H5_NAME, target)
        return OptimizationProblem.from_hdf(target)


def ask_to_cancel(connection, study):
    """After Ctrl-C: cancel the study on the server if the user says so, or at once without a terminal."""
    study_id = study["id"]
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            answer = input("Cancel the study on the server? [y/N] ")
        except (EOFError, KeyboardInterrupt):
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            sys.stderr.write(f"Study {study_id} goes on on the server; gaas_client.follow_study({study_id}, ...)"
                             " follows it again.\n")
            return
    try:
        connection.send("POST", f"/v1/study/{study_id}/cancel")
        sys.stderr.write(f"Study {study_id} cancelled on the server.\n")
    except RemoteError as error:  # it ended meanwhile: 409
        sys.stderr.write(f"Study {study_id} not cancelled: {error}\n")


class StudyProgress:
    """The progress of a study on stderr: one line rewritten in place on a terminal, else a line
    every PLAIN_LINE_EVERY seconds and one at the end."""

    def __init__(self, study_id):
        self.study_id = study_id
        self.start = time.monotonic()
        self.in_place = sys.stderr.isatty()
        self.written_at = None
        self.open = False  # a line rewritten in place, not yet ended

    def show(self, study, last=False):
        now = time.monotonic()
        if not (self.in_place or last or self.written_at is None or now - self.written_at >= PLAIN_LINE_EVERY):
            return
        self.written_at = now
        text = study_line(study, now - self.start)
        if self.in_place:
            sys.stderr.write(f"\r{text:<79}" + ("\n" if last else ""))  # the spaces wipe a longer line
            self.open = not last
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self):
        if self.open:
            sys.stderr.write("\n")
            self.open = False


def study_line(study, elapsed):
    """The progress line, e.g. "Study 12 running: 23 evaluations, best obj 3.18339 (feasible), 4.2 s"."""
    status = study["study_status"]
    if status == "failed":
        status = study.get("error") or status
    text = f"Study {study['id']} {status}: {study.get('n_evaluations', 0)} evaluations"
    best = study.get("best")
    if best:
        name = (study.get("objective") or {}).get("name", "objective")
        feasible = "feasible" if best.get("feasible") else "infeasible"
        value = best["objective"][0] if isinstance(best["objective"], list) else best["objective"]
        text += f", best {name} {value:.6g} ({feasible})"
    return f"{text}, {elapsed:.1f} s"


def to_dataset(results, input_names):
    """The results table of a batch as an IODataset; missing or non-numeric values are NaN."""
    inputs = {name: values for name, values in results["input_data"].items() if name in input_names}
    return table_dataset(IODataset, len(results["job_id"]), {INPUTS: inputs, OUTPUTS: results["output_data"]})


def table_dataset(cls, n_points, groups):
    """A Dataset of class cls from {group: {name: [value per point]}}; missing or non-numeric values are NaN."""
    columns, names, sizes, groups_of = [], [], {}, {}
    for group, table in groups.items():
        for name, values in table.items():
            size = next((len(value) if isinstance(value, list) else 1 for value in values if value is not None), 1)
            column = full((n_points, size), nan)
            for row, value in enumerate(values):
                try:
                    column[row] = atleast_1d(asarray(value, dtype=float))
                except (TypeError, ValueError):
                    pass  # a failed point (None), or a value that is not numbers
            columns.append(column)
            names.append(name)
            sizes[name] = size
            groups_of[name] = group
    return cls.from_array(hstack(columns) if columns else full((n_points, 0), nan), names, sizes, groups_of)


def doe_json(doe):
    """The doe of a batch request as JSON; a GEMSEO DesignSpace becomes its bounds."""
    return {**doe, "design_space": space_json(doe["design_space"])}


def space_json(space, values=False):
    """A design space as JSON: a GEMSEO DesignSpace becomes its bounds (and current values, if
    asked and set); anything else is taken as JSON already."""
    if not hasattr(space, "variable_names"):
        return space
    found = {}
    for name in space.variable_names:
        # .real: GEMSEO's own design spaces may hold complex numbers (Sellar's, by default).
        found[name] = {"lower_bound": space.get_lower_bound(name).real.tolist(),
                       "upper_bound": space.get_upper_bound(name).real.tolist()}
        if values and space.has_current_value:
            found[name]["value"] = space.get_current_value([name]).real.tolist()
    return found


def detail(response):
    """The server's explanation of an error answer: its "detail", else the start of its text."""
    try:
        return response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text[:500]


def to_json(data):
    """Data as JSON values: NumPy arrays as lists."""
    return {name: value.tolist() if isinstance(value, (ndarray, generic)) else value for name, value in data.items()}


def matrix(value):
    """A Jacobian block of the wire (a 2-D list) as a 2-D array."""
    return atleast_2d(asarray(value, dtype=float))


def from_json(value):
    """A JSON value as GEMSEO holds it: lists of numbers as NumPy arrays."""
    try:
        numbers = asarray(value) if isinstance(value, list) else None
    except ValueError:  # ragged lists
        return value
    return numbers if numbers is not None and numbers.dtype.kind in "biuf" else value
