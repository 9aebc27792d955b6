"""Unit tests: settings, passwords, tokens, the admin command, file names."""

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from conftest import CODE


def python(code, env, cwd=None):
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd or CODE,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(CODE), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


SHOW = (
    "import json, settings; print(json.dumps({k: str(getattr(settings, k)) for k in "
    "('ROOT_PATH', 'USER_DATABASE_PATH', 'HUEY_DATABASE_PATH', 'FILE_DIRECTORY', "
    "'WORKSPACE_EXECUTION', 'HOST', 'PORT', 'WORKER_THREADS')}))"
)


def test_default_paths_live_under_the_root(tmp_path):
    shown = json.loads(python(SHOW, {"GEMSEO_HTTP_ROOT_PATH": "data"}, cwd=tmp_path))
    root = tmp_path / "data"
    assert shown["ROOT_PATH"] == str(root)
    for key in ("USER_DATABASE_PATH", "HUEY_DATABASE_PATH", "FILE_DIRECTORY", "WORKSPACE_EXECUTION"):
        assert shown[key].startswith(str(root) + "/"), key
    assert (shown["HOST"], shown["PORT"], shown["WORKER_THREADS"]) == ("127.0.0.1", "8000", "2")
    default = json.loads(python(SHOW, {}))
    assert default["ROOT_PATH"] == str(CODE / "var")


def test_path_settings_and_aliases(tmp_path):
    env = {
        "GEMSEO_HTTP_ROOT_PATH": str(tmp_path),
        "GEMSEO_HTTP_HUEY_DATABASE_PATH": str(tmp_path / "q.db"),
        "GEMSEO_HTTP_USER_FILE_DIRECTORY": str(tmp_path / "uploads"),
        "GEMSEO_HTTP_USER_WORKSPACE_EXECUTION": "runs",
    }
    shown = json.loads(python(SHOW, env, cwd=tmp_path))
    assert shown["HUEY_DATABASE_PATH"] == str(tmp_path / "q.db")
    assert shown["FILE_DIRECTORY"] == str(tmp_path / "uploads")
    assert shown["WORKSPACE_EXECUTION"] == str(tmp_path / "runs")


