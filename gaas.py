"""gaas: GEMSEO disciplines over HTTP. The Starlette app: `uvicorn gaas:app`."""

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import sqlite3
import time
import uuid
from collections import OrderedDict
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

import auth
import metrics
import openapi
import runner
import settings
import store
import worker

logger = logging.getLogger("gaas")
OWNER_ID = runner.owner_id("web")
DESCRIPTION_ROUTES = (
    "input_names",
    "output_names",
    "inputs_schema",
    "outputs_schema",
    "default_input_data",
)
EXECUTE_FIELDS = {
    "name": str,
    "discipline_options": dict,
    "input_data": dict,
    "input_data_type": str,
    "input_files": list,
    "linearize": bool,
    "linearization_mode": str,
    "linearize_options": dict,
    "differentiated_inputs": list,
    "differentiated_outputs": list,
    "timeout": (int, float),
}
LINEARIZATION_MODES = (
    "auto",
    "direct",
    "reverse",
    "adjoint",
    "complex_step",
    "finite_differences",
    "centered_differences",
    "hybrid_complex_step",
    "hybrid_finite_differences",
    "hybrid_centered_differences",
)
USER_CACHE_SECONDS = 5.0
MAX_CHUNKS = 1_000_000


class ApiError(Exception):
    """A request that cannot be served; becomes {"detail": ...} with its status."""

    def __init__(self, status, detail, headers=None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


# Shared state of this web app process, set up in the lifespan.
class State:
    pool = None
    watcher = None
    catalogue = None
    descriptions = OrderedDict()
    users = {}
    tokens = {}
    sync_slots = None
    sign_in = None
    upload_locks = {}
    openapi = None
    counter = None


# Auth


async def current_user(request):
    """Return the caller's user row from the bearer token, or raise 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    claims = None
    if scheme.lower() == "bearer":
        # Tokens already checked skip the HMAC and the decoding; their expiry is still checked.
        claims = State.tokens.get(token)
        if claims is None:
            claims = auth.token_claims(token.strip())
            if claims is not None:
                if len(State.tokens) >= 10_000:
                    State.tokens.clear()
                State.tokens[token] = claims
    user_id = claims[0] if claims is not None and claims[1] >= time.time() else None
    if user_id is None:
        raise ApiError(401, "Not authenticated.", {"WWW-Authenticate": "Bearer"})
    cached = State.users.get(user_id)
    if cached is None or cached[1] < time.monotonic():
        # A short cache: a deleted user's tokens stop working within USER_CACHE_SECONDS.
        row = await run_in_threadpool(store.user_by_id, user_id)
        cached = (row, time.monotonic() + USER_CACHE_SECONDS)
        State.users[user_id] = cached
    if cached[0] is None:
        raise ApiError(401, "Not authenticated.", {"WWW-Authenticate": "Bearer"})
    return cached[0]


class SignInGuard:
    """Slows password guessing: after FAILURES wrong passwords for one user name from one address
    within WINDOW seconds, that pair gets 429 until the window has passed. Each check is 50 ms of
    scrypt, so at most SLOTS run at once: a flood of sign-ins cannot take every thread."""

    FAILURES, WINDOW, SLOTS = 10, 60.0, 2

    def __init__(self):
        self.failures = {}  # (address, user name) -> times of recent failures
        self.slots = asyncio.Semaphore(self.SLOTS)

    def wait_time(self, key):
        now = time.monotonic()
        recent = [moment for moment in self.failures.get(key, ()) if moment > now - self.WINDOW]
        if recent:
            self.failures[key] = recent
        else:
            self.failures.pop(key, None)
        return recent[0] + self.WINDOW - now if len(recent) >= self.FAILURES else 0

    def failed(self, key):
        if len(self.failures) > 100_000:  # forget everyone rather than grow without bound
            self.failures.clear()
        self.failures.setdefault(key, []).append(time.monotonic())

    def succeeded(self, key):
        self.failures.pop(key, None)


async def token(request):
    form = await request.form()
    username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ApiError(422, "The form needs the fields 'username' and 'password'.")
    key = (request.client.host if request.client else "", username)
    wait = math.ceil(State.sign_in.wait_time(key))
    if wait:
        raise ApiError(429, f"Too many failed sign-ins; try again in {wait} s.", {"Retry-After": str(wait)})

    def check():
        user = store.user_by_name(username)
        return user if auth.check_login(password, user) else None

    async with State.sign_in.slots:
        user = await run_in_threadpool(check)
    if user is None:
        State.sign_in.failed(key)
        raise ApiError(401, "Incorrect username or password.", {"WWW-Authenticate": "Bearer"})
    State.sign_in.succeeded(key)
    return JSONResponse({"access_token": auth.make_token(user["id"]), "token_type": "bearer"})


async def user_me(request):
    user = await current_user(request)
    return JSONResponse({"id": user["id"], "username": user["username"]})


# Disciplines


class BodyLimit:
    """ASGI middleware: a body past GEMSEO_HTTP_MAX_BODY_MB ends in 413, whether it declares its
    length or comes in chunks; the error is raised while the endpoint reads, so the usual error
    handler answers it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, seen = settings.MAX_BODY_MB * 1024 * 1024, 0

        async def limited():
            nonlocal seen
            if seen == 0:
                declared = dict(scope["headers"]).get(b"content-length", b"0")
                if not declared.isdigit() or int(declared) > limit:
                    raise self.too_big()
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise self.too_big()
            return message

        await self.app(scope, limited, send)

    @staticmethod
    def too_big():
        return ApiError(413, f"The request body is larger than {settings.MAX_BODY_MB:g} MiB.")


async def json_body(request, required=False):
    """Return the request body as a JSON object ({} when empty and not required)."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(422, "A JSON object body is required.")
        return {}
    try:
        body = orjson.loads(raw)  # a million numbers in 0.05 s (json: 0.3 s); NaN is refused
    except ValueError as error:
        raise ApiError(400, f"The request body is not valid JSON: {error}.") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(422, "The request body must be a JSON object.")
    return body


def check_field(body, name, kind):
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
        raise ApiError(422, f"Field '{name}' must be {expected.get(kind, 'a number')}.")
    return value


async def ask_pool(message):
    reply = await run_in_threadpool(State.pool.call, message)
    if not reply["ok"]:
        raise ApiError(reply["status"], reply["detail"])
    return reply["value"]


async def catalogue():
    if State.catalogue is None:
        State.catalogue = await ask_pool({"op": "catalogue"})
    return State.catalogue


async def describe(name, options):
    """Return the description of a discipline built with these options, cached."""
    if name not in await catalogue():
        raise ApiError(404, f"Unknown discipline {name!r}.")
    if not isinstance(options, dict):
        raise ApiError(422, "Field 'discipline_options' must be an object.")
    key = (name, json.dumps(options, sort_keys=True))
    description = State.descriptions.get(key)
    if description is None:
        description = await ask_pool({"op": "describe", "name": name, "options": options})
        State.descriptions[key] = description
        if len(State.descriptions) > 512:
            State.descriptions.popitem(last=False)
    return description


async def list_disciplines(request):
    await current_user(request)
    return JSONResponse(await catalogue())


async def discipline_description(request):
    await current_user(request)
    body = await json_body(request)
    options = check_field(body, "discipline_options", dict) or {}
    what = request.path_params["what"]
    if what not in DESCRIPTION_ROUTES:
        raise ApiError(404, f"Unknown route: no discipline description named {what!r}.")
    description = await describe(request.path_params["name"], options)
    return JSONResponse(description[what])


def check_input_data(input_data, input_names):
    for name, value in input_data.items():
        if name not in input_names:
            raise ApiError(
                422,
                f"Field 'input_data': {name!r} is not an input of this discipline;"
                f" its inputs are {', '.join(input_names)}.",
            )
        if not isinstance(value, (list, str, int, float, bool)):
            raise ApiError(422, f"Field 'input_data.{name}' must be a list, a number or a string.")


def strict_json(value, field):
    """JSON text for the store. The body was read by orjson, so it holds no NaN or infinity."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        raise ApiError(422, f"Field '{field}' holds a value JSON cannot carry.") from None


def job_timeout(requested):
    """The time limit of a new job: the request's, capped by the setting."""
    if requested is not None and not (math.isfinite(requested) and requested > 0):
        raise ApiError(422, "Field 'timeout' must be a positive number of seconds.")
    limits = [value for value in (requested, settings.JOB_TIMEOUT) if value]
    return min(limits) if limits else None


async def execute(request):
    user = await current_user(request)
    mode = request.query_params.get("execution_mode", "synchronous")
    if mode not in ("synchronous", "asynchronous"):
        raise ApiError(422, "Query 'execution_mode' must be 'synchronous' or 'asynchronous'.")
    body = await json_body(request)
    for field, kind in EXECUTE_FIELDS.items():
        check_field(body, field, kind)
    name = request.path_params["name"]
    options = body.get("discipline_options") or {}
    description = await describe(name, options)
    input_data = body.get("input_data") or {}
    check_input_data(input_data, description["input_names"])
    if body.get("input_data_type", "json") != "json":
        raise ApiError(422, "Field 'input_data_type' must be 'json'.")
    mode_name = str(body.get("linearization_mode") or "auto")
    if mode_name not in LINEARIZATION_MODES:
        raise ApiError(
            422, f"Field 'linearization_mode' must be one of {', '.join(LINEARIZATION_MODES)}."
        )
    for field in ("differentiated_inputs", "differentiated_outputs"):
        if not all(isinstance(item, str) for item in body.get(field) or ()):
            raise ApiError(422, f"Field '{field}' must be a list of names.")
    linearize = bool(body.get("linearize"))
    fields = {
        "user_id": user["id"],
        "name": body.get("name") or "",
        "discipline_class_name": name,
        "job_type": "execute_and_linearize" if linearize else "execute",
        "job_status": "pending",
        "execution_mode": mode,
        "timeout": job_timeout(body.get("timeout")),
        "linearization_mode": mode_name,
        "discipline_options": strict_json(options, "discipline_options"),
        "linearize_options": strict_json(body.get("linearize_options") or {}, "linearize_options"),
        "differentiated_inputs": json.dumps(body.get("differentiated_inputs") or []),
        "differentiated_outputs": json.dumps(body.get("differentiated_outputs") or []),
        "input_data": strict_json(input_data, "input_data"),
    }
    files = body.get("input_files") or []
    # As many synchronous runs in threads as there are warm processes: the others wait here, on
    # the event loop, instead of crowding the GIL and the store's write lock.
    slot = State.sync_slots if mode == "synchronous" else contextlib.nullcontext()
    async with slot:
        row = await run_in_threadpool(submit_and_run, user["id"], fields, files, mode)
    return Response(
        store.job_json(row),
        status_code=200 if mode == "synchronous" else 202,
        media_type="application/json",
    )


def submit_and_run(user_id, fields, files, mode):
    """Submit a job, run it here if synchronous, and return its row (one thread hop)."""
    if mode == "synchronous":
        fields["worker"] = OWNER_ID  # a pending synchronous job of a dead web app is then lost
    job_id = submit(user_id, fields, files, mode)
    if mode == "synchronous":
        try:
            runner.run_job(State.pool, job_id, OWNER_ID)
        except Exception as error:
            fail(job_id, ("pending", "running"), "internal", f"The job could not run: {error}")
            raise
    row = store.get_job(job_id)
    if row is None:
        raise ApiError(404, f"Job {job_id} was deleted while it ran.")
    return row


def fail(job_id, expected, error, text):
    """End a job as failed, unless it already moved on."""
    store.set_status(job_id, "failed", expected, ended_at=time.time(), error=error, traceback=text)


def submit(user_id, fields, files, mode):
    """Record a job, lay out its directory with its input files, and queue it if asynchronous."""
    sources = []
    for item in files:
        file_id, unique = (item.get("id"), item.get("unique_filename")) if isinstance(item, dict) else (None, None)
        valid_id = isinstance(file_id, int) and not isinstance(file_id, bool) and 0 < file_id <= MAX_INTEGER
        if not (valid_id or (file_id is None and isinstance(unique, str))):
            raise ApiError(422, "Field 'input_files' must be a list of File objects (with 'id').")
        row = store.owned_file(user_id, file_id, unique)
        if row is None:
            raise ApiError(404, f"Uploaded file {item.get('filename') or item.get('id')!r} not found.")
        sources.append(row)
    fields["input_files"] = json.dumps([store.file_entry(row) for row in sources])
    job_id = store.create_job(fields)
    try:
        workdir = store.job_directory(user_id, job_id)
        workdir.mkdir(parents=True, exist_ok=True)
        for row in sources:
            shutil.copyfile(settings.FILE_DIRECTORY / row["unique_filename"], workdir / row["filename"])
    except OSError as error:
        logger.exception("job %s: its directory could not be laid out", job_id)
        fail(job_id, ("pending",), "internal", f"The job directory could not be prepared: {error}")
        raise ApiError(500, f"Job {job_id} failed: its directory could not be prepared.") from None
    if mode == "asynchronous":
        try:
            worker.run_job(job_id)
        except Exception as error:
            logger.exception("job %s could not be queued", job_id)
            fail(job_id, ("pending",), "enqueue", f"The job could not be queued: {type(error).__name__}: {error}")
            raise ApiError(503, f"Job {job_id} could not be queued: {error}.") from None
    logger.info("job %s pending: user %s, %s, %s", job_id, user_id, fields["discipline_class_name"], mode)
    return job_id


# Jobs


MAX_INTEGER = 2**63 - 1  # SQLite's largest integer


def job_id_of(request):
    try:
        job_id = int(request.path_params["job_id"])
    except ValueError:
        raise ApiError(404, "Job not found.") from None
    if not 0 < job_id <= MAX_INTEGER:
        raise ApiError(404, "Job not found.")
    return job_id


async def owned_job(request, user):
    row = await run_in_threadpool(store.get_job, job_id_of(request), user["id"])
    if row is None:
        raise ApiError(404, "Job not found.")
    return row


def parse_bool(value, name):
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ApiError(422, f"Query '{name}' must be true or false.")


def parse_number(request, name, default, cast=float, minimum=0):
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ApiError(422, f"Query '{name}' must be a number.") from None
    if not minimum <= value <= MAX_INTEGER:
        raise ApiError(422, f"Query '{name}' must be between {minimum} and {MAX_INTEGER}.")
    return value


async def get_job(request):
    user = await current_user(request)
    row = await owned_job(request, user)
    if parse_bool(request.query_params.get("long_polling", "false"), "long_polling"):
        timeout = parse_number(request, "long_polling_timeout", 100.0)
        timeout = min(timeout, settings.MAX_LONG_POLLING_TIMEOUT)
        if row["job_status"] not in store.ENDED and await State.watcher.wait(row["id"], timeout):
            row = await owned_job(request, user)
    return Response(store.job_json(row), media_type="application/json")


async def list_jobs(request):
    user = await current_user(request)
    status = request.query_params.get("status") or None
    if status not in (None, "created", "pending", "running", "finished", "failed"):
        raise ApiError(422, "Query 'status' must be a job status.")
    limit = parse_number(request, "limit", 100, int, 1)
    offset = parse_number(request, "offset", 0, int, 0)
    rows, total = await run_in_threadpool(store.list_jobs, user["id"], status, min(limit, 1000), offset)
    return JSONResponse([store.job_entry(row) for row in rows], headers={"X-Total-Count": str(total)})


def file_tree(folder, root):
    """The folder as {file: None, subfolder: {...}}, files first at each level."""
    files, folders = {}, {}
    for entry in sorted(os.scandir(folder), key=lambda item: item.name):
        path = Path(entry.path)
        if entry.is_symlink() and not inside(path, root):
            continue
        if entry.is_dir(follow_symlinks=False):
            folders[entry.name] = file_tree(path, root)
        elif entry.is_dir():
            continue  # a symlinked folder could loop; its files are not offered
        else:
            files[entry.name] = None
    return files | folders


def inside(path, root):
    """Whether a path, symlinks resolved, stays within root."""
    return path.resolve().is_relative_to(root.resolve())


async def job_files(request):
    user = await current_user(request)
    row = await owned_job(request, user)
    workdir = Path(row["workdir"])
    tree = await run_in_threadpool(lambda: file_tree(workdir, workdir) if workdir.is_dir() else {})
    return JSONResponse(tree)


async def download(request):
    user = await current_user(request)
    row = await owned_job(request, user)
    name = request.query_params.get("filename")
    if not name:
        raise ApiError(422, "Query 'filename' is required.")
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or "\0" in name:
        raise ApiError(400, "Query 'filename' must be a relative path inside the job directory.")
    workdir = Path(row["workdir"])
    path = workdir / relative
    if not path.is_file() or not inside(path, workdir):
        raise ApiError(404, f"File {name!r} not found in job {row['id']}.")
    return FileResponse(path, filename=path.name, media_type="application/octet-stream")


async def job_log(request):
    user = await current_user(request)
    row = await owned_job(request, user)
    workdir = Path(row["workdir"])
    path = workdir / "gaas-job.log"
    text = await run_in_threadpool(
        lambda: path.read_bytes() if path.is_file() and inside(path, workdir) else b""
    )
    return PlainTextResponse(text)


async def cancel_job(request):
    user = await current_user(request)
    row = await owned_job(request, user)
    if row["job_status"] in store.ENDED:
        raise ApiError(409, f"Job {row['id']} has already ended ({row['job_status']}).")
    await run_in_threadpool(cancel, row["id"])
    row = await owned_job(request, user)
    return Response(store.job_json(row), media_type="application/json")


def cancel(job_id):
    """Cancel a job: a pending one ends at once, a running one is stopped by its runner."""
    text = "The job was cancelled."
    if store.set_status(
        job_id, "failed", ("pending", "created"), ended_at=time.time(), error="cancelled", traceback=text
    ):
        logger.info("job %s failed: cancelled while pending", job_id)
        return
    with store.transaction() as conn:
        conn.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND job_status = 'running'", (job_id,)
        )
    # The runner checks the flag every CANCEL_CHECK_INTERVAL; wait for it to take effect.
    deadline = time.monotonic() + 3
    while store.job_status(job_id) == "running" and time.monotonic() < deadline:
        time.sleep(0.02)


