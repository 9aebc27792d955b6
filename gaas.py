"""gaas: GEMSEO disciplines over HTTP. The Starlette app: `uvicorn gaas:app`.

This module speaks HTTP only: each endpoint reads and checks its request in full (its shape by
contract.py, against the schemas of /openapi.json; what needs the discipline here), then calls
jobs.py (every job state change), files.py (paths and uploads) or the warm-process pool
(pool.py); their errors.Rejected become {"detail": ...} in one handler at the bottom.
"""

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import os
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import auth
import cache
import contract
import errors
import files
import jobs
import metrics
import openapi
import pool
import results
import settings
import store
import study
import wire
import worker
from errors import Rejected

logger = logging.getLogger("gaas")
OWNER_ID = pool.owner_id("web")
USER_CACHE_SECONDS = 5.0
MAX_INTEGER = openapi.MAX_INTEGER
# The sign-in form is two short fields: a bigger body is refused before it is parsed.
TOKEN_BODY_LIMIT = 64 * 1024
# Lifetime of a personal access token whose request gives none, in days.
DEFAULT_TOKEN_DAYS = 90
# Memory a discipline's constructor may take in a warm process when jobs have no limit, in MiB.
DESCRIBE_MEMORY_MB = 2048


def unauthenticated(detail="Not authenticated."):
    return HTTPException(401, detail, {"WWW-Authenticate": "Bearer"})


EXPIRED = "The token has expired; sign in again at /token."


# Auth


async def current_user(request):
    """Return the caller's user row, from a trusted proxy's header, a personal access token or a
    signed bearer token; or raise 401."""
    state = request.app.state
    if settings.AUTH_HEADER and settings.AUTH_HEADER in request.headers:
        user = await proxy_user(request)
        if user is not None:
            return user
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.startswith(auth.PAT_PREFIX):
        access = await access_token(state, auth.token_hash(token), None)
        user = access and await cached_user(state, access["user_id"])
        if not user:
            raise unauthenticated("The access token is unknown, revoked or expired.")
        return user
    claims = None
    if scheme.lower() == "bearer":
        # Tokens already checked skip the HMAC and the decoding; their expiry is still checked.
        claims = state.tokens.get(token)
        if claims is None:
            claims = auth.token_claims(token.strip())
            if claims is not None:
                if len(state.tokens) >= 10_000:
                    state.tokens.clear()
                state.tokens[token] = claims
    if claims is None:
        # Told apart so that a client knows to sign in again (one more HMAC, on failures only).
        expired = scheme.lower() == "bearer" and auth.token_claims(token.strip(), expired_too=True)
        raise unauthenticated(EXPIRED if expired else "Not authenticated.")
    if claims[1] < time.time():
        raise unauthenticated(EXPIRED)
    user_id, _, version, pat = claims
    user = await cached_user(state, user_id)
    if user is None or user["token_version"] != version:
        raise unauthenticated()
    if pat is not None:  # signed in with an access token: it ends with that token
        access = await access_token(state, None, pat)
        if access is None or access["user_id"] != user_id:
            raise unauthenticated("The access token this session came from is revoked or expired.")
    return user


async def cached_user(state, user_id):
    """The user row of that id with its groups, or None; read again after USER_CACHE_SECONDS, so
    that a deleted user's or a changed password's tokens, and a changed membership, hold within them."""
    cached = state.users.get(user_id)
    if cached is None or cached[1] < time.monotonic():
        row = await run_in_threadpool(store.user_with_groups, user_id)
        cached = (row, time.monotonic() + USER_CACHE_SECONDS)
        state.users[user_id] = cached
    return cached[0]


async def access_token(state, hashed, token_id):
    """The live personal access token row of that hash or id, or None. Remembered for
    USER_CACHE_SECONDS (a use then costs a dict look-up), so a revoked one stops on every web
    process within them; expiry is checked at each use."""
    key = hashed or token_id
    cached = state.access_tokens.get(key)
    if cached is None or cached[1] < time.monotonic():
        row = await run_in_threadpool(auth.live_access_token, hashed, token_id)
        if len(state.access_tokens) >= 10_000:
            state.access_tokens.clear()
        cached = state.access_tokens[key] = (row, time.monotonic() + USER_CACHE_SECONDS)
    row = cached[0]
    if row is not None and row["expires_at"] is not None and row["expires_at"] <= time.time():
        return None
    return row


async def proxy_user(request):
    """The user that a trusted proxy names in GEMSEO_HTTP_AUTH_HEADER (created at first sight), or
    None when the request's own peer is not a trusted proxy: the header is then ignored."""
    peer = (request.scope.get("gaas.peer") or ("", 0))[0]
    if not trusted_proxy(peer):
        logger.warning("header %s from %s, not a trusted proxy (GEMSEO_HTTP_TRUSTED_PROXIES): ignored", settings.AUTH_HEADER, peer)
        return None
    name = request.headers[settings.AUTH_HEADER].strip()
    if not auth.USER_NAME.fullmatch(name):
        raise unauthenticated(f"The proxy's {settings.AUTH_HEADER} is not a usable user name.")
    state = request.app.state
    cached = state.proxy_users.get(name)
    if cached is None or cached[1] < time.monotonic():
        row = await run_in_threadpool(auth.outside_user, name, "proxy", client_address(request))
        row = row and await run_in_threadpool(store.user_with_groups, row["id"])
        cached = state.proxy_users[name] = (row, time.monotonic() + USER_CACHE_SECONDS)
    return cached[0]


def trusted_proxy(address):
    try:
        address = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(address in network for network in settings.TRUSTED_PROXIES)


class RealPeer:
    """ASGI middleware, outermost: keeps the connection's own peer address in the scope before
    X-Forwarded-For replaces the client (uvicorn's proxy-headers middleware, inside this one):
    whether a proxy's user header is believed depends on who sent it, not on what it claims."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope["gaas.peer"] = scope.get("client")
        await self.app(scope, receive, send)


def client_address(request):
    return request.client.host if request.client else ""


async def audit(request, actor, action, target="", detail=""):
    """Record an entry of the audit log, with the client's address."""
    await run_in_threadpool(store.add_audit, actor, action, str(target), client_address(request), detail)


async def token(request):
    fields = contract.form(request, await request.form())
    username, password = fields["username"], fields["password"]
    sign_in = request.app.state.sign_in
    key = (client_address(request), username)
    wait = math.ceil(await sign_in.reserve(key))
    if wait:
        raise HTTPException(429, f"Too many sign-ins; try again in {wait} s.", {"Retry-After": str(wait)})
    access = None
    if password.startswith(auth.PAT_PREFIX):  # a personal access token as the password
        user, access = await sign_in.check(key, lambda: auth.sign_in_with_token(username, password)) or (None, None)
    else:
        user = await sign_in.check(key, lambda: auth.sign_in(username, password))
    if user is None:
        await audit(request, username[:64], "sign_in_failed")
        raise HTTPException(401, "Incorrect username or password.", {"WWW-Authenticate": "Bearer"})
    await sign_in.succeeded(key)
    await audit(request, user["username"], "sign_in", detail=f"access token {access['id']}" if access else "")
    return JSONResponse({"access_token": auth.make_token(user, access_token=access), "token_type": "bearer"})


