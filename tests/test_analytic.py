"""AnalyticDiscipline on by default, made safe: attacks in its options are refused on every route
and mode and leave no trace; typical formulas compute and linearize as GEMSEO does in-process,
through the API and through the HTTPDiscipline client of gemseo-http 3.0.0."""

import re
import time
from concurrent.futures import ThreadPoolExecutor

import numpy
import pytest
from gemseo import create_discipline
from gemseo.core.grammars.errors import InvalidDataError

from conftest import start_service
from test_formulas import ATTACKS as FORMULA_ATTACKS
from test_formulas import TYPICAL as SINGLE_OUTPUT
from test_formulas import run

ANALYTIC = "/v1/discipline/AnalyticDiscipline"
DESCRIPTIONS = ("input_names", "output_names", "inputs_schema", "outputs_schema", "default_input_data")
EXECUTES = ("execute?execution_mode=synchronous", "execute?execution_mode=asynchronous")
ROUTES = (*DESCRIPTIONS, *EXECUTES)
SECRET_VARIABLE = "GAAS_ANALYTIC_TEST_SECRET"
SECRET = "s3cr3t-analytic-5b1e0c9d"  # never written in an attack: only its variable's name is
THREADS = 4
QUICK = 10.0  # seconds: a refusal is a check of the text, not a timeout of the build

ENV = f"__import__('os').environ['{SECRET_VARIABLE}']"
# {m}: a marker file a payload would create; {k}: the token key file of the service.
LEAKS = [
    ENV,
    f"__import__('os').getenv('{SECRET_VARIABLE}')",
    f"print({ENV})",
    "print(__import__('os').environ)",
    "open('{k}').read()",
    "print(open('{k}').read())",
    "__import__('os').system('env > {m}; cat {k} >> {m}')",
    "__import__('pathlib').Path('{m}').write_text(open('{k}').read())",
    "x**2 + 0*__import__('subprocess').call(['touch', '{m}'])",
    f"exec(\"import os; open('{{m}}', 'w').write(os.environ['{SECRET_VARIABLE}'])\")",
    f"Symbol({ENV})",  # a variable named after the secret: input_names would show it
    "Symbol(open('{k}').read())",
    f"x*Function({ENV})(x)",
    "sympify(\"open('{k}').read()\")",
    f"S(\"{ENV}\")",
    f"parse_expr(\"print({ENV}) or __import__('os').system('touch {{m}}')\")",
    "lambdify(x, \"__import__('os').system('cat {k} > {m}')\")(1)",
    "(lambda: print(open('{k}').read()) or __import__('os').system('touch {m}'))()",
    "sin.__globals__['__builtins__']['open']('{k}').read()",
    "().__class__.__base__.__subclasses__()[0].__init__.__globals__['__builtins__']['__import__']('os').environ",
    "x if print(open('{k}').read()) else x",
    "(y := open('{k}').read())",
    "f\"{open('{k}').read()}\"",
    "\uff4f\uff50\uff45\uff4e('{k}').read()",  # fullwidth open
    "eval(chr(95)*2 + 'import' + chr(95)*2 + \"('os').system('touch {m}')\")",
    "eval('\\x5f\\x5fimport\\x5f\\x5f(\"os\").system(\"touch {m}\")')",
    "sin('__imp' 'ort__(\"os\").system(\"touch {m}\")')",
    "exp(x) + 0*(__import__('os').system('touch {m}') or 1)",
    "x!" + " + __import__('os').system('touch {m}')",
]
ATTACKS = FORMULA_ATTACKS + LEAKS


def plain_name(text):
    """A bare name: as an output name it is a name, not an attack (the formula position refuses it)."""
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", text) is not None


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A service of this module's own, with a secret in its environment."""
    service = start_service(tmp_path_factory.mktemp("analytic"), **{SECRET_VARIABLE: SECRET})
    try:
        api = service.api("alice", "alice-pw")
        assert api.get("/v1/discipline", timeout=300).status_code == 200
        yield service, api
    finally:
        service.close()


def total_jobs(api):
    response = api.get("/v1/job?limit=1")
    assert response.status_code == 200, response.text
    return int(response.headers["X-Total-Count"])


def secret_key(service):
    key = (service.root / "secret_key").read_text().strip()
    assert len(key) >= 32
    return key


