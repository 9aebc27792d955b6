"""The OpenAPI 3 description, built from the app's routes table and the operations below.

Every (method, path) of the routes table must have an operation here: document() raises
otherwise, and a test builds the document, so a new route cannot go undocumented.
"""

from copy import deepcopy

import files
import jobs
import settings
import store

# What the server accepts, written once: contract.py compiles the request schemas below into the
# checks of the requests, so the document and the checks cannot differ.
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
MAX_PAGE = 1000
MAX_INTEGER = jobs.MAX_INTEGER
# The parts of a discipline's description, each one a route.
DESCRIPTION_PARTS = ("input_names", "output_names", "inputs_schema", "outputs_schema", "default_input_data")
# A limit that comes from a setting names it (an OpenAPI extension), so that a refusal can say which.
MAX_SAMPLES = {"maximum": settings.MAX_BATCH_SAMPLES, "x-setting": "GEMSEO_HTTP_MAX_BATCH_SAMPLES"}

ERROR = {"$ref": "#/components/schemas/Error"}
# A name, a filter or an upload id: text without control characters. None needs them, and
# PostgreSQL refuses NUL in its text columns.
PLAIN_TEXT = {"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]*$"}
ACCOUNT_NAME = {"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$", "description": "1 to 64 letters, digits or . _ @ -"}
# Submitted into a group: its members read it, its owners also cancel and delete it (Part 6).
SHARE_GROUP = {**ACCOUNT_NAME, "description": "A group the caller is a member or owner of: shared with it."}
NAMES = {"type": "array", "items": {"type": "string"}}
VALUE = {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "array", "items": {}}]}
DATA = {"type": "object", "additionalProperties": VALUE}

EXECUTE_PROPERTIES = {
    "name": PLAIN_TEXT,
    "discipline_options": {"type": "object"},
    "input_data": DATA,
    "input_data_type": {"type": "string", "enum": ["json"]},
    "input_files": {"type": "array", "items": {"$ref": "#/components/schemas/FileReference"}},
    "linearize": {"type": "boolean"},
    "linearization_mode": {"type": "string", "enum": list(LINEARIZATION_MODES)},
    "linearize_options": {"type": "object"},
    "differentiated_inputs": NAMES,
    "differentiated_outputs": NAMES,
    "timeout": {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "description": "Seconds; capped by GEMSEO_HTTP_JOB_TIMEOUT.",
    },
    "group": SHARE_GROUP,
    "cache": {
        "type": "boolean",
        "description": "Whether to take the results of an earlier identical job (default true; the server's"
        " GEMSEO_HTTP_CACHE decides whose). False always runs.",
    },
}

NUMBERS = {"type": "array", "minItems": 1, "items": {"type": "number"}}
CLASS_PROVENANCE = {
    "type": "object",
    "properties": {
        "class_name": {"type": "string"},
        "module": {"type": "string"},
        "code_sha256": {"type": "string", "description": "SHA-256 of the bytes of the files that define the class."},
        "distribution": {"type": "string", "nullable": True, "description": "NAME VERSION; null for a plugin on GEMSEO_PATH."},
    },
}


def design_space(**more):
    """A design space: bounds of each variable, and `more` properties."""
    variable = {"lower_bound": NUMBERS, "upper_bound": NUMBERS, **more}
    return {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": {
            "type": "object",
            "additionalProperties": False,
            "required": ["lower_bound", "upper_bound"],
            "properties": variable,
        },
    }