async def user_me(request):
    user = await current_user(request)
    return JSONResponse({"id": user["id"], "username": user["username"]})


# Request bodies


class BodyLimit:
    """ASGI middleware: a body past its limit ends in 413, whether it declares its length or comes
    in chunks; the error is raised while the endpoint reads, so the usual error handler answers it.
    The limit is GEMSEO_HTTP_MAX_BODY_MB, or less for the paths of `limits`."""

    def __init__(self, app, limits=None):
        self.app, self.limits = app, limits or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"], settings.MAX_BODY_MB * 1024 * 1024)
        seen = 0

        async def limited():
            nonlocal seen
            if seen == 0:
                declared = dict(scope["headers"]).get(b"content-length", b"0")
                if not declared.isdigit() or int(declared) > limit:
                    raise self.too_big(limit)
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise self.too_big(limit)
            return message

        await self.app(scope, limited, send)

    @staticmethod
    def too_big(limit):
        return HTTPException(413, f"The request body is larger than {limit / 1024 / 1024:g} MiB.")


async def json_body(request):
    """Return the request body as a JSON object ({} when empty)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)  # a million numbers in 0.05 s (json: 0.3 s); NaN is refused
    except ValueError as error:
        raise HTTPException(400, f"The request body is not valid JSON: {error}.") from None
    if not isinstance(body, dict):
        raise HTTPException(422, "The request body must be a JSON object.")
    return body


# Disciplines


@contextlib.asynccontextmanager
async def warm_slot(state):
    """Wait, on the event loop and for a bounded time, for one of the web app's warm processes:
    waiting requests hold no thread, so they cannot starve the other routes."""
    if state.slots.locked():  # only a wait needs a deadline (wait_for costs a task)
        try:
            await asyncio.wait_for(state.slots.acquire(), settings.POOL_WAIT_TIMEOUT)
        except asyncio.TimeoutError:
            raise errors.no_warm_process(settings.POOL_WAIT_TIMEOUT) from None
    else:
        await state.slots.acquire()
    try:
        yield
    finally:
        state.slots.release()


async def ask_pool(state, message, timeout, what="Building the discipline", limit="GEMSEO_HTTP_DESCRIBE_TIMEOUT"):
    """Ask a warm process of the web app; `what` and `limit` name the work and its time limit
    in the 422 of a process that timed out or crashed."""
    async with warm_slot(state):
        try:
            reply = await run_in_threadpool(state.pool.call, message, timeout, settings.POOL_WAIT_TIMEOUT)
        except TimeoutError:
            raise errors.no_warm_process(settings.POOL_WAIT_TIMEOUT) from None
        except pool.ProcessGone as gone:
            if gone.reason == "timeout":
                raise HTTPException(422, f"{what} took longer than {timeout:g} s ({limit}).") from None
            if "memory_limit_mb" not in message:  # no client input ran: a fault of ours
                logger.error("warm process %s on %s", gone.reason, message["op"])
                raise HTTPException(500, "Internal server error; the administrator can read the log.") from None
            raise HTTPException(
                422, f"{what} stopped its process (memory limit {message['memory_limit_mb']:g} MiB:"
                " GEMSEO_HTTP_JOB_MEMORY_LIMIT_MB?)."
            ) from None
    if not reply["ok"]:
        if reply["status"] >= 500:  # a fault of ours: its text is for the log, not the client
            logger.error("warm process failed on %s: %s", message["op"], reply["detail"])
            raise HTTPException(500, "Internal server error; the administrator can read the log.")
        raise HTTPException(reply["status"], reply["detail"])
    return reply["value"]


async def catalogue(state):
    if state.catalogue is None:
        state.catalogue = await ask_pool(state, {"op": "catalogue"}, settings.DESCRIBE_TIMEOUT)
    return state.catalogue


async def check_name(state, name):
    contract.check(openapi.PLAIN_TEXT, name, "Path", "name")
    served = await catalogue(state)
    if name not in served["served"] and name not in served["disabled"]:
        raise HTTPException(404, f"Unknown discipline {name[:100]!r}.")


async def discipline_description(state, name, options):
    """Return the description (names, schemas, defaults) of a discipline built with these
    options, cached."""
    await check_name(state, name)
    key = (name, json.dumps(options, sort_keys=True))
    description = state.descriptions.get(key)
    if description is None:
        limit = settings.JOB_MEMORY_LIMIT_MB or DESCRIBE_MEMORY_MB
        message = {"op": "describe", "name": name, "options": options, "memory_limit_mb": limit}
        description = await ask_pool(state, message, settings.DESCRIBE_TIMEOUT)
        state.descriptions[key] = description
        if len(state.descriptions) > 512:
            state.descriptions.popitem(last=False)
    return description


async def list_algorithms(request):
    await current_user(request)
    state = request.app.state
    if state.algorithms is None:
        state.algorithms = await ask_pool(state, {"op": "algorithms"}, settings.DESCRIBE_TIMEOUT, "Listing the algorithms")
    return JSONResponse(state.algorithms)


async def list_disciplines(request):
    await current_user(request)
    return JSONResponse((await catalogue(request.app.state))["served"])


async def discipline_class(request):
    await current_user(request)
    state, name = request.app.state, request.path_params["name"]
    await check_name(state, name)
    if name not in state.classes:
        state.classes[name] = await ask_pool(state, {"op": "about", "name": name}, settings.DESCRIBE_TIMEOUT)
    return JSONResponse(state.classes[name])


async def description_part(request):
    """One part of a discipline's description: POST /v1/discipline/{name}/input_names..."""
    await current_user(request)
    part = request.path_params["what"]
    if part not in openapi.DESCRIPTION_PARTS:
        raise HTTPException(404, f"Unknown route: no discipline description named {part[:100]!r}.")
    body = contract.body(request, await json_body(request))
    description = await discipline_description(request.app.state, request.path_params["name"], body.get("discipline_options") or {})
    return JSONResponse(description[part])


def check_input_data(input_data, description, field="input_data"):
    """Check input values against the discipline's input grammar before anything is recorded:
    known names, JSON types, and a number array's size where the discipline has a default."""
    names = description["input_names"]
    schemas = description["inputs_schema"].get("properties", {})
    defaults = description["default_input_data"]
    for name, value in input_data.items():
        if name not in names:
            raise HTTPException(
                422,
                f"Field '{field}': {name[:100]!r} is not an input of this discipline; its inputs are {', '.join(names)}.",
            )
        problem = value_problem(value, schemas.get(name) or {}, defaults.get(name))
        if problem:
            raise HTTPException(422, f"Field '{field}.{name[:100]}' {problem}.")