async def delete_job(request):
    user = await current_user(request)
    row = await owned_job(request, user)

    def delete():
        cancel(row["id"])
        with store.transaction() as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (row["id"],))
        shutil.rmtree(row["workdir"], ignore_errors=True)

    await run_in_threadpool(delete)
    logger.info("job %s deleted by user %s", row["id"], user["id"])
    return Response(status_code=204)


# Uploaded files


def safe_name(name):
    """Reduce a client's file name to a plain base name, or '' if nothing safe remains."""
    base = (name or "").replace("\\", "/").split("/")[-1]
    base = "".join(char for char in base if char.isprintable()).strip()
    base = base.encode()[:255].decode(errors="ignore")  # file names are limited in bytes
    return "" if base in ("", ".", "..") else base


async def list_files(request):
    user = await current_user(request)
    return JSONResponse(await run_in_threadpool(store.list_files, user["id"]))


async def upload(request):
    user = await current_user(request)
    async with request.form(max_files=100, max_part_size=1024 * 1024) as form:
        chunk = form_number(form, "chunk_number", 0)
        total = form_number(form, "total_chunks", 1)
        if not 0 <= chunk < total <= MAX_CHUNKS:
            raise ApiError(422, f"Fields need 0 <= chunk_number < total_chunks <= {MAX_CHUNKS}.")
        upload_id = str(form.get("upload_id") or "")[:100]
        parts = [part for part in form.getlist("files") if hasattr(part, "read")]
        if not parts:
            raise ApiError(422, "The form needs at least one file part named 'files'.")
        results = []
        for part in parts:
            name = safe_name(part.filename)
            if not name:
                raise ApiError(400, f"File name {part.filename!r} is not usable.")
            key = f"{upload_id}/{name}"
            # One lock per upload, kept while any request holds or awaits it.
            entry = State.upload_locks.setdefault((user["id"], key), [asyncio.Lock(), 0])
            entry[1] += 1
            try:
                async with entry[0]:
                    results.append(
                        await run_in_threadpool(save_chunk, user["id"], key, name, part.file, chunk, total)
                    )
            finally:
                entry[1] -= 1
                if entry[1] == 0:
                    State.upload_locks.pop((user["id"], key), None)
    if chunk + 1 < total:
        return JSONResponse({"next_chunk": chunk + 1, "total_chunks": total})
    return JSONResponse(results)


