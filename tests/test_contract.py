"""The request contract (contract.py): bodies, queries and forms are checked against the schemas
that /openapi.json serves, with 422 messages that name the field by its path. In-process: the
checks run before any discipline is built, so no warm process is needed."""

import pytest

import auth
import contract
import openapi
import settings
import store
from errors import Rejected
from test_internals import tmp_store  # noqa: F401 (a fixture)


def refused(schema, value):
    with pytest.raises(Rejected) as caught:
        contract.check(schema, value)
    assert caught.value.status == 422
    return caught.value.detail


def test_every_request_schema_compiles():
    # A keyword the compiler does not know stops it: the document cannot promise an unmade check.
    for method, path in openapi.OPERATIONS:
        contract.Operation(method, path)
    with pytest.raises(ValueError, match="uniqueItems"):
        contract.compiled({"type": "array", "uniqueItems": True})


BATCH_CASES = [
    ({"sample": []}, "Field 'sample' is not a field of this request; the fields are name, discipline_options,"),
    ({}, "The request needs exactly one of the fields 'samples' and 'doe'."),
    ({"samples": [], "doe": {}}, "Field 'samples' must hold 1 to"),
    ({"samples": [{}], "doe": {"algo_name": "LHS", "design_space": {"x": {"lower_bound": [0], "upper_bound": [1]}}}},
     "The request needs exactly one of the fields 'samples' and 'doe'."),
    ({"samples": [{}, {}, {}, 3]}, "Field 'samples[3]' must be an object."),
    ({"samples": [{"x": {"a": 1}}]}, "Field 'samples[0].x' must be a number, a string, a boolean or a list."),
    ({"doe": {"algo_name": "LHS", "bogus": 1}},
     "Field 'doe.bogus' is not a field of 'doe'; the fields are algo_name, n_samples, design_space, settings."),
    ({"doe": {"design_space": {"x": {"lower_bound": [0], "upper_bound": [1]}}}}, "Field 'doe.algo_name' is required."),
    ({"doe": {"algo_name": 3, "design_space": {}}}, "Field 'doe.algo_name' must be a string."),
    ({"doe": {"algo_name": "LHS", "design_space": {}}}, "Field 'doe.design_space' must hold at least 1 field."),
    ({"doe": {"algo_name": "LHS", "n_samples": 0, "design_space": {"x": {"lower_bound": [0], "upper_bound": [1]}}}},
     f"Field 'doe.n_samples' must be between 1 and {settings.MAX_BATCH_SAMPLES} (GEMSEO_HTTP_MAX_BATCH_SAMPLES)."),
    ({"doe": {"algo_name": "LHS", "n_samples": 2.5, "design_space": {"x": {"lower_bound": [0], "upper_bound": [1]}}}},
     "Field 'doe.n_samples' must be an integer."),
    ({"doe": {"algo_name": "LHS", "design_space": {"x_1": {"upper_bound": [1]}}}}, "Field 'doe.design_space.x_1.lower_bound' is required."),
    ({"doe": {"algo_name": "LHS", "design_space": {"x_1": {"lower_bound": [0, "1"], "upper_bound": [1]}}}},
     "Field 'doe.design_space.x_1.lower_bound[1]' must be a number."),
    ({"doe": {"algo_name": "LHS", "design_space": {"x_1": {"lower_bound": [], "upper_bound": [1]}}}},
     "Field 'doe.design_space.x_1.lower_bound' must hold at least 1 item."),
    ({"doe": {"algo_name": "LHS", "design_space": {"x_1": {"lower_bound": [True], "upper_bound": [1]}}}},
     "Field 'doe.design_space.x_1.lower_bound[0]' must be a number."),
    ({"doe": {"algo_name": "LHS", "design_space": {"x_1": [0, 1]}}}, "Field 'doe.design_space.x_1' must be an object."),
]


@pytest.mark.parametrize("body, message", BATCH_CASES)
def test_batch_bodies(body, message):
    assert refused("BatchInput", body).startswith(message)