NUMBER_TYPES = {int, float}
KIND_WORDS = {"number": "numbers", "integer": "integers", "string": "strings", "boolean": "booleans"}


def value_problem(value, schema, default):
    """What is wrong with an input value for its grammar's schema, or None."""
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        items = items.get("type") if isinstance(items, dict) else None  # a list of item schemas: not checked
        values = value if isinstance(value, list) else [value]
        if items in ("number", "integer"):
            # One pass over the types: 20 ms for a million numbers; bools are not numbers.
            if not isinstance(value, (list, int, float)) or not set(map(type, values)) <= NUMBER_TYPES:
                return f"must be a list of {KIND_WORDS[items]}"
            if items == "integer" and not all(float(item).is_integer() for item in values):
                return "must be a list of integers"
            size = len(default) if isinstance(default, list) else None
            if size is not None and len(values) != size:
                return (
                    f"must hold {size} number{'s' * (size != 1)} (the size of its default), not {len(values)};"
                    " a discipline that takes other sizes is built for them by its discipline_options"
                )
        elif items in KIND_WORDS and not isinstance(value, list):
            return f"must be a list of {KIND_WORDS[items]}"
        return None
    if kind in ("number", "integer"):
        if type(value) not in NUMBER_TYPES or (kind == "integer" and not float(value).is_integer()):
            return f"must be {'an integer' if kind == 'integer' else 'a number'}"
    elif kind == "string" and not isinstance(value, str):
        return "must be a string"
    elif kind == "boolean" and not isinstance(value, bool):
        return "must be true or false"
    return None  # that it is JSON's number, text, boolean or list, the contract has checked


def strict_json(value, field):
    """JSON text for the store. The body was read by orjson, so it holds no NaN or infinity."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        raise HTTPException(422, f"Field '{field}' holds a value JSON cannot carry.") from None


def job_timeout(requested):
    """The time limit of a new job: the request's (positive, by the contract), capped by the setting."""
    limits = [value for value in (requested, settings.JOB_TIMEOUT) if value]
    return min(limits) if limits else None


async def group_of(user, name):
    """The user's Membership of the group of that name (an admin outside it has the role
    "admin"); 404 for no such group, 403 for one the user is not in."""
    for member in user["groups"]:
        if member.name == name:
            return member
    group_id = await run_in_threadpool(store.group_id, name)
    if group_id is None:
        raise HTTPException(404, f"Group {name!r} not found.")
    if not user["is_admin"]:
        raise HTTPException(403, f"Group {name!r}: you are not a member of it.")
    return store.Membership(group_id, name, "admin")


async def share_group(user, name):
    """The id of the group a submission names (None for none), if the user may submit into it: a
    member or owner of it, or an admin; viewers get 403."""
    if name is None:
        return None
    member = await group_of(user, name)
    if member.role == "viewer":
        raise HTTPException(403, f"Group {name!r}: viewers cannot submit into it.")
    return member.group_id


def job_fields(user, name, body, mode, group_id=None):
    """The columns of a new job from an execute (or batch) body checked by the contract."""
    linearize = bool(body.get("linearize"))
    return {
        "user_id": user["id"],
        "group_id": group_id,
        "name": body.get("name") or "",
        "discipline_class_name": name,
        "job_type": "execute_and_linearize" if linearize else "execute",
        "execution_mode": mode,
        "timeout": job_timeout(body.get("timeout")),
        "linearization_mode": body.get("linearization_mode") or "auto",
        "discipline_options": strict_json(body.get("discipline_options") or {}, "discipline_options"),
        "linearize_options": strict_json(body.get("linearize_options") or {}, "linearize_options"),
        "differentiated_inputs": json.dumps(body.get("differentiated_inputs") or []),
        "differentiated_outputs": json.dumps(body.get("differentiated_outputs") or []),
    }


async def execute(request):
    user = await current_user(request)
    mode = contract.query(request)["execution_mode"]
    body = contract.body(request, await json_body(request))
    name, state = request.path_params["name"], request.app.state
    description = await discipline_description(state, name, body.get("discipline_options") or {})
    input_data = body.get("input_data") or {}
    check_input_data(input_data, description)
    fields = job_fields(user, name, body, mode, await share_group(user, body.get("group")))
    fields["input_data"] = strict_json(input_data, "input_data")
    input_files = body.get("input_files") or []
    cached = await cache_request(state, name, description, input_data, body)
    if mode == "asynchronous":
        row = await run_in_threadpool(jobs.submit, user["id"], fields, input_files, worker.enqueue, cached)
        return Response(wire.job_json(row), status_code=202, media_type="application/json")
    if cached is not None and state.slots.locked():
        # Every warm process busy: a hit must not wait for one. Not the wait for an identical job
        # in flight either, which would hold a thread outside the warm slots' bound: that is made
        # in the run's own thread, as the lookup is when a warm process is free.
        row = await run_in_threadpool(jobs.from_cache, user["id"], fields, input_files, cached, False)
        if row is not None:
            return Response(wire.job_json(row), media_type="application/json")
    # As many synchronous runs in threads as there are warm processes: the others wait here, on
    # the event loop, instead of crowding the GIL and the store's write lock.
    async with warm_slot(state):
        row = await run_in_threadpool(jobs.run_synchronous, state.pool, user["id"], fields, input_files, OWNER_ID, cached)
    return Response(wire.job_json(row), media_type="application/json")


async def cache_request(state, name, description, input_data, body):
    """The cache.Request of a job (input_data: a dict, or a batch's list of them), or None when
    the cache is off or the class is not cached."""
    code = (await catalogue(state)).get("code", {}).get(name)
    discipline = cache.discipline(name, code, description)
    if discipline.code_sha256 is None:
        return None
    return cache.Request(discipline, input_data, body.get("cache", True))


# Batches


def check_doe(doe, description):
    """What the contract cannot check of a batch's doe (its shape it has checked): the design
    space against the discipline, before GEMSEO computes the points. Most algorithms need
    n_samples; some take the number of points from their settings (a full factorial's levels):
    GEMSEO says which, and the points are counted once computed."""
    for name, bounds in doe["design_space"].items():
        where = f"Field 'doe.design_space.{name[:100]}'"
        if name not in description["input_names"]:
            raise HTTPException(422, f"{where}: {name[:100]!r} is not an input of this discipline.")
        lower, upper = bounds["lower_bound"], bounds["upper_bound"]
        if len(lower) != len(upper) or any(a > b for a, b in zip(lower, upper)):
            raise HTTPException(422, f"{where}: the bounds must be of one length, lower <= upper.")
        default = description["default_input_data"].get(name)
        if isinstance(default, list) and len(lower) != len(default):
            raise HTTPException(422, f"{where}: the bounds must hold {len(default)} numbers (the size of its default).")
    return doe