def test_bad_number_setting_names_the_key():
    result = subprocess.run(
        [sys.executable, "-c", "import settings"],
        cwd=CODE,
        env={"PATH": os.environ["PATH"], "GEMSEO_HTTP_PORT": "eighty"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "GEMSEO_HTTP_PORT" in result.stderr


def test_secret_key_is_created_once_private_and_reused(tmp_path):
    code = "import auth; print(auth.secret_key().decode())"
    env = {"GEMSEO_HTTP_ROOT_PATH": str(tmp_path)}
    first, second = python(code, env), python(code, env)
    assert first == second and len(first.strip()) == 64
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert python(code, {**env, "GEMSEO_HTTP_SECRET_KEY": "from-env" * 4}).strip() == "from-env" * 4


def test_an_empty_or_short_key_file_is_refused(tmp_path):
    (tmp_path / "secret_key").write_text("")
    result = subprocess.run(
        [sys.executable, "-c", "import auth; auth.secret_key()"],
        cwd=CODE,
        env={"PATH": os.environ["PATH"], "GEMSEO_HTTP_ROOT_PATH": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "shorter than 32" in result.stderr


@pytest.fixture
def auth_module(tmp_path, monkeypatch):
    import auth
    import settings

    monkeypatch.setattr(settings, "SECRET_KEY", "unit-test-key-" * 3)
    monkeypatch.setattr(auth, "_secret", None)
    yield auth
    auth._secret = None


def test_passwords_are_salted_scrypt(auth_module):
    first, second = auth_module.hash_password("pw"), auth_module.hash_password("pw")
    assert first != second and first.startswith("scrypt$")
    assert auth_module.check_password("pw", first)
    assert not auth_module.check_password("other", first)
    assert not auth_module.check_password("pw", "garbage")
    assert not auth_module.check_login("pw", None)


def test_tokens(auth_module, monkeypatch):
    user = {"id": 42, "token_version": 3}
    token = auth_module.make_token(user)
    assert auth_module.token_claims(token)[::2] == (42, 3)
    assert auth_module.token_claims(token[:-3] + "abc") is None
    assert auth_module.token_claims("not a token") is None
    assert auth_module.token_claims("") is None
    expired = auth_module.make_token(user, minutes=-1)
    assert auth_module.token_claims(expired) is None
    # A token signed with another key is refused.
    monkeypatch.setattr(auth_module, "_secret", b"another key")
    assert auth_module.token_claims(token) is None


def admin(args, env, stdin=""):
    return subprocess.run(
        [str(CODE / "bin" / "gaas-admin"), *args],
        input=stdin,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_admin_commands(tmp_path):
    env = {"GEMSEO_HTTP_ROOT_PATH": str(tmp_path)}
    assert admin(["create-user", "carol", "--password-stdin"], env, "pw1\n").returncode == 0
    assert admin(["create-user", "carol", "--password-stdin"], env, "pw1\n").returncode != 0
    # A password is never taken from the command line.
    refused = admin(["create-user", "dave", "--password", "pw"], env)
    assert refused.returncode != 0
    assert admin(["create-user", "erin", "--password-stdin"], env, "\n").returncode != 0
    listed = admin(["list-users"], env).stdout
    assert "carol" in listed and "scrypt" not in listed and "dave" not in listed
    assert admin(["set-password", "carol", "--password-stdin"], env, "pw2\n").returncode == 0
    code = (
        "import auth, store; user = store.user_by_name('carol');"
        "print(auth.check_password('pw2', user['password_hash']))"
    )
    assert python(code, env).strip() == "True"
    assert admin(["delete-user", "carol"], env).returncode == 0
    assert admin(["delete-user", "carol"], env).returncode != 0
    assert "carol" not in admin(["list-users"], env).stdout


@pytest.mark.parametrize(
    "name, safe",
    [
        ("report.txt", "report.txt"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/x.bin", "x.bin"),
        ("C:\\Users\\me\\in.dat", "in.dat"),
        ("..", ""),
        (".", ""),
        ("", ""),
        ("a\x00b\nc", "abc"),
    ],
)
def test_safe_name(name, safe):
    import files

    assert files.safe_name(name) == safe


def test_iso_timestamps():
    import wire

    assert wire.iso(0) == "1970-01-01T00:00:00.000Z"
    assert wire.iso(None) is None
    assert wire.iso(time.time()).endswith("Z")


@pytest.fixture(scope="module")
def jobproc():
    import jobproc

    return jobproc


def test_short_array_validation_gives_gemseo_answers(jobproc):
    import numpy
    from gemseo.core.grammars.errors import InvalidDataError
    from gemseo.core.grammars.json_grammar import JSONGrammar

    grammar = JSONGrammar("g")
    plain = {"type": "array", "items": {"type": "number"}}
    grammar.update_from_data({"x": numpy.zeros(2)})
    grammar.update_from_data({"bounded": numpy.zeros(2)})
    schema = grammar.schema
    assert schema["properties"]["x"] == plain
    seen = []
    checked = jobproc.ShortArrayValidation(lambda data: seen.append(data), grammar)
    big = numpy.arange(5000.0)
    checked({"x": big, "other": big, "small": numpy.zeros(3)})
    assert seen[-1]["x"].tolist() == [0.0] and seen[-1]["other"].size == 1 and seen[-1]["small"].size == 3
    # Arrays whose elements are not all numbers, or of more than one dimension, are checked whole.
    for value in (numpy.ones(5000, dtype=bool), numpy.ones((2, 5000)), numpy.array(["a"] * 5000)):
        checked({"x": value})
        assert seen[-1]["x"] is value
    # With the real validate: a valid big array passes, a wrong one fails as GEMSEO says.
    grammar.validate = jobproc.ShortArrayValidation(grammar.validate, grammar)
    grammar.validate({"x": big, "bounded": big})
    with pytest.raises(InvalidDataError, match=r"data.x\[0\] must be number"):
        grammar.validate({"x": numpy.ones(5000, dtype=bool), "bounded": big})
    # A constrained schema is never shortened.
    constrained = JSONGrammar("c")
    constrained.update_from_schema({"type": "object", "properties": {"x": dict(plain, maxItems=10)}})
    constrained.validate = jobproc.ShortArrayValidation(constrained.validate, constrained)
    with pytest.raises(InvalidDataError, match="must contain less than or equal to 10 items"):
        constrained.validate({"x": big})


def test_job_data_json(jobproc):
    import numpy
    import scipy.sparse

    data = {
        "a": numpy.array([1.5, numpy.nan, numpy.inf]),
        "t": numpy.arange(6.0).reshape(2, 3).T,
        "c": numpy.array([1 + 2j]),
        "s": scipy.sparse.eye(2, format="csr"),
        "g": numpy.float64(2.5),
        "name": "text",
    }
    assert json.loads(jobproc.dumps(data)) == {
        "a": [1.5, None, None],
        "t": [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]],
        "c": [1.0],
        "s": [[1.0, 0.0], [0.0, 1.0]],
        "g": 2.5,
        "name": "text",
    }
    assert json.loads(jobproc.dumps({"big": [2**70, float("nan")]})) == {"big": [2**70, None]}


def test_a_store_with_data_in_the_jobs_table_is_moved_not_lost(tmp_path):
    env = {"GEMSEO_HTTP_ROOT_PATH": str(tmp_path)}
    old_layout = (
        "import store; store.init(); conn = store.connect();"
        "conn.execute('DROP TABLE job_data');"
        "[conn.execute(f\"ALTER TABLE jobs ADD COLUMN {n} TEXT NOT NULL DEFAULT '{{}}'\") for n in store.DATA_FIELDS];"
        "conn.execute(\"INSERT INTO jobs (user_id, discipline_class_name, job_type, job_status, execution_mode,"
        " created_at, input_data, output_data) VALUES (1, 'Sellar1', 'execute', 'finished', 'synchronous', 0,"
        " '{\\\"x\\\": [1.0]}', '{\\\"y\\\": [2.0]}')\")"
    )
    python(old_layout, env)
    code = (
        "import json, store; store.init(); store.init(); row = store.get_job(1);"
        "print(json.dumps([row['input_data'], row['output_data'], row['jacobian_data'],"
        " 'input_data' in {r[1] for r in store.connect().execute('PRAGMA table_info(jobs)')}]))"
    )
    assert json.loads(python(code, env)) == ['{"x": [1.0]}', '{"y": [2.0]}', "{}", False]


def test_each_store_backend_provides_what_the_interface_leaves_to_it():
    # Guards store.Store: the methods it declares without SQL (they raise NotImplementedError)
    # are each backend's own; only PostgreSQL holds a queue (queue_task).
    import inspect

    import store
    import store_postgres
    import store_sqlite

    for interface, backends in (
        (store.Store, {store_sqlite.SqliteStore: {"queue_task"}, store_postgres.PostgresStore: set()}),
        (store.Feed, {store_sqlite.SqliteFeed: set(), store_postgres.PostgresFeed: set()}),
    ):
        declared = {name for name, value in vars(interface).items() if inspect.isfunction(value) and "raise NotImplementedError" in inspect.getsource(value)}
        assert declared
        for backend, left in backends.items():
            assert {name for name in declared if name not in vars(backend)} == left, backend