def traces(service):
    """Every text an attack could leak into: the whole server and worker logs, every job file."""
    texts = {name: (service.logs / name).read_text(errors="replace") for name in ("server.log", "worker.log")}
    workdir = service.root / "workdir"
    for path in workdir.rglob("*") if workdir.exists() else ():
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    return texts


def markers(service):
    return sorted(str(path) for path in service.root.rglob("pwned-*"))


def armed(service, index):
    """The attack with its marker under the service root and the service's key path filled in."""
    marker = service.root / f"pwned-{index}"
    return ATTACKS[index].replace("{m}", str(marker)).replace("{k}", str(service.root / "secret_key"))


def send_all(api, requests):
    """POST each (route, body) in parallel; return (route, status, elapsed, text, json or None)."""

    def send(item):
        route, body = item
        start = time.monotonic()
        response = api.post(f"{ANALYTIC}/{route}", json=body)
        elapsed = time.monotonic() - start
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return route, response.status_code, elapsed, response.text, payload

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(send, requests))


def wait_accepted(api, answers):
    """Let any job that was accepted end, so that what it did is on disk before the checks."""
    for _, status, _, _, payload in answers:
        if status in (200, 202) and isinstance(payload, dict) and "job_status" in payload:
            api.wait(payload["id"], timeout=60)


def leak_problems(service, answers):
    secrets = {"the secret": SECRET, "the secret key": secret_key(service)}
    problems = [f"marker {path}" for path in markers(service)]
    for route, _, _, text, _ in answers:
        problems += [f"{what} in the answer of {route}" for what, value in secrets.items() if value in text]
    for where, text in traces(service).items():
        problems += [f"{what} in {where}" for what, value in secrets.items() if value in text]
    return problems


def test_the_secrets_are_there_to_steal(guarded):
    """Else the leak checks below could not fail: the service's environment holds the secret."""
    service, _ = guarded
    environ = open(f"/proc/{service.server.pid}/environ", "rb").read().decode(errors="replace")
    assert f"{SECRET_VARIABLE}={SECRET}" in environ.split("\0")
    assert secret_key(service)
    assert len(ATTACKS) >= 50 and len(set(ATTACKS)) == len(ATTACKS)


@pytest.mark.parametrize("index", range(len(ATTACKS)))
def test_attack_in_a_formula_is_refused_everywhere(guarded, index):
    service, api = guarded
    attack = armed(service, index)
    before = total_jobs(api)
    answers = send_all(api, [(route, {"discipline_options": {"expressions": {"y": attack}}}) for route in ROUTES])
    wait_accepted(api, answers)
    problems = []
    for route, status, elapsed, text, payload in answers:
        detail = payload.get("detail") if isinstance(payload, dict) else None
        if status != 422 or not isinstance(detail, str):
            problems.append(f"{route}: {status} {text[:300]}")
        elif not detail.startswith("Formula of output 'y': "):  # not a timeout or a crash of the build
            problems.append(f"{route}: detail does not name the output: {detail[:300]}")
        if elapsed > QUICK:
            problems.append(f"{route}: answered in {elapsed:.1f} s")
    problems += leak_problems(service, answers)
    if total_jobs(api) != before:
        problems.append(f"jobs recorded: {total_jobs(api) - before}")
    assert not problems, (attack[:80], problems)


@pytest.mark.parametrize("index", [i for i, attack in enumerate(ATTACKS) if not plain_name(attack)])
def test_attack_in_an_output_name_is_refused_everywhere(guarded, index):
    service, api = guarded
    attack = armed(service, index)
    before = total_jobs(api)
    answers = send_all(api, [(route, {"discipline_options": {"expressions": {attack: "x"}}}) for route in ROUTES])
    wait_accepted(api, answers)
    problems = []
    for route, status, _, text, payload in answers:
        detail = payload.get("detail") if isinstance(payload, dict) else None
        if status != 422 or not isinstance(detail, str) or not detail.startswith("Output name "):
            problems.append(f"{route}: {status} {text[:300]}")
    problems += leak_problems(service, answers)
    if total_jobs(api) != before:
        problems.append(f"jobs recorded: {total_jobs(api) - before}")
    assert not problems, (attack[:80], problems)