SETTINGS = {"type": "object", "description": "Settings of GEMSEO's own settings model; plain values only."}
NAMED_WITH_SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "settings": SETTINGS},
}
STATUS = {"type": "string", "enum": ["pending", "running", "finished", "failed"]}
TIME = {"type": "string", "format": "date-time", "nullable": True}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string", "description": "What went wrong, for a human."}},
    },
    "Token": {
        "type": "object",
        "properties": {"access_token": {"type": "string"}, "token_type": {"type": "string", "enum": ["bearer"]}},
    },
    "User": {"type": "object", "properties": {"id": {"type": "integer"}, "username": {"type": "string"}}},
    "File": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "filename": {"type": "string", "description": "The client's file name, reduced to a base name."},
            "unique_filename": {"type": "string"},
            "sha256sum": {"type": "string"},
            "user_id": {"type": "integer"},
            "size": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "DisciplineClass": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string", "description": "The first paragraph of the class docstring."},
            "options_required": {"type": "boolean", "description": "Whether discipline_options must be given."},
            "parameters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "required": {"type": "boolean"},
                        "default": {},
                        "type": {"type": "string"},
                    },
                },
            },
        },
    },
    "DisciplineOptions": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"discipline_options": {"type": "object", "description": "Constructor arguments."}},
    },
    "FileReference": {
        "type": "object",
        "description": "A File returned by the upload; its id (or unique_filename) names it.",
        "properties": {
            "id": {"type": "integer", "minimum": 1, "maximum": MAX_INTEGER},
            "unique_filename": PLAIN_TEXT,
        },
        "anyOf": [{"required": ["id"]}, {"required": ["unique_filename"]}],
    },
    "ExecuteInput": {
        "type": "object",
        "additionalProperties": False,
        "properties": EXECUTE_PROPERTIES,
    },
    "BatchInput": {
        "type": "object",
        "additionalProperties": False,
        "description": "The fields of ExecuteInput shared by every point, and exactly one of samples and doe.",
        "oneOf": [{"required": ["samples"], "not": {"required": ["doe"]}}, {"required": ["doe"], "not": {"required": ["samples"]}}],
        "properties": {
            **EXECUTE_PROPERTIES,
            "samples": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SAMPLES["maximum"],
                "x-setting": MAX_SAMPLES["x-setting"],
                "items": DATA,
                "description": "One object of input values per point; they override input_data.",
            },
            "doe": {
                "type": "object",
                "additionalProperties": False,
                "required": ["algo_name", "design_space"],
                "properties": {
                    "algo_name": {"type": "string", "description": "A DOE algorithm listed by GET /v1/algorithms: PYDOE_LHS, OT_SOBOL, LHS..."},
                    "n_samples": {
                        "type": "integer",
                        "minimum": 1,
                        **MAX_SAMPLES,
                        "description": "Needed by most algorithms; a full factorial may take `levels` in settings instead.",
                    },
                    "design_space": design_space(),
                    "settings": {"type": "object", "description": "Settings of the algorithm, e.g. random_state."},
                },
            },
        },
    },
    "Batch": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "discipline_class_name": {"type": "string"},
            "user_id": {"type": "integer"},
            "owner": {"type": "string", "description": "The user name of its owner."},
            "group": {"type": "string", "nullable": True, "description": "The group it is shared with."},
            "n_samples": {"type": "integer"},
            "counts": {
                "type": "object",
                "properties": {status: {"type": "integer"} for status in ("pending", "running", "finished", "failed")},
            },
            "batch_status": {"type": "string", "enum": ["pending", "running", "finished", "failed"]},
            "design": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": "string", "format": "date-time", "nullable": True},
            "ended_at": {"type": "string", "format": "date-time", "nullable": True},
        },
    },
    "StudyInput": {
        "type": "object",
        "additionalProperties": False,
        "description": "A GEMSEO scenario over disciplines of the catalogue (API.md Part 4).",
        "required": ["disciplines", "formulation", "design_space", "objective", "algorithm"],
        "properties": {
            "name": PLAIN_TEXT,
            "disciplines": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["class_name"],
                    "properties": {"class_name": {"type": "string"}, "options": {"type": "object", "description": "Constructor arguments."}},
                },
            },
            "formulation": {"type": "string", "description": "MDF, IDF, DisciplinaryOpt, BiLevel..."},
            "formulation_settings": SETTINGS,
            "design_space": design_space(value=NUMBERS),
            "objective": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "maximize": {"type": "boolean"}},
            },
            "constraints": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "type": {"type": "string", "enum": ["ineq", "eq"]}},
                },
            },
            "observables": NAMES,
            "algorithm": {**NAMED_WITH_SETTINGS, "description": "An optimisation or DOE algorithm listed by GET /v1/algorithms."},
            "input_data": DATA,
            "post_processing": {"type": "array", "items": NAMED_WITH_SETTINGS},
            "timeout": EXECUTE_PROPERTIES["timeout"],
            "group": SHARE_GROUP,
            "cache": {
                "type": "boolean",
                "description": "Whether its disciplines take the results of earlier identical evaluations (jobs, batches,"
                " studies; default true). False runs every one; its results are offered to later ones all the same.",
            },
        },
    },
    "Study": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "user_id": {"type": "integer"},
            "owner": {"type": "string", "description": "The user name of its owner."},
            "group": {"type": "string", "nullable": True, "description": "The group it is shared with."},
            "job_id": {"type": "integer", "description": "Its job: log, files (problem.h5, images)."},
            "study_status": STATUS,
            "error": {"type": "string"},
            "message": {"type": "string"},
            "formulation": {"type": "string"},
            "algorithm": {"type": "object"},
            "objective": {"type": "object"},
            "disciplines": {"type": "array", "items": {"type": "object"}},
            "formulation_settings": {"type": "object"},
            "design_space": {"type": "object"},
            "constraints": {"type": "array", "items": {"type": "object"}},
            "observables": {"type": "array", "items": {"type": "string"}},
            "input_data": {"type": "object"},
            "post_processing": {"type": "array", "items": {"type": "object"}},
            "timeout": {"type": "number", "nullable": True},
            "n_evaluations": {"type": "integer"},
            "best": {
                "type": "object",
                "description": "The best feasible evaluation so far, else the least infeasible.",
                "properties": {
                    "evaluation": {"type": "integer"},
                    "x": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "number"}}},
                    "objective": {"type": "number", "nullable": True},
                    "constraints": {"type": "object"},
                    "feasible": {"type": "boolean"},
                },
            },
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": TIME,
            "ended_at": TIME,
        },
    },
    "History": {
        "type": "object",
        "properties": {
            "evaluation": {"type": "array", "items": {"type": "integer"}},
            "x": {"type": "object", "additionalProperties": {"type": "array"}},
            "functions": {"type": "object", "additionalProperties": {"type": "array"}},
            "feasible": {"type": "array", "items": {"type": "boolean"}},
        },
    },
    "Algorithms": {
        "type": "object",
        "properties": {
            kind: {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "settings": {
                            "type": "object",
                            "description": "The settings a client may give, from GEMSEO's settings model.",
                            "additionalProperties": {
                                "type": "object",
                                "properties": {
                                    "type": {"type": "string", "description": "A JSON type, or types joined by |."},
                                    "default": {},
                                    "required": {"type": "boolean"},
                                    "description": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            }
            for kind in ("doe", "optimization")
        },
    },
    "BatchResults": {
        "type": "object",
        "properties": {
            "job_id": {"type": "array", "items": {"type": "integer"}},
            "job_status": {"type": "array", "items": {"type": "string"}},
            "error": {"type": "array", "items": {"type": "string"}},
            "input_data": {"type": "object", "additionalProperties": {"type": "array"}},
            "output_data": {"type": "object", "additionalProperties": {"type": "array"}},
        },
    },
    "JobEntry": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "user_id": {"type": "integer"},
            "owner": {"type": "string", "description": "The user name of its owner."},
            "group": {"type": "string", "nullable": True, "description": "The group it is shared with."},
            "name": {"type": "string"},
            "discipline_class_name": {"type": "string"},
            "job_type": {"type": "string", "enum": ["execute", "execute_and_linearize", "study"]},
            "study_id": {"type": "integer", "nullable": True, "description": "The study a job of type study runs."},
            "job_status": {"type": "string", "enum": list(store.STATUSES)},
            "execution_mode": {"type": "string", "enum": ["synchronous", "asynchronous"]},
            "error": {
                "type": "string",
                "description": "For a failed job: cancelled, timeout, crashed, lost, memory, enqueue, internal,"
                " or the type of the exception the discipline raised.",
            },
            "message": {
                "type": "string",
                "description": "For a failed job, the line that says why: the exception's message (last line of the traceback).",
            },
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": "string", "format": "date-time", "nullable": True},
            "ended_at": {"type": "string", "format": "date-time", "nullable": True},
            "timeout": {"type": "number", "nullable": True},
            "workdir": {"type": "string"},
            "linearization_mode": {"type": "string"},
            "traceback": {"type": "string"},
            "cached_from": {
                "type": "integer",
                "nullable": True,
                "description": "For a job that took its results from the cache, the job that computed them.",
            },
        },
    },
    "Job": {
        "allOf": [
            {"$ref": "#/components/schemas/JobEntry"},
            {
                "type": "object",
                "properties": {
                    "discipline_options": {"type": "object"},
                    "linearize_options": {"type": "object"},
                    "differentiated_inputs": NAMES,
                    "differentiated_outputs": NAMES,
                    "input_files": {"type": "array", "items": {"$ref": "#/components/schemas/File"}},
                    "input_data": DATA,
                    "output_data": DATA,
                    "provenance": {
                        "type": "object",
                        "nullable": True,
                        "description": "Where the results come from (null until the job ran): versions, host,"
                        " the discipline's code and the inputs' digests.",
                        "properties": {
                            "gaas": {"type": "string"},
                            "gemseo": {"type": "string", "nullable": True},
                            "python": {"type": "string"},
                            "host": {"type": "string"},
                            "inputs_sha256": {"type": "string"},
                            "discipline": CLASS_PROVENANCE,
                            "disciplines": {
                                "type": "array",
                                "items": CLASS_PROVENANCE,
                                "description": "A study's job: the classes of its disciplines.",
                            },
                        },
                    },
                    "jacobian_data": {
                        "type": "object",
                        "additionalProperties": {"type": "object", "additionalProperties": {"type": "array", "items": {}}},
                    },
                },
            },
        ]
    },
}