async def submit_batch(request):
    user = await current_user(request)
    body = contract.body(request, await json_body(request))
    name, state = request.path_params["name"], request.app.state
    description = await discipline_description(state, name, body.get("discipline_options") or {})
    shared = body.get("input_data") or {}
    check_input_data(shared, description)
    fields = job_fields(user, name, body, "asynchronous", await share_group(user, body.get("group")))
    if "samples" in body:
        points = body["samples"]
        for index, point in enumerate(points):
            check_input_data(point, description, f"samples[{index}]")
        design = {"samples": len(points)}
    else:
        design = check_doe(body["doe"], description)
        limit = settings.JOB_MEMORY_LIMIT_MB or DESCRIBE_MEMORY_MB
        message = {"op": "doe", "doe": design, "memory_limit_mb": limit, "max_points": settings.MAX_BATCH_SAMPLES}
        points = await ask_pool(state, message, settings.DOE_TIMEOUT, "Computing the DOE", "GEMSEO_HTTP_DOE_TIMEOUT")
    inputs = [orjson.dumps({**shared, **point}).decode() for point in points]
    given = list(dict.fromkeys([*shared, *(key for point in points for key in point)]))
    batch = {
        "user_id": user["id"],
        "name": fields["name"],
        "discipline_class_name": name,
        "design": strict_json(design, "doe"),
        "input_names": json.dumps(given),
        "group_id": fields["group_id"],
    }
    cached = await cache_request(state, name, description, [{**shared, **point} for point in points], body)
    batch_id = await run_in_threadpool(
        jobs.submit_batch, user["id"], batch, fields, inputs, body.get("input_files") or [], worker.enqueue, cached
    )
    entry = await run_in_threadpool(lambda: batch_entry(store.get_batch(batch_id, user["id"])))
    return JSONResponse(entry, status_code=202)


def batch_entry(row, progress=None):
    """A batch row as the Batch of the wire contract, with its counts and status."""
    counts, started, ended = progress or store.batch_progress([row["id"]])[row["id"]]
    counts = {status: counts.get(status, 0) for status in ("pending", "running", "finished", "failed")}
    status = jobs.batch_status(counts, started)
    if status not in store.ENDED:
        ended = None
    return {
        "id": row["id"],
        "name": row["name"],
        "discipline_class_name": row["discipline_class_name"],
        "user_id": row["user_id"],
        "owner": row["owner_name"],
        "group": row["group_name"],
        "n_samples": row["n_samples"],
        "counts": counts,
        "batch_status": status,
        "design": orjson.loads(row["design"]),
        "created_at": wire.iso(row["created_at"]),
        "started_at": wire.iso(started),
        "ended_at": wire.iso(ended),
    }


async def owned_batch(request, user, action="read"):
    return await owned(request, user, store.get_batch, "batch_id", "Batch", action)


async def audit_others(request, user, row, action, what):
    """Audit a cancel or a delete of another user's job or batch (an admin's)."""
    if row["user_id"] != user["id"]:
        await audit(request, user["username"], action, f"{what} {row['id']}", f"of user {row['user_id']}")


async def list_batches(request):
    user = await current_user(request)
    query = contract.query(request)
    limit, offset = query["limit"], query["offset"]

    user_id, group_ids = await list_scope(user, query)

    def read():
        rows, total = store.list_batches(user_id, limit, offset, group_ids)
        progress = store.batch_progress([row["id"] for row in rows])
        return [batch_entry(row, progress[row["id"]]) for row in rows], total

    entries, total = await run_in_threadpool(read)
    return JSONResponse(entries, headers={"X-Total-Count": str(total)})


async def batch(request):
    """GET a batch (with long polling) or DELETE it with its points."""
    user = await current_user(request)
    row = await owned_batch(request, user, "delete" if request.method == "DELETE" else "read")
    if request.method == "DELETE":
        await stop_batch(request.app.state, row["id"])
        await run_in_threadpool(jobs.delete_batch, row["id"])
        await audit_others(request, user, row, "batch_deleted", "batch")
        return Response(status_code=204)
    query = contract.query(request)
    long_polling, timeout = query["long_polling"], query["long_polling_timeout"]
    entry = await run_in_threadpool(batch_entry, row)
    if long_polling and entry["batch_status"] in ("pending", "running"):
        if await request.app.state.watcher.wait(("batch", row["id"]), min(timeout, settings.MAX_LONG_POLLING_TIMEOUT)):
            entry = await run_in_threadpool(batch_entry, row)
    return JSONResponse(entry)


async def cancel_batch(request):
    user = await current_user(request)
    row = await owned_batch(request, user, "cancel")
    await stop_batch(request.app.state, row["id"])
    await audit_others(request, user, row, "batch_cancelled", "batch")
    return JSONResponse(await run_in_threadpool(batch_entry, row))


async def stop_batch(state, batch_id):
    """Cancel a batch and wait, on the event loop, for its running points to stop."""
    if await run_in_threadpool(jobs.cancel_batch, batch_id):
        await state.watcher.wait(("batch", batch_id), jobs.STOP_WAIT)


async def stop_job(state, job_id, refuse_ended=False):
    """Cancel a job and wait, on the event loop, for it to stop if it was running."""
    if await run_in_threadpool(jobs.cancel, job_id, refuse_ended):
        await state.watcher.wait(("job", job_id), jobs.STOP_WAIT)


async def batch_results(request):
    user = await current_user(request)
    row = await owned_batch(request, user)
    query = contract.query(request)
    kind, offset, limit = query["format"], query["offset"], query["limit"] or MAX_INTEGER
    table = await run_in_threadpool(results.open_table, row, offset, limit, kind)
    media_type = "application/json" if kind == "json" else "text/csv; charset=utf-8"
    return StreamingResponse(results.stream(table, kind), media_type=media_type, headers={"X-Total-Count": str(table.total)})


# Studies


async def studies(request):
    """POST a study, or GET the list: one route, so 405 names both methods."""
    if request.method == "GET":
        return await list_studies(request)
    return await submit_study(request)


async def submit_study(request):
    user = await current_user(request)
    spec = contract.body(request, await json_body(request))
    group_id = await share_group(user, spec.get("group"))
    # GEMSEO checks the whole in a warm process before anything is recorded.
    limit = settings.JOB_MEMORY_LIMIT_MB or DESCRIBE_MEMORY_MB
    message = {"op": "check_study", "spec": spec, "max_processes": settings.STUDY_MAX_PROCESSES, "memory_limit_mb": limit}
    await ask_pool(request.app.state, message, settings.DESCRIBE_TIMEOUT, "Checking the study")
    name = spec.get("name") or ""
    study_fields = {
        "user_id": user["id"],
        "group_id": group_id,
        "name": name,
        "spec": strict_json(spec, "study"),
        "formulation": spec["formulation"],
        "algorithm": strict_json(spec["algorithm"], "algorithm"),
        "objective": strict_json(spec["objective"], "objective"),
    }
    fields = {
        "user_id": user["id"],
        "name": name,
        "discipline_class_name": "Study",
        "group_id": group_id,
        "job_type": "study",
        "execution_mode": "asynchronous",
        "timeout": job_timeout(spec.get("timeout")),
    }
    row = await run_in_threadpool(jobs.submit_study, user["id"], study_fields, fields, worker.enqueue)
    return JSONResponse(study_entry(row), status_code=202)