@pytest.mark.parametrize("index", range(len(ATTACKS)))
def test_attack_in_the_name_option_runs_nothing(guarded, index):
    """The name is a label, never evaluated: refused (too long, not printable) or kept as text,
    the formula then computing as it should."""
    service, api = guarded
    attack = armed(service, index)
    options = {"expressions": {"y": "x**2"}, "name": attack}
    before = total_jobs(api)
    body = {"discipline_options": options, "input_data": {"x": [3.0]}}
    answers = send_all(api, [("input_names", {"discipline_options": options}), *((route, body) for route in EXECUTES)])
    wait_accepted(api, answers)
    problems, accepted = [], 0
    for route, status, _, text, payload in answers:
        if status == 422:
            if not isinstance(payload, dict) or "Option 'name'" not in str(payload.get("detail")):
                problems.append(f"{route}: {text[:300]}")
        elif status not in (200, 202):
            problems.append(f"{route}: {status} {text[:300]}")
        elif route == "input_names":
            if payload != ["x"]:
                problems.append(f"{route}: {payload}")
        else:
            accepted += 1
            job = api.wait(payload["id"], timeout=60)
            if job["job_status"] != "finished" or job["output_data"] != {"y": [9.0]}:
                problems.append(f"{route}: {job['job_status']} {job.get('output_data')} {job['traceback'][-300:]}")
    # The name is valid or not whatever the route: all of them accept it, or none.
    if len({status in (200, 202) for _, status, _, _, _ in answers}) > 1:
        problems.append(f"mixed answers: {[status for _, status, _, _, _ in answers]}")
    problems += leak_problems(service, answers)
    if total_jobs(api) != before + accepted:
        problems.append(f"jobs recorded: {total_jobs(api) - before}, accepted: {accepted}")
    assert not problems, (attack[:80], problems)


# Typical formulas: one or several outputs, and the point where they are computed.
TYPICAL = [({"y": text}, point) for text, point in SINGLE_OUTPUT] + [
    ({"y": "x**2 + 3*x*z", "w": "sqrt(x**2 + z**2)"}, {"x": 2.0, "z": 0.5}),
    ({"f": "sin(a)*cos(b)", "g": "exp(-a)*log(b, 2)", "h": "-a + -b"}, {"a": 0.3, "b": 4.0}),
    ({"lift": "0.5*rho*v**2*S_w*CL", "drag": "0.5*rho*v**2*S_w*(0.02 + CL**2/(pi*10))"},
     {"rho": 1.225, "v": 70.0, "S_w": 16.2, "CL": 0.4}),
    ({"lo": "Min(x, z)", "hi": "Max(x, z)", "ang": "atan2(z, x)", "mag": "Abs(x - z)"}, {"x": -0.4, "z": 1.1}),
    ({"p": "E**x - pi", "q": "log(x) + 2.5e-3*x**3 - 1/x"}, {"x": 1.7}),
]


def local(expressions, point):
    """What GEMSEO computes in-process from the same text: input names (in order), outputs, Jacobian."""
    return run(expressions, point, sort=False)


def assert_close(remote, expected, what):
    assert numpy.allclose(numpy.asarray(remote, dtype=float), expected, rtol=1e-10, atol=1e-12), what


@pytest.mark.parametrize("expressions, point", TYPICAL, ids=[str(list(e.values()))[:40] for e, _ in TYPICAL])
def test_typical_formula_matches_gemseo(alice, expressions, point):
    names, outputs, jacobian = local(expressions, point)
    options = {"discipline_options": {"expressions": expressions}}
    remote_names = alice.post(f"{ANALYTIC}/input_names", json=options)
    assert remote_names.status_code == 200, remote_names.text
    assert remote_names.json() == names
    output_names = alice.post(f"{ANALYTIC}/output_names", json=options).json()
    assert sorted(output_names) == sorted(expressions)
    job = alice.run("AnalyticDiscipline", **options, input_data={n: [point[n]] for n in names}, linearize=True)
    assert job["job_status"] == "finished", job["traceback"]
    for output in expressions:
        assert_close(job["output_data"][output], outputs[output], output)
        for name in names:
            assert_close(job["jacobian_data"][output][name], jacobian[output][name], f"d{output}/d{name}")


@pytest.mark.parametrize("mode", ["synchronous", "asynchronous"])
def test_integer_inputs_do_not_hang(alice, mode):
    """Python integers would make sympy compute 10**(10**8) exactly: the job ends at once."""
    start = time.monotonic()
    job = alice.run(
        "AnalyticDiscipline",
        mode,
        discipline_options={"expressions": {"y": "x**z"}},
        input_data={"x": [10], "z": [100000000]},
    )
    job = alice.wait(job["id"], timeout=5) if job["job_status"] not in ("finished", "failed") else job
    assert time.monotonic() - start < 5
    if job["job_status"] == "failed":
        assert "OverflowError" in job["traceback"], job["traceback"]
    else:
        # JSON has no infinity: the service sends it as null.
        assert job["job_status"] == "finished" and job["output_data"]["y"] in ([None], [float("inf")]), job