def json_body(schema):
    return {"content": {"application/json": {"schema": schema}}}


def answer(description, schema=None, media="application/json"):
    result = {"description": description}
    if schema is not None:
        result["content"] = {media: {"schema": schema}}
    return result


# Any operation that reads or writes the store may answer it, while PostgreSQL or Redis is down.
UNAVAILABLE = "The store or the queue is unavailable, or the queue could not take the job; see Retry-After."


def errors(*codes):
    texts = {
        400: "Malformed request (bad JSON, bad discipline options, bad path).",
        401: "Missing, invalid or expired token.",
        403: "The discipline exists but the administrator has not enabled it (GEMSEO_HTTP_ENABLED_DISCIPLINES).",
        404: "Unknown, or not yours.",
        409: "Conflict with the current state.",
        413: "The body is larger than GEMSEO_HTTP_MAX_BODY_MB.",
        422: "A field or query parameter of the wrong type; the detail names it.",
        429: "Too many failed sign-ins for this user name from this address; see Retry-After.",
        503: UNAVAILABLE,
    }
    return {str(code): answer(texts[code], ERROR) for code in codes}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def query(name, schema, description, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def path_parameter(name, schema):
    return {"name": name, "in": "path", "required": True, "schema": schema}


ID = {"type": "integer", "minimum": 1, "maximum": MAX_INTEGER}
JOB_ID = path_parameter("job_id", ID)
NAME = path_parameter("name", PLAIN_TEXT)
WHAT = {
    "name": "what",
    "in": "path",
    "required": True,
    "schema": {
        "type": "string",
        "enum": list(DESCRIPTION_PARTS),
    },
}
# Where a job's id leads (also how schemathesis reaches the job routes with real ids).
JOB_LINKS = {
    operation: {"operationId": operation, "parameters": {"job_id": "$response.body#/id"}}
    for operation in ("get_job", "delete_job", "post_cancel_job", "get_job_files", "get_job_log", "get_download")
}
BATCH_ID = path_parameter("batch_id", ID)
BATCH_LINKS = {
    operation: {"operationId": operation, "parameters": {"batch_id": "$response.body#/id"}}
    for operation in ("get_batch", "delete_batch", "post_cancel_batch", "get_batch_results")
}
STUDY_ID = path_parameter("study_id", ID)
STUDY_LINKS = {
    operation: {"operationId": operation, "parameters": {"study_id": "$response.body#/id"}}
    for operation in ("get_one_study", "delete_one_study", "post_cancel_study", "get_study_history")
}
PAGE = (
    query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}, "Page size."),
    query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER, "default": 0}, "Entries to skip."),
)
# Whose entries a list shows: the caller's, or those shared with the caller's groups, or one group's.
SCOPE = (
    query("scope", {"type": "string", "enum": ["mine", "group"], "default": "mine"}, "mine, or group: own and shared with any of one's groups."),
    query("group", ACCOUNT_NAME, "Only those shared with this group (the caller's)."),
)
LONG_POLLING = query("long_polling", {"type": "boolean", "default": False}, "Wait for the end (see the summary).")
LONG_POLLING_TIMEOUT = query(
    "long_polling_timeout",
    {"type": "number", "minimum": 0, "default": 100},
    "Longest wait in seconds (decimals allowed), capped by GEMSEO_HTTP_MAX_LONG_POLLING_TIMEOUT.",
)