EXECUTE_CASES = [
    ({"input_dat": {}}, "Field 'input_dat' is not a field of this request; the fields are name, discipline_options, input_data,"
     " input_data_type, input_files, linearize, linearization_mode, linearize_options, differentiated_inputs,"
     " differentiated_outputs, timeout, group, cache."),
    ({"input_data": None}, "Field 'input_data' must be an object."),
    ({"input_data": {"x": None}}, "Field 'input_data.x' must be a number, a string, a boolean or a list."),
    ({"linearize": "yes"}, "Field 'linearize' must be a boolean."),
    ({"input_data_type": "pickle"}, "Field 'input_data_type' must be 'json'."),
    ({"linearization_mode": "sideways"}, "Field 'linearization_mode' must be one of auto, direct, reverse,"),
    ({"differentiated_inputs": ["x", 1]}, "Field 'differentiated_inputs[1]' must be a string."),
    ({"timeout": 0}, "Field 'timeout' must be greater than 0."),
    ({"timeout": True}, "Field 'timeout' must be a number."),
    ({"name": "a\tb"}, "Field 'name' must not hold control characters."),
    ({"name": "ab\n"}, "Field 'name' must not hold control characters."),
    ({"input_files": [{"id": 1}, {}]}, "Field 'input_files[1]' needs the field 'id' or 'unique_filename'."),
    ({"input_files": [{"id": 0}]}, f"Field 'input_files[0].id' must be between 1 and {openapi.MAX_INTEGER}."),
    ({"input_files": [{"id": "1"}]}, "Field 'input_files[0].id' must be an integer."),
    ({"input_files": [{"unique_filename": "a\x00"}]}, "Field 'input_files[0].unique_filename' must not hold control characters."),
    ({"x" * 300: 1}, f"Field '{'x' * 100}' is not a field of this request;"),
]


@pytest.mark.parametrize("body, message", EXECUTE_CASES)
def test_execute_bodies(body, message):
    assert refused("ExecuteInput", body).startswith(message)


def test_good_bodies_pass_unchanged():
    body = {
        "name": "été", "input_data": {"x_1": [1.0], "gamma": 0.2, "flag": True, "label": "a"},
        "input_files": [{"id": 3}, {"unique_filename": "f.txt"}], "linearize": True,
        "linearization_mode": "finite_differences", "differentiated_inputs": ["x_1"], "timeout": 0.5,
    }
    assert contract.check("ExecuteInput", body) is body
    batch = {"doe": {"algo_name": "LHS", "n_samples": 3, "design_space": {"x_1": {"lower_bound": [0], "upper_bound": [1.5]}}}}
    assert contract.check("BatchInput", batch) is batch


# The largest body to come (API.md Part 4, StudyInput) is a declaration: nested objects, lists
# of objects and maps of objects, each refusal with its path.
STUDY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["disciplines", "design_space", "objective", "algorithm"],
    "properties": {
        "name": openapi.PLAIN_TEXT,
        "disciplines": {
            "type": "array", "minItems": 1,
            "items": {"type": "object", "additionalProperties": False, "required": ["class_name"],
                      "properties": {"class_name": openapi.PLAIN_TEXT, "options": {"type": "object"}}},
        },
        "formulation": {"type": "string", "enum": ["MDF", "IDF", "DisciplinaryOpt", "BiLevel"]},
        "design_space": {
            "type": "object", "minProperties": 1,
            "additionalProperties": {
                "type": "object", "additionalProperties": False, "required": ["lower_bound", "upper_bound"],
                "properties": {key: {"type": "array", "minItems": 1, "items": {"type": "number"}}
                               for key in ("lower_bound", "upper_bound", "value")},
            },
        },
        "objective": {"type": "object", "required": ["name"], "additionalProperties": False,
                      "properties": {"name": {"type": "string"}, "maximize": {"type": "boolean"}}},
        "constraints": {"type": "array", "items": {
            "type": "object", "required": ["name", "type"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "type": {"type": "string", "enum": ["eq", "ineq"]}}}},
        "algorithm": {"type": "object", "required": ["name"], "additionalProperties": False,
                      "properties": {"name": {"type": "string"}, "settings": {"type": "object"}}},
        "timeout": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    },
}
GOOD_STUDY = {
    "disciplines": [{"class_name": "Sellar1"}, {"class_name": "SellarSystem", "options": {}}],
    "formulation": "MDF",
    "design_space": {"x_1": {"lower_bound": [0.0], "upper_bound": [10.0], "value": [1.0]}},
    "objective": {"name": "obj", "maximize": False},
    "constraints": [{"name": "c_1", "type": "ineq"}],
    "algorithm": {"name": "SLSQP", "settings": {"max_iter": 50}},
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"design_space": {"x_1": {"lower_bound": "0", "upper_bound": [1.0]}}}, "Field 'design_space.x_1.lower_bound' must be a list."),
        ({"design_space": {"x_1": {"lower_bound": [0.0]}}}, "Field 'design_space.x_1.upper_bound' is required."),
        ({"disciplines": [{"class_name": "Sellar1"}, {"name": "Sellar2"}]},
         "Field 'disciplines[1].name' is not a field of 'disciplines[1]'; the fields are class_name, options."),
        ({"constraints": [{"name": "c_1", "type": "lt"}]}, "Field 'constraints[0].type' must be 'eq' or 'ineq'."),
        ({"formulation": "XDF"}, "Field 'formulation' must be one of MDF, IDF, DisciplinaryOpt, BiLevel."),
        ({"objective": {"maximize": True}}, "Field 'objective.name' is required."),
    ],
)
def test_a_study_is_a_declaration(change, message):
    assert contract.check(STUDY, GOOD_STUDY) is GOOD_STUDY
    assert refused(STUDY, {**GOOD_STUDY, **change}) == message