def test_class_and_catalogue(alice):
    names = alice.get("/v1/discipline").json()
    assert "AnalyticDiscipline" in names
    about = alice.get(ANALYTIC)
    assert about.status_code == 200, about.text
    assert about.json()["options_required"] is True
    assert "expressions" in [parameter["name"] for parameter in about.json()["parameters"]]


# The HTTPDiscipline client (run in a venv of its own: tests/reference_client.py).

EXPRESSIONS = {"y": "x**2 + 3*x*z - log(z, 2)", "w": "sqrt(x**2 + z**2)*exp(-x)"}
POINT = {"x": [1.3], "z": [0.6]}


def client(reference_client, live, *steps, expressions=EXPRESSIONS, **options):
    """Make the client of an AnalyticDiscipline of expressions, run steps on it; their results."""
    return reference_client.run(
        live.url,
        *steps,
        name="remote analytic",
        class_name="AnalyticDiscipline",
        discipline_options={"expressions": expressions},
        **options,
    )


@pytest.fixture(scope="module")
def expected():
    discipline = create_discipline("AnalyticDiscipline", expressions=EXPRESSIONS)
    point = {name: numpy.array(value) for name, value in POINT.items()}
    outputs = discipline.execute(dict(point))
    jacobian = discipline.linearize(dict(point), compute_all_jacobians=True)
    return discipline, outputs, jacobian


def test_client_grammars_come_from_the_server(live, reference_client, expected):
    discipline, _, _ = expected
    (remote,) = client(reference_client, live, ["grammars"])
    assert sorted(remote["inputs"]) == sorted(discipline.io.input_grammar.names) == ["x", "z"]
    assert sorted(remote["outputs"]) == ["w", "y"]
    assert set(remote["input_properties"]) == {"x", "z"}
    assert set(remote["output_properties"]) == {"w", "y"}
    assert set(remote["defaults"]) == set(discipline.io.input_grammar.defaults)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_client_executes_as_gemseo(live, reference_client, expected, asynchronous):
    _, outputs, _ = expected
    (out,) = client(reference_client, live, ["execute", POINT], is_asynchronous=asynchronous, polling_wait_time=0.2)
    for name in EXPRESSIONS:
        assert_close(out[name], outputs[name], name)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_client_linearizes_as_gemseo(live, reference_client, expected, asynchronous):
    _, outputs, jacobian = expected
    _, remote = client(
        reference_client, live, ["no_cache"], ["linearize", POINT, {"compute_all_jacobians": True}],
        is_asynchronous=asynchronous, polling_wait_time=0.2,
    )
    for output in EXPRESSIONS:
        assert_close(remote["data"][output], outputs[output], output)
        for name in POINT:
            assert_close(remote["jacobian"][output][name], jacobian[output][name], f"d{output}/d{name}")


def test_client_refused_formula_names_the_output_and_the_reason(live, reference_client):
    with pytest.raises(RuntimeError) as caught:
        client(reference_client, live, expressions={"y": "x**2", "w": "__import__('os')"})
    message = str(caught.value)
    assert "422" in message
    assert "Formula of output 'w'" in message and "'__import__' is not an allowed function" in message
    assert not list(live.root.rglob("pwned"))


def test_formula_undefined_at_the_point(live, alice, reference_client):
    """log(x) at x = -1 is no error for GEMSEO: numpy warns and the output is nan. JSON has no
    nan: the service sends null, and the client's output grammar refuses it, naming the output."""
    local_out = create_discipline("AnalyticDiscipline", expressions={"y": "log(x)"}).execute({"x": numpy.array([-1.0])})
    assert numpy.isnan(local_out["y"]).all()
    job = alice.run("AnalyticDiscipline", discipline_options={"expressions": {"y": "log(x)"}}, input_data={"x": [-1.0]})
    assert job["job_status"] == "finished" and job["output_data"] == {"y": [None]}, job
    with pytest.raises(InvalidDataError, match=r"data\.y\[0\] must be number"):
        client(reference_client, live, ["execute", {"x": [-1.0]}], expressions={"y": "log(x)"})