# The fields of its StudyInput a Study shows besides those it always has, with their defaults.
STUDY_SETTINGS = {
    "disciplines": [], "formulation_settings": {}, "design_space": {}, "constraints": [], "observables": [],
    "input_data": {}, "post_processing": [], "timeout": None,
}


def study_entry(row):
    """A study row (with its job's columns) as the Study of the wire contract."""
    status = jobs.study_status(row)
    failed = status == "failed"
    spec = orjson.loads(row["spec"])
    entry = {
        "id": row["id"],
        "name": row["name"],
        "user_id": row["user_id"],
        "owner": row["owner_name"],
        "group": row["group_name"],
        "job_id": row["job_id"],
        "study_status": status,
        "error": (row["error"] or "") if failed else "",
        "message": wire.failure_message(row["traceback_end"] or "") if failed else "",
        "formulation": row["formulation"],
        "algorithm": orjson.loads(row["algorithm"]),
        "objective": orjson.loads(row["objective"]),
        # What else it ran with, for a reader of its page (the constraints' kinds, say).
        **{key: spec.get(key, default) for key, default in STUDY_SETTINGS.items()},
        "n_evaluations": row["n_evaluations"],
        "created_at": wire.iso(row["created_at"]),
        "started_at": wire.iso(row["started_at"]),
        "ended_at": wire.iso(row["ended_at"]) if status in store.ENDED else None,
    }
    if row["best"] is not None:
        entry["best"] = orjson.loads(row["best"])
    return entry


async def owned_study(request, user, action="read"):
    return await owned(request, user, store.get_study, "study_id", "Study", action)


async def list_studies(request):
    user = await current_user(request)
    query = contract.query(request)
    user_id, group_ids = await list_scope(user, query)
    rows, total = await run_in_threadpool(store.list_studies, user_id, query["limit"], query["offset"], group_ids)
    return JSONResponse([study_entry(row) for row in rows], headers={"X-Total-Count": str(total)})


async def one_study(request):
    """GET a study (with long polling on its job) or DELETE it with its job and files."""
    user = await current_user(request)
    row = await owned_study(request, user, "delete" if request.method == "DELETE" else "read")
    state = request.app.state
    if request.method == "DELETE":
        await stop_job(state, row["job_id"])
        await run_in_threadpool(jobs.delete_study, row)
        logger.info("study %s deleted by user %s", row["id"], user["id"])
        await audit_others(request, user, row, "study_deleted", "study")
        return Response(status_code=204)
    query = contract.query(request)
    if query["long_polling"] and jobs.study_status(row) not in store.ENDED:
        timeout = min(query["long_polling_timeout"], settings.MAX_LONG_POLLING_TIMEOUT)
        if await state.watcher.wait(("job", row["job_id"]), timeout):
            row = await owned_study(request, user)
    return JSONResponse(study_entry(row))


async def study_history(request):
    """The evaluations above `since`, as JSON or CSV; a long poll waits for one of them."""
    user = await current_user(request)
    row = await owned_study(request, user)
    query = contract.query(request)
    since = query["since"]
    if query["long_polling"] and row["n_evaluations"] <= since and jobs.study_status(row) not in store.ENDED:
        timeout = min(query["long_polling_timeout"], settings.MAX_LONG_POLLING_TIMEOUT)
        await request.app.state.watcher.wait(("history", (row["id"], since)), timeout)
    texts = await run_in_threadpool(store.evaluations, row["id"], since)
    evaluations = [study.from_text(text) for text in texts]
    if query["format"] == "csv":
        return Response(study.history_csv(evaluations, since), media_type="text/csv; charset=utf-8")
    return JSONResponse(study.history_json(evaluations, since))


async def cancel_study(request):
    user = await current_user(request)
    row = await owned_study(request, user, "cancel")
    await stop_job(request.app.state, row["job_id"], refuse_ended=True)
    await audit_others(request, user, row, "study_cancelled", "study")
    return JSONResponse(study_entry(await owned_study(request, user)))


# Jobs


def path_id(request, key, what):
    """The integer id of the path parameter `key`; 404 "<what> not found." if it cannot be one."""
    try:
        value = int(request.path_params[key])
    except ValueError:
        raise HTTPException(404, f"{what} not found.") from None
    if not 0 < value <= MAX_INTEGER:
        raise HTTPException(404, f"{what} not found.")
    return value


async def list_scope(user, query):
    """(user id or None, group ids) of the entries a list shows: the caller's (scope=mine), those
    and the ones shared with the caller's groups (scope=group), or one group's (group=NAME: 404
    for no such group, 403 unless the caller is in it or an admin)."""
    if query["group"] is None:
        group_ids = tuple(member.group_id for member in user["groups"]) if query["scope"] == "group" else ()
        return user["id"], group_ids
    return None, ((await group_of(user, query["group"])).group_id,)


async def owned(request, user, read, key, what, action="read"):
    """The row that read(id) finds for the path's id `key` if the user may `action` it
    (auth.may); else 404 "<what> not found.", not telling whether it exists."""
    row = await run_in_threadpool(read, path_id(request, key, what))
    if row is None or not auth.may(user, row, action):
        raise HTTPException(404, f"{what} not found.")
    return row


async def owned_job(request, user, action="read"):
    return await owned(request, user, store.get_job, "job_id", "Job", action)


async def job(request):
    """GET a job (with long polling) or DELETE it: one route, so 405 names both methods."""
    user = await current_user(request)
    row = await owned_job(request, user, "delete" if request.method == "DELETE" else "read")
    if request.method == "DELETE":
        await stop_job(request.app.state, row["id"])
        await run_in_threadpool(jobs.delete, row)
        logger.info("job %s deleted by user %s", row["id"], user["id"])
        await audit_others(request, user, row, "job_deleted", "job")
        return Response(status_code=204)
    # Checked even without long polling: the gemseo-http client always sends its timeout.
    query = contract.query(request)
    if query["long_polling"]:
        timeout = min(query["long_polling_timeout"], settings.MAX_LONG_POLLING_TIMEOUT)
        if row["job_status"] not in store.ENDED and await request.app.state.watcher.wait(("job", row["id"]), timeout):
            row = await owned_job(request, user)
    return Response(wire.job_json(row), media_type="application/json")


