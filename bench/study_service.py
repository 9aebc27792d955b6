"""A study through the service, end to end (issue 18): a real web app and worker on SQLite.

1. A Sellar MDF SLSQP study, POST /v1/study to its end seen by a long poll, against the same
   scenario run locally with GEMSEO (medians of --repeat runs, after one warm-up each).
2. The latency from an evaluation's end to the answer of a history long poll that was waiting
   for it: a DOE of a discipline that sleeps 20 to 40 ms and outputs the time it ended (an
   observable), followed with since=K; only the first evaluation of each answer that ended
   after its poll was sent counts.

    .venv/bin/python bench/study_service.py [--repeat 7] [--samples 300]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(CODE), str(CODE / "tests")]

from conftest import PLUGINS, Service  # noqa: E402
from gemseo import create_discipline  # noqa: E402
from sellar import SELLAR, sellar_scenario  # noqa: E402
from study_specs import sellar_spec  # noqa: E402

CLOCK = '''
import time

from gemseo.core.discipline import Discipline
from numpy import array


class Clock(Discipline):
    """Sleeps `duration` seconds, then outputs the time it ended."""

    def __init__(self, name=""):
        super().__init__(name)
        self.io.input_grammar.update_from_names(["duration"])
        self.io.output_grammar.update_from_names(["slept", "clock"])
        self.io.input_grammar.defaults = {"duration": array([0.01])}

    def _run(self, input_data):
        time.sleep(float(input_data["duration"][0]))
        return {"slept": input_data["duration"], "clock": array([time.time()])}
'''


def run_study(api, spec):
    """Seconds from the POST to the end seen by a long poll, and the ended Study."""
    start = time.perf_counter()
    created = api.post("/v1/study", json=spec, timeout=120).json()
    while True:
        found = api.get(f"/v1/study/{created['id']}?long_polling=true&long_polling_timeout=30").json()
        if found["study_status"] in ("finished", "failed"):
            return time.perf_counter() - start, found


def sellar(api, repeat):
    run_study(api, sellar_spec("MDF"))
    remote = [run_study(api, sellar_spec("MDF"))[0] for _ in range(repeat)]
    local = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        scenario = sellar_scenario(create_discipline(list(SELLAR)), "MDF")
        scenario.add_observable("y_1")
        scenario.execute(algo_name="SLSQP", max_iter=50)
        local.append(time.perf_counter() - start)
    print(f"Sellar MDF SLSQP: study POST to end {statistics.median(remote) * 1000:.0f} ms (median of {repeat}),"
          f" local GEMSEO {statistics.median(local[1:]) * 1000:.0f} ms")


def latency(api, samples):
    spec = {
        "name": "clock",
        "disciplines": [{"class_name": "Clock"}],
        "formulation": "DisciplinaryOpt",
        "design_space": {"duration": {"lower_bound": [0.02], "upper_bound": [0.04]}},
        "objective": {"name": "slept"},
        "observables": ["clock"],
        "algorithm": {"name": "PYDOE_LHS", "settings": {"n_samples": samples}},
    }
    created = api.post("/v1/study", json=spec, timeout=120).json()
    since, latencies, answers = 0, [], 0
    while since < samples:
        asked = time.time()
        page = api.get(f"/v1/study/{created['id']}/history?since={since}&long_polling=true&long_polling_timeout=30").json()
        answered = time.time()
        if not page["evaluation"]:
            continue
        answers += 1
        waited = [clock for clock in page["functions"]["clock"] if clock > asked]
        if waited:
            latencies.append((answered - waited[0]) * 1000)
        since = page["evaluation"][-1]
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    print(f"history long poll: {samples} evaluations in {answers} answers; end to answer over {len(latencies)}"
          f" waiting polls: p50 {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gaas-bench-study-"))
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "bench_clock.py").write_text(CLOCK)
    service = Service(root / "service")
    service.env["GEMSEO_PATH"] = f"{PLUGINS}:{plugins}"
    service.add_user("bench", "bench-pw")
    service.start_server()
    service.start_worker()
    try:
        api = service.api("bench", "bench-pw")
        sellar(api, args.repeat)
        latency(api, args.samples)
    finally:
        service.close()


if __name__ == "__main__":
    main()
