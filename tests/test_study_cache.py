"""A study's evaluations go through the results cache (issue 19, point 4): a study run again
replays its points from the store, a study over a batch's points hits them, a Sellar MDF study
run again is all hits; the cache's scope, "cache": false and a deleted source study."""

import itertools
import time

import pytest

from conftest import start_service
from study_specs import sellar_spec
from test_batches import submit as submit_batch
from test_batches import wait_batch
from test_cache import cache_counts, runs
from test_internals import tmp_store  # noqa: F401 (a fixture)
from test_studies import submit, wait_study

# The lookups and entries are SQL of each store; the queue plays no part in them.
BACKENDS = ("sqlite", "postgresql")
# Design spaces no other test of the module covers: each test counts SlowCounted's runs at its
# points. Steps of 1/4 from a binary fraction are exact, as a DOE computes them.
_ranges = itertools.count(1)


@pytest.fixture(scope="module")
def service(tmp_path_factory, backend, backends):
    """A service (cache scope "user") that counts SlowCounted's runs in a file."""
    root = tmp_path_factory.mktemp("study-cache")
    service = start_service(root, GAAS_TEST_RUNS=root / "runs", **backends.settings(backend))
    yield service  # pytest runs what follows at teardown, whatever the tests did
    service.close()


@pytest.fixture(scope="module")
def alice(service):
    return service.api("alice", "alice-pw")


def counted_doe(**fields):
    """A full-factorial DOE of five points over a range of x of its own, on SlowCounted."""
    lower = 10.0 + 1 / 64 + 2 * next(_ranges)
    return {
        "name": "counted",
        "disciplines": [{"class_name": "SlowCounted"}],
        "formulation": "DisciplinaryOpt",
        "design_space": {"x": {"lower_bound": [lower], "upper_bound": [lower + 1.0]}},
        "objective": {"name": "y"},
        "algorithm": {"name": "PYDOE_FULLFACT", "settings": {"n_samples": 5}},
        **fields,
    }


def run_study(api, spec):
    """Submit a study and wait for it; return it, finished, and its history."""
    study = wait_study(api, submit(api, spec)["id"])
    assert study["study_status"] == "finished", study
    history = api.get(f"/v1/study/{study['id']}/history")
    assert history.status_code == 200, history.text
    return study, history.json()


def xs(history):
    return [point[0] for point in history["x"]["x"]]


def run_counts(service, history):
    return [runs(service, x) for x in xs(history)]


@pytest.mark.every_backend
def test_a_doe_study_run_again_replays_its_points_from_the_cache(service, alice):
    spec = counted_doe()
    first, history = run_study(alice, spec)
    assert len(xs(history)) == 5 and run_counts(service, history) == [1] * 5
    before = cache_counts(service)
    again, replayed = run_study(alice, spec)
    assert run_counts(service, history) == [1] * 5  # not one run more
    assert replayed == history and again["best"] == first["best"]
    hits, misses = cache_counts(service)
    assert (hits - before[0], misses - before[1]) == (5, 0)


@pytest.mark.every_backend
def test_a_study_over_the_points_of_a_batch_hits_them_all(service, alice):
    spec = counted_doe()
    lower = spec["design_space"]["x"]["lower_bound"][0]
    points = [lower + step / 4 for step in range(5)]
    batch = wait_batch(alice, submit_batch(alice, {"samples": [{"x": [x]} for x in points]}, name="SlowCounted")["id"])
    assert batch["batch_status"] == "finished", batch
    assert [runs(service, x) for x in points] == [1] * 5
    _, history = run_study(alice, spec)
    assert sorted(xs(history)) == points
    assert run_counts(service, history) == [1] * 5
    assert [value for value in history["functions"]["y"]] == [2 * x for x in xs(history)]


@pytest.mark.every_backend
def test_a_sellar_mdf_study_run_again_takes_every_evaluation_from_the_cache(service, alice):
    spec = sellar_spec()  # the only Sellar study of its service: nothing known at first
    before = cache_counts(service)
    started = time.monotonic()
    first, history = run_study(alice, spec)
    took = time.monotonic() - started
    middle = cache_counts(service)
    assert middle[0] == before[0] and middle[1] > before[1]  # nothing known: every lookup a miss
    started = time.monotonic()
    again, replayed = run_study(alice, spec)
    print(f"Sellar MDF SLSQP study: {took:.3f} s, run again from the cache {time.monotonic() - started:.3f} s")
    after = cache_counts(service)
    assert (after[0] - middle[0], after[1] - middle[1]) == (middle[1] - before[1], 0)
    assert again["best"] == first["best"] and replayed == history