async def list_jobs(request):
    user = await current_user(request)
    query = contract.query(request)
    status, limit, offset, batch_id = query["status"], query["limit"], query["offset"], query["batch_id"]
    filters = {key: query[key] or None for key in ("discipline", "name", "error", "not_error")}
    filters["cached"] = query["cached"]
    user_id, group_ids = await list_scope(user, query)
    rows, total = await run_in_threadpool(store.list_jobs, user_id, status, limit, offset, batch_id, **filters, group_ids=group_ids)
    return JSONResponse([wire.job_entry(row) for row in rows], headers={"X-Total-Count": str(total)})


async def job_files(request):
    user = await current_user(request)
    row = await owned_job(request, user)
    return JSONResponse(await run_in_threadpool(files.file_tree, Path(row["workdir"])))


async def download(request):
    user = await current_user(request)
    row = await owned_job(request, user)
    name = contract.query(request)["filename"]
    handle = await run_in_threadpool(files.open_in, row["workdir"], name)
    headers = {
        "Content-Length": str(os.fstat(handle.fileno()).st_size),
        "Content-Disposition": f"attachment; filename*=utf-8''{quote(Path(name).name)}",
    }
    return StreamingResponse(files.read_chunks(handle), media_type="application/octet-stream", headers=headers)


async def job_log(request):
    """What the job printed, streamed; `tail=N` gives its last N bytes, from a line start."""
    user = await current_user(request)
    row = await owned_job(request, user)
    tail = contract.query(request)["tail"]
    try:
        handle = await run_in_threadpool(files.open_in, row["workdir"], files.LOG_NAME)
    except Rejected:
        return PlainTextResponse(files.cache_note(row["cached_from"]) if row["cached_from"] is not None else "")
    start = await run_in_threadpool(files.tail_start, handle, tail)
    return StreamingResponse(files.read_chunks(handle, start), media_type="text/plain; charset=utf-8")


async def cancel_job(request):
    user = await current_user(request)
    row = await owned_job(request, user, "cancel")
    await stop_job(request.app.state, row["id"], refuse_ended=True)
    await audit_others(request, user, row, "job_cancelled", "job")
    row = await owned_job(request, user)
    return Response(wire.job_json(row), media_type="application/json")


# Uploaded files


async def list_files(request):
    user = await current_user(request)
    return JSONResponse([wire.file_entry(row) for row in await run_in_threadpool(store.list_files, user["id"])])


async def upload(request):
    user = await current_user(request)
    async with request.form(max_files=100, max_part_size=1024 * 1024) as form:
        fields = contract.form(request, form)
        chunk, total, upload_id = fields["chunk_number"], fields["total_chunks"], (fields["upload_id"] or "")[:100]
        parts = [part for part in form.getlist("files") if hasattr(part, "read")]
        results = await run_in_threadpool(files.save_upload, user["id"], upload_id, parts, chunk, total)
    if results is None:
        return JSONResponse({"next_chunk": chunk + 1, "total_chunks": total})
    return JSONResponse(results)


# Teams: personal access tokens, groups, admin routes (API.md Part 6)


def access_token_entry(row):
    return {
        "id": row["id"],
        "name": row["name"],
        "created_at": wire.iso(row["created_at"]),
        "expires_at": wire.iso(row["expires_at"]),
        "last_used_at": wire.iso(row["last_used_at"]),
    }


async def user_tokens(request):
    """GET the caller's personal access tokens (never their secrets), or POST a new one: its
    secret is in this answer only."""
    user = await current_user(request)
    if request.method == "GET":
        rows = await run_in_threadpool(store.list_access_tokens, user["id"])
        return JSONResponse([access_token_entry(row) for row in rows])
    body = contract.body(request, await json_body(request))
    secret, hashed = auth.new_access_token()
    expires_at = time.time() + body.get("expires_in_days", DEFAULT_TOKEN_DAYS) * 86400
    row = await run_in_threadpool(store.add_access_token, user["id"], body["name"], hashed, expires_at)
    await audit(request, user["username"], "token_created", f"access token {row['id']}", body["name"])
    return JSONResponse({**access_token_entry(row), "token": secret}, status_code=201)


async def user_token(request):
    """DELETE one of the caller's access tokens: it stops at once here, within
    USER_CACHE_SECONDS on every other web process."""
    user = await current_user(request)
    row = await run_in_threadpool(store.delete_access_token, user["id"], path_id(request, "token_id", "Access token"))
    if row is None:
        raise HTTPException(404, "Access token not found.")
    request.app.state.access_tokens.pop(row["token_hash"], None)
    request.app.state.access_tokens.pop(row["id"], None)
    await audit(request, user["username"], "token_revoked", f"access token {row['id']}", row["name"])
    return Response(status_code=204)


async def my_groups(request):
    user = await current_user(request)
    rows = await run_in_threadpool(store.user_groups, user["id"])
    return JSONResponse([{"name": row["name"], "role": row["role"]} for row in rows])


async def admin_user(request):
    """The caller if an admin: 401 anonymous, 403 for everyone else."""
    user = await current_user(request)
    if not user["is_admin"]:
        raise HTTPException(403, "Only administrators may use this route.")
    return user


def user_entry(row):
    return {
        "id": row["id"],
        "username": row["username"],
        "is_admin": bool(row["is_admin"]),
        "directory": bool(row["directory"]),
        "created_at": wire.iso(row["created_at"]),
    }


async def admin_users(request):
    """GET every user; POST creates a user (with a password, or for the directory when none is
    given) or changes one's password or admin flag; DELETE ?username= removes one with their work."""
    admin = await admin_user(request)
    if request.method == "GET":
        return JSONResponse([user_entry(row) for row in await run_in_threadpool(store.list_users)])
    if request.method == "DELETE":
        name = contract.query(request)["username"]
        user = await run_in_threadpool(store.user_by_name, name)
        if user is None:
            raise HTTPException(404, "User not found.")
        if user["id"] == admin["id"]:
            raise HTTPException(409, "An administrator cannot delete their own account.")
        removed = await run_in_threadpool(jobs.delete_user, user)
        await audit(request, admin["username"], "user_deleted", name, f"{removed['jobs']} jobs, {removed['files']} files")
        return Response(status_code=204)
    body = contract.body(request, await json_body(request))
    name, password = body["username"], body.get("password")
    hashed = await run_in_threadpool(auth.hash_password, password) if password else None

    def write():
        before, created = store.user_by_name(name), False
        if before is None:
            try:
                store.add_user(name, hashed or auth.DIRECTORY_USER)
                created = True
            except store.NameTaken:  # made meanwhile: changed below like any other
                before = store.user_by_name(name)
        if hashed and not created:
            store.set_password(name, hashed)
        if "is_admin" in body:
            store.set_admin(name, body["is_admin"])
        was_admin = bool(before and before["is_admin"])
        return created, was_admin, next(row for row in store.list_users() if row["username"] == name)

    created, was_admin, row = await run_in_threadpool(write)
    if created:
        await audit(request, admin["username"], "user_created", name, "password" if hashed else "directory")
    elif hashed:
        await audit(request, admin["username"], "password_set", name)
    if bool(row["is_admin"]) != was_admin:
        await audit(request, admin["username"], "admin_set", name, "on" if row["is_admin"] else "off")
    return JSONResponse(user_entry(row), status_code=201 if created else 200)