def one_of_mine(kind, parameter, schema, removed, kept=""):
    """The GET (with long polling), DELETE and cancel operations of a job or a study."""
    path = f"/v1/{kind}/{{{parameter['name']}}}"
    return {
        ("GET", path): {
            "summary": f"A {kind}; with long polling, answers as soon as it ends or when the timeout passes.",
            "parameters": [parameter, LONG_POLLING, LONG_POLLING_TIMEOUT],
            "responses": {"200": answer(f"The {kind}.", ref(schema)), **errors(401, 404, 422)},
        },
        ("DELETE", path): {
            "summary": f"Cancel the {kind} if needed, then remove it and {removed}.",
            "parameters": [parameter],
            "responses": {"204": answer("Removed."), **errors(401, 404)},
        },
        ("POST", f"{path}/cancel"): {
            "summary": f"Cancel a pending or running {kind}: it ends failed with error `cancelled`{kept and ', ' + kept}.",
            "parameters": [parameter],
            "responses": {
                "200": answer(f"The cancelled {kind}.", ref(schema)),
                **errors(401, 404),
                "409": answer(f"The {kind} had already ended; nothing changed.", ERROR),
            },
        },
    }


OPTIONS_BODY = {"required": False, **json_body(ref("DisciplineOptions"))}

OPERATIONS = {
    ("POST", "/token"): {
        "summary": "Log in: a bearer token for a user name and password.",
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["username", "password"],
                        "properties": {"username": PLAIN_TEXT, "password": {"type": "string"}},
                    }
                }
            },
        },
        "responses": {"200": answer("The token.", ref("Token")), **errors(401, 422, 429)},
    },
    ("GET", "/health"): {
        "summary": "Health: the store and the queue answer and a worker beat its heart recently.",
        "security": [],
        "responses": {
            "200": answer("Healthy.", {"type": "object"}),
            "503": answer("Unhealthy; `reason` says why.", {"type": "object"}),
        },
    },
    ("GET", "/metrics"): {
        "summary": "Prometheus metrics: jobs by status, queue depth, durations, requests.",
        "security": [],
        "responses": {"200": answer("Prometheus text format.", {"type": "string"}, "text/plain")},
    },
    ("GET", "/v1/user/me/"): {
        "summary": "The caller.",
        "responses": {"200": answer("The user.", ref("User")), **errors(401)},
    },
    ("GET", "/v1/discipline"): {
        "summary": "The discipline classes that may be run.",
        "responses": {"200": answer("Class names.", NAMES), **errors(401)},
    },
    ("GET", "/v1/algorithms"): {
        "summary": "The DOE and optimisation algorithms of this server, with their settings.",
        "responses": {"200": answer("Algorithms by kind.", ref("Algorithms")), **errors(401)},
    },
    ("POST", "/v1/discipline/{name}/execute"): {
        "summary": "Run a discipline: synchronously (200) or as a queued job (202).",
        "parameters": [
            NAME,
            query(
                "execution_mode",
                {"type": "string", "enum": ["synchronous", "asynchronous"], "default": "synchronous"},
                "Answer when finished, or at once with a pending job.",
            ),
        ],
        "requestBody": {"required": False, **json_body(ref("ExecuteInput"))},
        "responses": {
            "200": {**answer("The ended job (finished or failed).", ref("Job")), "links": JOB_LINKS},
            "202": {**answer("The queued job.", ref("Job")), "links": JOB_LINKS},
            **errors(400, 401, 403, 404, 413, 422, 503),
        },
    },
    ("POST", "/v1/discipline/{name}/batch"): {
        "summary": "Evaluate the discipline at many points (samples or a DOE): each point is a job.",
        "parameters": [NAME],
        "requestBody": {"required": True, **json_body(ref("BatchInput"))},
        "responses": {
            "202": {**answer("The recorded and queued batch.", ref("Batch")), "links": BATCH_LINKS},
            **errors(400, 401, 403, 404, 413, 422, 429, 503),
        },
    },
    ("GET", "/v1/batch"): {
        "summary": "The caller's batches, newest first.",
        "parameters": [
            query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}, "Page size."),
            query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER, "default": 0}, "Batches to skip."),
            *SCOPE,
        ],
        "responses": {
            "200": {
                **answer("A page of batches.", {"type": "array", "items": ref("Batch")}),
                "headers": {"X-Total-Count": {"schema": {"type": "integer"}, "description": "The caller's batches."}},
            },
            **errors(401, 403, 404, 422),
        },
    },
    ("GET", "/v1/batch/{batch_id}"): {
        "summary": "A batch with its counts; with long polling, answers when every point has ended.",
        "parameters": [
            BATCH_ID,
            query("long_polling", {"type": "boolean", "default": False}, "Wait for the end of the batch."),
            query("long_polling_timeout", {"type": "number", "minimum": 0, "default": 100}, "Longest wait in seconds."),
        ],
        "responses": {"200": answer("The batch.", ref("Batch")), **errors(401, 404, 422)},
    },
    ("DELETE", "/v1/batch/{batch_id}"): {
        "summary": "Cancel the batch if needed, then remove it with its points and their directories.",
        "parameters": [BATCH_ID],
        "responses": {"204": answer("Removed."), **errors(401, 404)},
    },
    ("POST", "/v1/batch/{batch_id}/cancel"): {
        "summary": "Pending points never start, running ones are stopped.",
        "parameters": [BATCH_ID],
        "responses": {"200": answer("The batch.", ref("Batch")), **errors(401, 404)},
    },
    ("GET", "/v1/batch/{batch_id}/results"): {
        "summary": "The table of points, in their order: JSON columns, or CSV with one column per component.",
        "description": "Streamed from the store. With offset and limit, the table of those points only: its"
        " columns (and each one's number of components in the CSV) are those of these points, and the"
        " CSV's batch_index counts from offset. Every read of one answer sees the same state of the points.",
        "parameters": [
            BATCH_ID,
            query("format", {"type": "string", "enum": ["json", "csv"], "default": "json"}, "json or csv."),
            query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER, "default": 0}, "Points to skip."),
            query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_INTEGER}, "Most points to answer; all by default."),
        ],
        "responses": {
            "200": {
                "description": "The table.",
                "content": {"application/json": {"schema": ref("BatchResults")}, "text/csv": {"schema": {"type": "string"}}},
                "headers": {"X-Total-Count": {"schema": {"type": "integer"}, "description": "Points of the batch."}},
            },
            **errors(401, 404, 422),
        },
    },
    ("POST", "/v1/study"): {
        "summary": "Run a study (an MDO or DOE scenario) as one queued job; checked whole first.",
        "requestBody": {"required": True, **json_body(ref("StudyInput"))},
        "responses": {
            "202": {**answer("The recorded and queued study.", ref("Study")), "links": STUDY_LINKS},
            **errors(400, 401, 403, 404, 413, 422, 429, 503),
        },
    },
    ("GET", "/v1/study"): {
        "summary": "The caller's studies, newest first.",
        "parameters": [*PAGE, *SCOPE],
        "responses": {
            "200": {
                **answer("A page of studies.", {"type": "array", "items": ref("Study")}),
                "headers": {"X-Total-Count": {"schema": {"type": "integer"}, "description": "The caller's studies."}},
            },
            **errors(401, 403, 404, 422),
        },
    },
    **one_of_mine("study", STUDY_ID, "Study", "its evaluations, job and files", "its history kept"),
    ("GET", "/v1/study/{study_id}/history"): {
        "summary": "The evaluations numbered above `since`; with long polling, answers as soon as there is one,"
        " when the study ends, or at the timeout.",
        "parameters": [
            STUDY_ID,
            query("since", {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER, "default": 0}, "The last evaluation already read."),
            query("format", {"type": "string", "enum": ["json", "csv"], "default": "json"}, "json or csv."),
            LONG_POLLING,
            LONG_POLLING_TIMEOUT,
        ],
        "responses": {
            "200": {
                "description": "The evaluations, in order.",
                "content": {"application/json": {"schema": ref("History")}, "text/csv": {"schema": {"type": "string"}}},
            },
            **errors(401, 404, 422),
        },
    },
    ("GET", "/v1/discipline/{name}"): {
        "summary": "What a discipline class is and which constructor options it takes.",
        "parameters": [NAME],
        "responses": {"200": answer("The class.", ref("DisciplineClass")), **errors(401, 403, 404, 422)},
    },
    ("POST", "/v1/discipline/{name}/{what}"): {
        "summary": "Describe a discipline built with the given options: names, schemas or defaults.",
        "parameters": [NAME, WHAT],
        "requestBody": OPTIONS_BODY,
        "responses": {
            "200": answer("A list of names, a JSON Schema, or the default input data.", {}),
            **errors(400, 401, 403, 404, 422),
        },
    },
    ("GET", "/v1/job"): {
        "summary": "The caller's jobs, newest first, without their data fields.",
        "parameters": [
            query("status", {"type": "string", "enum": list(store.STATUSES)}, "Only this status."),
            query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}, "Page size."),
            query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER, "default": 0}, "Jobs to skip."),
            query("batch_id", ID, "Only the points of this batch, in order."),
            query("discipline", PLAIN_TEXT, "Only jobs of this discipline class."),
            query("name", PLAIN_TEXT, "Only jobs whose name contains this text."),
            query("error", PLAIN_TEXT, "Only failed jobs with this error kind, e.g. cancelled."),
            query("not_error", PLAIN_TEXT, "Leave out the jobs with this error kind, e.g. cancelled."),
            query("cached", {"type": "boolean"}, "Only jobs that took their results from the cache (true), or only the others."),
            *SCOPE,
        ],
        "responses": {
            "200": {
                **answer("A page of jobs.", {"type": "array", "items": ref("JobEntry")}),
                "headers": {"X-Total-Count": {"schema": {"type": "integer"}, "description": "Jobs matching the filter."}},
            },
            **errors(401, 403, 404, 422),
        },
    },
    **one_of_mine("job", JOB_ID, "Job", "its directory"),
    ("GET", "/v1/job/{job_id}/files"): {
        "summary": "The job directory as a tree: a file maps to null, a folder to an object.",
        "parameters": [JOB_ID],
        "responses": {"200": answer("The tree, files before folders.", {"type": "object"}), **errors(401, 404)},
    },
    ("GET", "/v1/job/{job_id}/files/download"): {
        "summary": "Download one file of the job directory.",
        "parameters": [JOB_ID, query("filename", {"type": "string", "minLength": 1}, "Path relative to the job directory.", True)],
        "responses": {
            "200": answer("The bytes.", {"type": "string", "format": "binary"}, "application/octet-stream"),
            **errors(400, 401, 404, 422),
        },
    },
    ("GET", "/v1/job/{job_id}/log"): {
        "summary": "What the job printed (stdout and stderr, C and Fortran output included), streamed.",
        "parameters": [
            JOB_ID,
            query("tail", {"type": "integer", "minimum": 1, "maximum": MAX_INTEGER}, "Only the last TAIL bytes, from the first line start in them."),
        ],
        "responses": {"200": answer("The log.", {"type": "string"}, "text/plain"), **errors(401, 404, 422)},
    },
    ("GET", "/v1/file"): {
        "summary": "The caller's uploaded files.",
        "responses": {"200": answer("Files.", {"type": "array", "items": ref("File")}), **errors(401)},
    },
    ("POST", "/v1/file/upload"): {
        "summary": "Upload files in chunks; the answer to the last chunk lists the stored files.",
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"}},
                            "chunk_number": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": files.MAX_CHUNKS - 1,
                                "default": 0,
                                "description": "Below total_chunks, and the next one expected (else 409).",
                            },
                            "total_chunks": {"type": "integer", "minimum": 1, "maximum": files.MAX_CHUNKS, "default": 1},
                            "upload_id": {**PLAIN_TEXT, "description": "Keeps concurrent uploads of one name apart."},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": answer("Progress, or after the last chunk the list of stored files.", {}),
            **errors(400, 401, 409, 413, 422),
        },
    },
}