def test_text_parameters():
    jobs_query = contract.Operation("GET", "/v1/job")
    assert jobs_query.query({}) == {
        "status": None, "limit": 100, "offset": 0, "batch_id": None, "discipline": None, "name": None, "error": None, "not_error": None,
        "cached": None, "scope": "mine", "group": None,
    }
    assert jobs_query.query({"limit": "7", "status": "failed"})["limit"] == 7
    cases = [
        ({"limit": "0"}, f"Query 'limit' must be between 1 and {openapi.MAX_PAGE}."),
        ({"limit": "1.5"}, "Query 'limit' must be an integer."),
        ({"status": "weird"}, "Query 'status' must be one of "),
        ({"error": "a\x00"}, "Query 'error' must not hold control characters."),
    ]
    for query, message in cases:
        with pytest.raises(Rejected) as caught:
            jobs_query.query(query)
        assert caught.value.detail.startswith(message), caught.value.detail
    job_query = contract.Operation("GET", "/v1/job/{job_id}")
    assert job_query.query({"long_polling": "yes", "long_polling_timeout": "0.5"}) == {"long_polling": True, "long_polling_timeout": 0.5}
    for query, message in [
        ({"long_polling": "maybe"}, "Query 'long_polling' must be true or false."),
        ({"long_polling_timeout": "nan"}, "Query 'long_polling_timeout' must be at least 0."),
    ]:
        with pytest.raises(Rejected) as caught:
            job_query.query(query)
        assert caught.value.detail == message
    with pytest.raises(Rejected) as caught:
        contract.Operation("POST", "/token").form({"username": "alice"})
    assert caught.value.detail == "Field 'password' is required."


# Over HTTP, in process: the app's state without its warm processes, a user in a temporary store.


@pytest.fixture
def client(tmp_store, monkeypatch):  # noqa: F811 (the fixture imported above)
    import gaas
    from starlette.testclient import TestClient

    monkeypatch.setattr(auth, "_secret", None)
    gaas.init_state(gaas.app.state)
    user_id = store.add_user("alice", "hash")
    headers = {"Authorization": f"Bearer {auth.make_token(store.user_by_id(user_id))}"}
    return TestClient(gaas.app, headers=headers)


@pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient.")
@pytest.mark.parametrize(
    "method, path, body, message",
    [
        ("POST", "/v1/discipline/Sellar1/execute", {"input_dat": {}}, "Field 'input_dat' is not a field of this request;"),
        ("POST", "/v1/discipline/Sellar1/execute?execution_mode=later", {}, "Query 'execution_mode' must be 'synchronous' or 'asynchronous'."),
        ("POST", "/v1/discipline/Sellar1/batch", {"samples": [{}, 3]}, "Field 'samples[1]' must be an object."),
        ("POST", "/v1/discipline/Sellar1/batch", {"doe": {"algo_name": "LHS", "design_space": {"x_1": {"lower_bound": [0]}}}},
         "Field 'doe.design_space.x_1.upper_bound' is required."),
        ("POST", "/v1/discipline/Sellar1/input_names", {"discipline_option": {}},
         "Field 'discipline_option' is not a field of this request; the fields are discipline_options."),
        ("POST", "/v1/discipline/Sellar1/inputs_schema", {"discipline_options": None}, "Field 'discipline_options' must be an object."),
        ("POST", "/v1/discipline/Sellar%01/execute", {}, "Path 'name' must not hold control characters."),
        ("GET", "/v1/job?offset=-1", None, f"Query 'offset' must be between 0 and {openapi.MAX_INTEGER}."),
        ("GET", "/v1/batch?limit=abc", None, "Query 'limit' must be an integer."),
    ],
)
def test_http_refusals(client, method, path, body, message):
    response = client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(message), response.text


@pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient.")
def test_upload_form_fields(client):
    part = {"files": ("notes.txt", b"x")}
    for data, message in [
        ({"chunk_number": "x"}, "Field 'chunk_number' must be an integer."),
        ({"total_chunks": "0"}, "Field 'total_chunks' must be between 1 and"),
        ({"upload_id": "u\x00"}, "Field 'upload_id' must not hold control characters."),
    ]:
        response = client.post("/v1/file/upload", files=part, data=data)
        assert response.status_code == 422 and response.json()["detail"].startswith(message), response.text