async def admin_groups(request):
    """GET every group with its number of members; POST {"name"} creates one; DELETE ?name=
    removes one with its memberships."""
    admin = await admin_user(request)
    if request.method == "GET":
        rows = await run_in_threadpool(store.list_groups)
        return JSONResponse([{"name": row["name"], "members": row["members"], "created_at": wire.iso(row["created_at"])} for row in rows])
    if request.method == "DELETE":
        name = contract.query(request)["name"]
        if not await run_in_threadpool(store.delete_group, name):
            raise HTTPException(404, "Group not found.")
        await audit(request, admin["username"], "group_deleted", name)
        return Response(status_code=204)
    name = contract.body(request, await json_body(request))["name"]
    try:
        await run_in_threadpool(store.add_group, name)
    except store.NameTaken:
        raise HTTPException(409, f"A group named {name!r} exists.") from None
    await audit(request, admin["username"], "group_created", name)
    return JSONResponse({"name": name, "members": 0}, status_code=201)


async def admin_members(request):
    """GET a group's members and roles; POST {"username", "role"} adds one or changes the role;
    DELETE ?username= takes one out."""
    admin = await admin_user(request)
    group = request.path_params["name"]
    if request.method == "GET":
        rows = await run_in_threadpool(store.group_members, group)
        if rows is None:
            raise HTTPException(404, "Group not found.")
        return JSONResponse([{"username": row["username"], "role": row["role"]} for row in rows])
    if request.method == "DELETE":
        name = contract.query(request)["username"]
        if not await run_in_threadpool(store.remove_member, group, name):
            raise HTTPException(404, "No such member of that group.")
        request.app.state.users.clear()  # here at once, elsewhere within USER_CACHE_SECONDS
        await audit(request, admin["username"], "member_removed", f"{group}/{name}")
        return Response(status_code=204)
    body = contract.body(request, await json_body(request))
    before = await run_in_threadpool(store.set_member, group, body["username"], body["role"])
    if before is None:
        raise HTTPException(404, "No such group or user.")
    request.app.state.users.clear()
    await audit(request, admin["username"], "member_set", f"{group}/{body['username']}", f"{before or 'none'} -> {body['role']}")
    return JSONResponse({"username": body["username"], "role": body["role"]})


async def admin_audit(request):
    await admin_user(request)
    query = contract.query(request)
    rows, total = await run_in_threadpool(
        store.list_audit, query["limit"], query["offset"], query["action"] or None, query["actor"] or None
    )
    entries = [
        {"id": row["id"], "time": wire.iso(row["at"]), **{key: row[key] for key in ("actor", "action", "target", "address", "detail")}}
        for row in rows
    ]
    return JSONResponse(entries, headers={"X-Total-Count": str(total)})


# Health


async def health(request):
    """The service's health, without a token. Where the store lives, the raw errors and which
    process answered are for the machine itself (or its proxy's trusted clients) only."""
    healthy, report = await run_in_threadpool(metrics.health, worker.huey)
    pools = request.app.state.pool.status()
    report["pools"] = {"web": pools}
    if pools["failing"] and not pools["processes"]:
        healthy = False
        report["status"] = "unhealthy"
        report["reason"] = "; ".join(filter(None, [report.get("reason"), f"web pool: {pools['failing']}"]))
    if not from_loopback(request):
        report = metrics.public_health(report)
    else:
        report["web_process"] = OWNER_ID
    return JSONResponse(report, status_code=200 if healthy else 503)