# Teams (API.md Part 6): access tokens, groups, admin routes.
ROLE = {"type": "string", "enum": list(store.ROLES)}
TIME = {"type": "string", "format": "date-time", "nullable": True}
SCHEMAS.update({
    "AccessTokenInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {**PLAIN_TEXT, "minLength": 1, "maxLength": 100},
            "expires_in_days": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 3650, "default": 90},
        },
    },
    "AccessToken": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "created_at": TIME,
            "expires_at": TIME,
            "last_used_at": {**TIME, "description": "Recorded at most once a minute."},
            "token": {"type": "string", "description": "gaas_pat_...: in the answer of its creation only."},
        },
    },
    "Group": {"type": "object", "properties": {"name": {"type": "string"}, "role": ROLE}},
    "AdminUserInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["username"],
        "properties": {
            "username": ACCOUNT_NAME,
            "password": {"type": "string", "minLength": 1, "description": "None: the user signs in by the directory or a proxy."},
            "is_admin": {"type": "boolean"},
        },
    },
    "AdminUser": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "username": {"type": "string"},
            "is_admin": {"type": "boolean"},
            "directory": {"type": "boolean", "description": "No password here: signs in by the directory or a proxy."},
            "created_at": TIME,
        },
    },
    "GroupInput": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {"name": ACCOUNT_NAME}},
    "GroupEntry": {"type": "object", "properties": {"name": {"type": "string"}, "members": {"type": "integer"}, "created_at": TIME}},
    "Member": {
        "type": "object",
        "additionalProperties": False,
        "required": ["username", "role"],
        "properties": {"username": ACCOUNT_NAME, "role": ROLE},
    },
    "AuditEntry": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "time": TIME,
            **{key: {"type": "string"} for key in ("actor", "action", "target", "address", "detail")},
        },
    },
})
ADMIN_ERRORS = {**errors(401, 422), "403": answer("The caller is not an administrator.", ERROR)}
GROUP = path_parameter("name", ACCOUNT_NAME)