def form_number(form, name, default):
    raw = form.get(name, default)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ApiError(422, f"Field '{name}' must be an integer.") from None


def save_chunk(user_id, key, name, source, chunk, total):
    """Append one chunk to its upload; on the last one, turn the upload into a stored file."""
    partial_dir = settings.FILE_DIRECTORY / ".partial"
    state = store.upload_state(user_id, key)
    if chunk == 0:
        if state is not None:
            (partial_dir / state["partial_name"]).unlink(missing_ok=True)
        partial_name = uuid.uuid4().hex
        mode = "wb"
    else:
        if state is None or state["next_chunk"] != chunk or state["total_chunks"] != total:
            expected = 0 if state is None else state["next_chunk"]
            raise ApiError(409, f"Chunk {chunk} of {name!r} is out of order; expected chunk {expected}.")
        partial_name = state["partial_name"]
        mode = "ab"
    partial = partial_dir / partial_name
    with partial.open(mode) as target:
        shutil.copyfileobj(source, target)
    if chunk + 1 < total:
        store.save_upload_state(user_id, key, partial_name, chunk + 1, total)
        return None
    digest, size = hashlib.sha256(), 0
    with partial.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    unique = uuid.uuid4().hex
    os.replace(partial, settings.FILE_DIRECTORY / unique)
    store.drop_upload_state(user_id, key)
    file_id = store.add_file(user_id, name, unique, digest.hexdigest(), size)
    return store.file_entry(store.owned_file(user_id, file_id))