def from_loopback(request):
    """Whether the request comes from this machine itself, not through a proxy: behind one, the
    client address is what X-Forwarded-For claims, and a client can claim 127.0.0.1."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except (AttributeError, ValueError):
        return False


async def prometheus(request):
    counts = await run_in_threadpool(request.app.state.counter.totals)
    text = await run_in_threadpool(metrics.render, worker.huey, counts)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


# API description and pages


async def openapi_json(request):
    state = request.app.state
    if state.openapi is None:
        state.openapi = openapi.document([route for route in routes if isinstance(route, Route)], UNDOCUMENTED)
    return JSONResponse(state.openapi)


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

    One task per process asks the store's change feed every few milliseconds whether anything
    was committed (SQLite's data_version, or what PostgreSQL's NOTIFY put on the socket: no
    query), and reads the waited jobs only then. A failure of the feed is logged and the
    feed opened again: waiting clients must not silently wait for their full timeout.
    """

    INTERVAL = 0.002

    def __init__(self):
        self.waiters = {}
        self.task = None
        self.dirty = True
        self.feed = None

    async def wait(self, key, timeout):
        """Wait until the job ("job", id) or every point of the batch ("batch", id) has ended,
        or a study has an evaluation above `since` or has ended ("history", (id, since)), or the
        timeout passes; return whether it happened."""
        event = asyncio.Event()
        self.waiters.setdefault(key, set()).add(event)
        self.dirty = True
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run())
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            events = self.waiters.get(key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self.waiters[key]

    async def run(self):
        while self.waiters:
            try:
                await self.follow()
            except Exception:
                logger.exception("the long-polling watcher failed; starting it again")
                self.dirty = True
                await asyncio.sleep(0.1)

    async def follow(self):
        remote = store.current().remote
        if self.feed is None:
            # Kept open between waits: a new PostgreSQL connection costs milliseconds (TLS, SCRAM).
            self.feed = await run_in_threadpool(store.feed) if remote else store.feed()
        feed, version = self.feed, None
        try:
            while self.waiters:
                current = feed.version()
                if current != version or self.dirty:
                    version, self.dirty = current, False
                    keys = list(self.waiters)
                    # A query over the network runs in a thread: the loop serves requests meanwhile.
                    ended = await run_in_threadpool(self.ended, feed, keys) if remote else self.ended(feed, keys)
                    for key in ended:
                        for event in self.waiters.get(key, ()):
                            event.set()
                await asyncio.sleep(self.INTERVAL)
        except BaseException:
            self.feed = None
            feed.close()
            raise

    def drain(self):
        """Read what the kept feed received while nobody waited: PostgreSQL keeps every
        notification until its listeners have read it, and its queue is finite."""
        if self.feed is not None and (self.task is None or self.task.done()):
            try:
                self.feed.version()
            except Exception:
                self.feed, feed = None, self.feed
                feed.close()
                raise

    @staticmethod
    def ended(feed, keys):
        ended = [("job", job_id) for job_id in feed.ended_among([i for kind, i in keys if kind == "job"])]
        ended += [("history", i) for i in feed.histories_ready([i for kind, i in keys if kind == "history"])]
        return ended + [("batch", i) for i in feed.batches_ended_among([i for kind, i in keys if kind == "batch"])]


# Errors, in one place


def error_response(status, detail, headers=None):
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def rejected(request, error):
    return error_response(error.status, error.detail, error.headers)


async def http_error(request, error):
    return error_response(error.status_code, error.detail, getattr(error, "headers", None))


class ServerErrors:
    """ASGI middleware: any other exception becomes a JSON 500, logged once with its traceback
    (Starlette's own 500 handler logs nothing but re-raises, and the server logs it again), or a
    503 with Retry-After when it says that the store or the queue is out of reach."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        started = False

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as error:
            if scope["type"] != "http" or started:
                raise  # too late for an answer: the server logs it and drops the connection
            backend = errors.unavailable(error)
            if backend:
                logger.warning("%s on %s %s: %s", backend, scope["method"], scope["path"], str(error).strip())
                detail = f"{backend[0].upper()}{backend[1:]} is unavailable; try again."
                response = error_response(503, detail, {"Retry-After": str(errors.RETRY_AFTER)})
            else:
                logger.exception("error on %s %s", scope["method"], scope["path"])
                response = error_response(500, "Internal server error; the administrator can read the log.")
            await response(scope, receive, send)


# The app


async def housekeeping(state):
    """Beat this app's heart, end the jobs of processes that vanished, and queue again the jobs
    whose task was lost."""
    sweeper = jobs.Sweeper(worker.enqueue, worker.queued_job_ids, OWNER_ID)
    while True:
        try:
            await run_in_threadpool(store.beat, OWNER_ID)
            await run_in_threadpool(state.counter.flush)
            await run_in_threadpool(state.sign_in.forget_old)
            await run_in_threadpool(sweeper.sweep)
            state.watcher.drain()
        except Exception as error:
            if errors.unavailable(error):  # a line, not a traceback every beat while it is down
                logger.warning("housekeeping: %s is unavailable: %s", errors.unavailable(error), str(error).strip())
            else:
                logger.exception("housekeeping failed")
        await asyncio.sleep(settings.HEARTBEAT_INTERVAL)


def init_state(state):
    """This web app process's state on app.state, but for its warm processes (the lifespan starts
    them): caches, the sign-in guard, the long-polling watcher and the request counter."""
    state.slots = asyncio.Semaphore(settings.SYNC_PROCESSES)  # one per warm process: waits are on the loop
    state.sign_in = auth.SignInGuard()
    state.watcher = Watcher()
    state.catalogue = state.algorithms = state.openapi = None
    state.descriptions, state.classes, state.users, state.tokens = OrderedDict(), {}, {}, {}
    state.access_tokens, state.proxy_users = {}, {}
    state.counter = metrics.RequestCounter({route.endpoint: route.path for route in routes if isinstance(route, Route)})
    return state


@contextlib.asynccontextmanager
async def lifespan(app):
    jobs.setup_logging()
    await run_in_threadpool(worker.init)
    store.start_checkpoints()
    auth.secret_key()
    auth.check_group_map()
    state = init_state(app.state)
    state.pool = pool.Pool(settings.SYNC_PROCESSES, "web", OWNER_ID)
    state.pool.start()
    task = asyncio.create_task(housekeeping(state))
    logger.info("gaas web app %s serving, root %s", OWNER_ID, settings.ROOT_PATH)
    try:
        yield
    finally:
        task.cancel()
        state.pool.close()
        await run_in_threadpool(state.counter.flush)
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
    Route("/v1/algorithms", list_algorithms, methods=["GET"]),
    Route("/v1/discipline", list_disciplines, methods=["GET"]),
    Route("/v1/discipline/{name}", discipline_class, methods=["GET"]),
    Route("/v1/discipline/{name}/execute", execute, methods=["POST"]),
    Route("/v1/discipline/{name}/batch", submit_batch, methods=["POST"]),
    Route("/v1/discipline/{name}/{what}", description_part, methods=["POST"]),
    Route("/v1/job", list_jobs, methods=["GET"]),
    Route("/v1/job/{job_id}", job, methods=["GET", "DELETE"]),
    Route("/v1/job/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/v1/job/{job_id}/files", job_files, methods=["GET"]),
    Route("/v1/job/{job_id}/files/download", download, methods=["GET"]),
    Route("/v1/job/{job_id}/log", job_log, methods=["GET"]),
    Route("/v1/batch", list_batches, methods=["GET"]),
    Route("/v1/batch/{batch_id}", batch, methods=["GET", "DELETE"]),
    Route("/v1/batch/{batch_id}/cancel", cancel_batch, methods=["POST"]),
    Route("/v1/batch/{batch_id}/results", batch_results, methods=["GET"]),
    Route("/v1/study", studies, methods=["GET", "POST"]),
    Route("/v1/study/{study_id}", one_study, methods=["GET", "DELETE"]),
    Route("/v1/study/{study_id}/cancel", cancel_study, methods=["POST"]),
    Route("/v1/study/{study_id}/history", study_history, methods=["GET"]),
    Route("/v1/file", list_files, methods=["GET"]),
    Route("/v1/file/upload", upload, methods=["POST"]),
    # Teams
    Route("/v1/user/me/tokens", user_tokens, methods=["GET", "POST"]),
    Route("/v1/user/me/tokens/{token_id}", user_token, methods=["DELETE"]),
    Route("/v1/group", my_groups, methods=["GET"]),
    Route("/v1/admin/users", admin_users, methods=["GET", "POST", "DELETE"]),
    Route("/v1/admin/groups", admin_groups, methods=["GET", "POST", "DELETE"]),
    Route("/v1/admin/groups/{name}/members", admin_members, methods=["GET", "POST", "DELETE"]),
    Route("/v1/admin/audit", admin_audit, methods=["GET"]),
]
# Pages, not API operations: left out of the OpenAPI document.
UNDOCUMENTED = ("/", "/openapi.json", "/docs")


exception_handlers = {Rejected: rejected, HTTPException: http_error}
app = Starlette(
    routes=routes,
    exception_handlers=exception_handlers,
    lifespan=lifespan,
    middleware=[
        Middleware(RealPeer),
        # Here rather than in uvicorn (bin/run_server.sh: --no-proxy-headers): RealPeer first.
        Middleware(ProxyHeadersMiddleware, trusted_hosts=settings.FORWARDED_ALLOW_IPS),
        Middleware(metrics.CountRequests),
        Middleware(ServerErrors),
        Middleware(BodyLimit, limits={"/token": TOKEN_BODY_LIMIT}),
    ],
)