def listing(description, name):
    return {"200": answer(description, {"type": "array", "items": ref(name)}), **ADMIN_ERRORS}


OPERATIONS.update({
    ("GET", "/v1/user/me/tokens"): {
        "summary": "The caller's personal access tokens, without their secrets.",
        "responses": {"200": answer("Tokens.", {"type": "array", "items": ref("AccessToken")}), **errors(401)},
    },
    ("POST", "/v1/user/me/tokens"): {
        "summary": "A new personal access token: a bearer token, and a password for POST /token. Its secret is shown once.",
        "requestBody": {"required": True, **json_body(ref("AccessTokenInput"))},
        "responses": {"201": answer("The token, with its secret.", ref("AccessToken")), **errors(400, 401, 422)},
    },
    ("DELETE", "/v1/user/me/tokens/{token_id}"): {
        "summary": "Revoke one of the caller's access tokens (on every web process within 5 s).",
        "parameters": [path_parameter("token_id", ID)],
        "responses": {"204": answer("Revoked."), **errors(401, 404)},
    },
    ("GET", "/v1/group"): {
        "summary": "The caller's groups and roles.",
        "responses": {"200": answer("Groups.", {"type": "array", "items": ref("Group")}), **errors(401)},
    },
    ("GET", "/v1/admin/users"): {"summary": "Every user (admins only).", "responses": listing("Users.", "AdminUser")},
    ("POST", "/v1/admin/users"): {
        "summary": "Create a user (with a password, or for the directory), or change one's password or admin flag.",
        "requestBody": {"required": True, **json_body(ref("AdminUserInput"))},
        "responses": {"200": answer("Changed.", ref("AdminUser")), "201": answer("Created.", ref("AdminUser")), **errors(400), **ADMIN_ERRORS},
    },
    ("DELETE", "/v1/admin/users"): {
        "summary": "Delete a user with their jobs, batches and files.",
        "parameters": [query("username", ACCOUNT_NAME, "The user.", True)],
        "responses": {"204": answer("Deleted."), **errors(404, 409), **ADMIN_ERRORS},
    },
    ("GET", "/v1/admin/groups"): {"summary": "Every group with its number of members.", "responses": listing("Groups.", "GroupEntry")},
    ("POST", "/v1/admin/groups"): {
        "summary": "Create a group.",
        "requestBody": {"required": True, **json_body(ref("GroupInput"))},
        "responses": {"201": answer("Created.", ref("GroupEntry")), **errors(400, 409), **ADMIN_ERRORS},
    },
    ("DELETE", "/v1/admin/groups"): {
        "summary": "Delete a group and its memberships.",
        "parameters": [query("name", ACCOUNT_NAME, "The group.", True)],
        "responses": {"204": answer("Deleted."), **errors(404), **ADMIN_ERRORS},
    },
    ("GET", "/v1/admin/groups/{name}/members"): {
        "summary": "A group's members and their roles.",
        "parameters": [GROUP],
        "responses": {**listing("Members.", "Member"), **errors(404)},
    },
    ("POST", "/v1/admin/groups/{name}/members"): {
        "summary": "Add a member to a group, or change their role.",
        "parameters": [GROUP],
        "requestBody": {"required": True, **json_body(ref("Member"))},
        "responses": {"200": answer("The membership.", ref("Member")), **errors(400, 404), **ADMIN_ERRORS},
    },
    ("DELETE", "/v1/admin/groups/{name}/members"): {
        "summary": "Take a member out of a group.",
        "parameters": [GROUP, query("username", ACCOUNT_NAME, "The member.", True)],
        "responses": {"204": answer("Removed."), **errors(404), **ADMIN_ERRORS},
    },
    ("GET", "/v1/admin/audit"): {
        "summary": "The audit log, newest first: sign-ins, tokens, user and group changes, others' work cancelled or deleted.",
        "parameters": [
            query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}, "Page size."),
            query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER, "default": 0}, "Entries to skip."),
            query("action", PLAIN_TEXT, "Only this action, e.g. sign_in_failed."),
            query("actor", PLAIN_TEXT, "Only this actor (a user name, or directory or proxy)."),
        ],
        "responses": {
            "200": {
                **answer("A page of entries.", {"type": "array", "items": ref("AuditEntry")}),
                "headers": {"X-Total-Count": {"schema": {"type": "integer"}, "description": "Entries matching the filter."}},
            },
            **ADMIN_ERRORS,
        },
    },
})