# Health


async def health(request):
    healthy, report = await run_in_threadpool(metrics.health, worker.huey)
    return JSONResponse(report, status_code=200 if healthy else 503)


async def prometheus(request):
    text = await run_in_threadpool(metrics.render, worker.huey, State.counter.counts)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


# API description and pages


async def openapi_json(request):
    if State.openapi is None:
        State.openapi = openapi.document(
            [route for route in routes if isinstance(route, Route)], UNDOCUMENTED
        )
    return JSONResponse(State.openapi)


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gaas API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/ui/docs.js"></script>
</body></html>
"""


async def docs(request):
    return HTMLResponse(DOCS_PAGE)


# Waiting for jobs without a thread per waiting client


class Watcher:
    """Wakes long-polling clients when their jobs end.

    One task per process polls SQLite's data_version (a counter that moves when another
    connection commits) every few milliseconds, and reads the waited jobs only when it moved.
    Those reads are microseconds on one private connection, so they run on the event loop.
    """

    INTERVAL = 0.002

    def __init__(self):
        self.waiters = {}
        self.task = None
        self.dirty = True

    async def wait(self, job_id, timeout):
        """Wait until the job ends or the timeout passes; return whether it ended."""
        event = asyncio.Event()
        self.waiters.setdefault(job_id, set()).add(event)
        self.dirty = True
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run())
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            events = self.waiters.get(job_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self.waiters[job_id]

    async def run(self):
        conn = sqlite3.connect(settings.USER_DATABASE_PATH, isolation_level=None)
        version = None
        try:
            while self.waiters:
                current = conn.execute("PRAGMA data_version").fetchone()[0]
                if current != version or self.dirty:
                    version, self.dirty = current, False
                    ids = list(self.waiters)
                    for start in range(0, len(ids), 500):
                        batch = ids[start : start + 500]
                        marks = ", ".join("?" * len(batch))
                        ended = conn.execute(
                            f"SELECT id FROM jobs WHERE id IN ({marks})"
                            " AND job_status IN ('finished', 'failed')",
                            batch,
                        ).fetchall()
                        for (job_id,) in ended:
                            for event in self.waiters.get(job_id, ()):
                                event.set()
                await asyncio.sleep(self.INTERVAL)
        finally:
            conn.close()


# Errors, in one place


def error_response(status, detail, headers=None):
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def api_error(request, error):
    return error_response(error.status, error.detail, error.headers)


async def http_error(request, error):
    return error_response(error.status_code, error.detail, getattr(error, "headers", None))


async def server_error(request, error):
    logger.error("error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(500, "Internal server error; the administrator can read the log.")


# The app


async def housekeeping():
    """Beat this app's heart and end the jobs of processes that vanished."""
    while True:
        try:
            await run_in_threadpool(store.beat, OWNER_ID)
            await run_in_threadpool(runner.fail_lost_jobs, worker.run_job)
        except Exception:
            logger.exception("housekeeping failed")
        await asyncio.sleep(settings.HEARTBEAT_INTERVAL)