def test_no_lookup_with_cache_false_nor_across_users(service, alice):
    spec = counted_doe()
    _, history = run_study(alice, spec)
    _, again = run_study(alice, {**spec, "cache": False})
    assert run_counts(service, history) == [2] * 5 and again == history
    # Another user's results are not in scope (GEMSEO_HTTP_CACHE=user).
    run_study(service.api("bob", "bob-pw"), spec)
    assert run_counts(service, history) == [3] * 5
    # Its own, the first's or the second's (cache false offers its results all the same): hits.
    run_study(alice, spec)
    assert run_counts(service, history) == [3] * 5


@pytest.mark.every_backend
def test_a_deleted_study_is_no_longer_a_source(service, alice):
    spec = counted_doe()
    study, history = run_study(alice, spec)
    assert alice.delete(f"/v1/study/{study['id']}").status_code == 204
    run_study(alice, spec)
    assert run_counts(service, history) == [2] * 5


def test_a_study_discipline_keys_a_point_as_a_job_does():
    """In process: the key a study's Sellar1 looks up at a point is that of a job at that point;
    a hit is not run, and a miss is offered under that key."""
    import numpy

    import cache
    import jobproc
    import study_cache

    engine, name = jobproc.Engine(frozenset()), "Sellar1"
    fields = {"user_id": 7, "discipline_class_name": name, "discipline_options": "{}", "job_type": "execute", "input_files": "[]"}
    job_key = cache.key(fields, {"x_1": [2.0]}, cache.Discipline(name, engine.code[name], engine.describe(name, {})))
    asked, answers = [], [{}, {job_key: '{"y_1": [5.0]}'}]

    def ask(message):
        asked.append(message["cache_get"])
        return {"cache_entries": answers.pop(0)}

    for expected in ("run", "hit"):
        request = {"parts": [cache.scope_parts(7, name, "{}")], "lookup": True, "known": [job_key[:16]]}
        caches = study_cache.StudyCaches(request, engine.code, ask)
        discipline = engine.create(name, {})
        caches.attach([discipline], [{"class_name": name}])
        y_1 = discipline.execute({"x_1": numpy.array([2.0])})["y_1"]
        assert asked.pop() == [job_key]
        if expected == "run":
            assert y_1[0] != 5.0 and [put[0] for put in caches.message()["cache_put"]] == [job_key]
        else:
            assert y_1.tolist() == [5.0] and caches.message() == {}
        assert caches.last_message()["cache_counts"] == {"hit": int(expected == "hit"), "miss": int(expected == "run")}


def test_a_studys_entries_go_with_its_job_and_with_cache_clear(tmp_store):
    """In process (SQLite): known keys by class and user, lookups, and the entries' lifecycle."""
    import jobs

    user_id = tmp_store.add_user("carol", "hash")
    fields = {"user_id": user_id, "discipline_class_name": "Study", "job_type": "study", "job_status": "finished", "execution_mode": "asynchronous"}
    job_ids = [tmp_store.create_job(dict(fields), jobs.workdir_prefix(user_id))["id"] for _ in range(2)]
    entries = [("a" * 64 + ":code", "Sellar1", '{"y_1": [1.0]}'), ("b" * 64 + ":code", "Sellar2", '{"y_2": [2.0]}')]
    tmp_store.add_cached_evaluations(job_ids[0], user_id, entries[:1], hits=2, misses=3)
    tmp_store.add_cached_evaluations(job_ids[1], user_id, entries[1:])
    assert sorted(tmp_store.known_cache_keys(["Sellar1", "Sellar2"], user_id)) == ["a" * 16, "b" * 16]
    assert tmp_store.known_cache_keys(["Sellar1"], user_id + 1) == []
    assert tmp_store.cached_evaluations([entries[0][0], "c" * 64]) == {entries[0][0]: entries[0][2]}
    assert tmp_store.cache_counts() == {"hit": 2, "miss": 3}
    tmp_store.delete_job(job_ids[0])
    tmp_store.add_cached_evaluations(job_ids[0], user_id, entries[:1])  # its last ones, after the delete
    assert tmp_store.known_cache_keys(["Sellar1", "Sellar2"], None) == ["b" * 16]
    assert tmp_store.clear_cache("Sellar2") == 1
    assert tmp_store.known_cache_keys(["Sellar1", "Sellar2"], None) == []