TAGS = [
    {"name": "auth", "description": "Sign in and who you are."},
    {"name": "disciplines", "description": "The catalogue, descriptions and runs of disciplines."},
    {"name": "jobs", "description": "Your jobs: status, results, log, files, cancel, delete."},
    {"name": "files", "description": "Files uploaded for jobs."},
    {"name": "batches", "description": "Many points of one discipline in one request."},
    {"name": "studies", "description": "Whole MDO and DOE scenarios, each run as one job."},
    {"name": "teams", "description": "Groups, and the administrators' routes."},
    {"name": "service", "description": "Health and metrics, without a token."},
]
TAG_OF_PATH = (
    ("/token", "auth"),
    ("/v1/user", "auth"),
    ("/v1/discipline", "disciplines"),
    ("/v1/algorithms", "disciplines"),
    ("/v1/job", "jobs"),
    ("/v1/file", "files"),
    ("/v1/batch", "batches"),
    ("/v1/study", "studies"),
    ("/v1/group", "teams"),
    ("/v1/admin", "teams"),
    ("/", "service"),
)


def document(routes, undocumented=()):
    """The OpenAPI document of these routes; raise KeyError for an undocumented one."""
    paths = {}
    for route in routes:
        if route.path in undocumented:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            operation = deepcopy(OPERATIONS[(method, route.path)])
            operation.setdefault("operationId", f"{method.lower()}_{route.name}")
            operation["tags"] = [next(tag for prefix, tag in TAG_OF_PATH if route.path.startswith(prefix))]
            operation["responses"].setdefault("503", answer(UNAVAILABLE, ERROR))
            paths.setdefault(route.path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "gaas: GEMSEO as a service",
            "version": "1.0.0",
            "description": "GEMSEO disciplines over HTTP, compatible with the gemseo-http 3.0.0 client.",
        },
        "tags": [tag for tag in TAGS if any(tag["name"] in op["tags"] for ops in paths.values() for op in ops.values())],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                # Swagger's "Authorize" asks for a user name and password and signs in on /token.
                "password": {"type": "oauth2", "flows": {"password": {"tokenUrl": "/token", "scopes": {}}}},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"password": []}, {"bearer": []}],
    }