@contextlib.asynccontextmanager
async def lifespan(app):
    runner.setup_logging()
    await run_in_threadpool(store.init)
    store.start_checkpoints()
    auth.secret_key()
    State.pool = runner.Pool(settings.SYNC_PROCESSES, "web", OWNER_ID)
    State.pool.start()
    State.sync_slots = asyncio.Semaphore(settings.SYNC_PROCESSES)
    State.sign_in = SignInGuard()
    State.watcher = Watcher()
    task = asyncio.create_task(housekeeping())
    logger.info("gaas web app %s serving, root %s", OWNER_ID, settings.ROOT_PATH)
    try:
        yield
    finally:
        task.cancel()
        State.pool.close()
        await run_in_threadpool(store.forget, OWNER_ID)


async def home(request):
    return RedirectResponse("/ui/")


routes = [
    Route("/", home, methods=["GET"]),
    Route("/token", token, methods=["POST"]),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets"),
    Mount("/ui", StaticFiles(directory=Path(__file__).with_name("ui"), html=True), name="ui"),
    Route("/v1/user/me/", user_me, methods=["GET"]),
    Route("/v1/discipline", list_disciplines, methods=["GET"]),
    Route("/v1/discipline/{name}/execute", execute, methods=["POST"]),
    Route("/v1/discipline/{name}/{what}", discipline_description, methods=["POST"]),
    Route("/v1/job", list_jobs, methods=["GET"]),
    Route("/v1/job/{job_id}", get_job, methods=["GET"]),
    Route("/v1/job/{job_id}", delete_job, methods=["DELETE"]),
    Route("/v1/job/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/v1/job/{job_id}/files", job_files, methods=["GET"]),
    Route("/v1/job/{job_id}/files/download", download, methods=["GET"]),
    Route("/v1/job/{job_id}/log", job_log, methods=["GET"]),
    Route("/v1/file", list_files, methods=["GET"]),
    Route("/v1/file/upload", upload, methods=["POST"]),
]
# Pages, not API operations: left out of the OpenAPI document.
UNDOCUMENTED = ("/", "/openapi.json", "/docs")


def counted(app):
    State.counter = metrics.RequestCounter(app, {route.endpoint: route.path for route in routes if isinstance(route, Route)})
    return State.counter


exception_handlers = {ApiError: api_error, HTTPException: http_error, Exception: server_error}
app = Starlette(
    routes=routes,
    exception_handlers=exception_handlers,
    lifespan=lifespan,
    middleware=[Middleware(counted), Middleware(BodyLimit)],
)
