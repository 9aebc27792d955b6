"""What a study costs over plain GEMSEO, in process (study.py, issue 18).

1. Recording: the same scenario (built as study.run builds it, GEMSEO's SIMPLE cache on) executed
   with and without the job process's recording: study.py's recorder taking the new evaluations
   from the database, packed and sent in batches (one per 50 ms, at jobproc.EvaluationSender's
   alarm) through a pipe to another process, which builds their records, as a job process and
   its worker do; a cheap analytic DOE of many points (where the per-point cost shows most) and
   Sellar MDF with SLSQP.
2. A whole Sellar MDF SLSQP study (check, build, run, record, problem.h5) against the same
   optimisation written with GEMSEO's API locally.
Runs alternate; CPU times of this process (process_time: other work on the machine counts less),
medians (the overhead: the median of each pair's ratio), then one JSON line. Recording's overhead
is also given in wall time (the run's duration, pair by pair: the reader may use the other core).
The wall time spent inside the recorder's calls is shown too (a loaded machine inflates it: it
counts the time the process waits for a processor).

    .venv/bin/python bench/study_core.py [--repeat 7] [--only analytic_doe_2000 ...]
"""

import argparse
import contextlib
import gc
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(CODE), str(CODE / "tests")]

import jobproc  # noqa: E402
import study  # noqa: E402
from study_specs import analytic_spec, sellar_spec  # noqa: E402

# The specs the tests run: Sellar MDF with SLSQP, and a cheap analytic DOE of 2000 points.
SELLAR = sellar_spec()
ANALYTIC = analytic_spec(2000)
ANALYTIC["algorithm"]["settings"]["random_state"] = 1
del ANALYTIC["post_processing"]  # the run is timed, not the images


def drain():
    """A process that reads what a job process would send to its worker and builds the records,
    as the worker does; return the sending end of its pipe."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    if os.fork() == 0:
        writer.close()
        try:
            while True:
                study.unpack(reader.recv()["batch"])
        except EOFError:
            os._exit(0)
    reader.close()
    return writer


@contextlib.contextmanager
def simple_cache():
    """GEMSEO's default cache for the disciplines built meanwhile, as study.run and a local
    script have it (jobproc.Engine turned it off in this process, as in a job process)."""
    from gemseo.core.discipline import Discipline

    saved, Discipline.default_cache_type = Discipline.default_cache_type, Discipline.CacheType.SIMPLE
    try:
        yield
    finally:
        Discipline.default_cache_type = saved


def execute(engine, spec, pipe=None):
    """Build the scenario as study.run does and execute it, recording into the pipe or not."""
    with simple_cache():
        scenario = study._checked(engine, spec, 1).scenario
    problem = scenario.formulation.optimization_problem
    inside, count = [0.0], 0
    if pipe is not None:
        # As study.run and the job process do it, but for the scenario's check and problem.h5.
        sender = jobproc.EvaluationSender(pipe.send)
        stop = study._StopSignal(study._stopped_criterion(), None)
        recorder = study.Recorder(problem, sender.send_batch, stop, sender.pace)
        sender.follow(recorder.hand_on, recorder.lock)

        def timed(x_vect):
            # perf_counter: 0.06 us a call, where process_time (a system call) costs 1 us
            start = time.perf_counter()
            recorder(x_vect)
            inside[0] += time.perf_counter() - start

        problem.database.add_store_listener(timed)
    start, wall = time.process_time(), time.perf_counter()
    scenario.execute(algo_name=spec["algorithm"]["name"], **spec["algorithm"]["settings"])
    if pipe is not None:
        recorder.hand_on(last=True)
        sender.close()
        count = recorder.count
    return time.process_time() - start, count, inside[0], time.perf_counter() - wall


def plain_sellar():
    """The Sellar MDF SLSQP optimisation written with GEMSEO's API."""
    from gemseo import create_design_space, create_discipline, create_scenario

    start = time.process_time()
    space = create_design_space()
    for name, variable in SELLAR["design_space"].items():
        space.add_variable(name, len(variable["lower_bound"]), lower_bound=variable["lower_bound"],
                           upper_bound=variable["upper_bound"], value=variable["value"])
    with simple_cache():
        disciplines = create_discipline(["Sellar1", "Sellar2", "SellarSystem"])
        scenario = create_scenario(disciplines, "obj", space, formulation_name="MDF")
    scenario.add_constraint("c_1", constraint_type="ineq")
    scenario.add_constraint("c_2", constraint_type="ineq")
    scenario.add_observable("y_1")
    scenario.execute(algo_name="SLSQP", max_iter=50)
    return time.process_time() - start


def whole_study(engine):
    texts = []
    with tempfile.TemporaryDirectory() as workdir:
        start = time.process_time()
        summary = study.run(engine, SELLAR, workdir, lambda found: texts.extend(map(study.to_text, found)))
        elapsed = time.process_time() - start
    assert summary["n_evaluations"] == len(texts)
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", nargs="*", help="analytic_doe_2000, sellar_mdf_slsqp, sellar_study_vs_local")
    args = parser.parse_args()
    repeat, only = args.repeat, set(args.only or ())
    logging.disable(logging.CRITICAL)  # GEMSEO's INFO lines would be timed too
    engine = jobproc.Engine(frozenset())
    pipe = drain()
    gc.freeze()  # as the zygote does: what exists now is never traversed by a collection again
    figures = {}
    for label, spec in (("analytic_doe_2000", ANALYTIC), ("sellar_mdf_slsqp", SELLAR)):
        if only and label not in only:
            continue
        plain, recorded, listener, count, walls = [], [], [], 0, []
        execute(engine, spec, pipe)  # warm-up: first imports and lambdify
        for _ in range(repeat):
            plain_cpu, _, _, plain_wall = execute(engine, spec)
            plain.append(plain_cpu)
            elapsed, count, inside, wall = execute(engine, spec, pipe)
            recorded.append(elapsed)
            listener.append(inside)
            walls.append(wall / plain_wall)
        p, r, i = statistics.median(plain), statistics.median(recorded), statistics.median(listener)
        # Run by run (a plain run, then a recorded one): a drift of the machine's speed cancels out.
        paired = statistics.median(b / a for a, b in zip(plain, recorded))
        figures[label] = {
            "evaluations": count, "plain_cpu_s": round(p, 4), "recorded_cpu_s": round(r, 4),
            "overhead_pct": round(100 * (paired - 1), 2),
            "wall_overhead_pct": round(100 * (statistics.median(walls) - 1), 2), "listener_cpu_s": round(i, 4),
            "listener_pct": round(100 * i / p, 2), "listener_us_per_evaluation": round(1e6 * i / count, 1),
        }
        print(f"{label}: {count} evaluations, CPU plain {p * 1000:.1f} ms, recorded {r * 1000:.1f} ms"
              f" ({figures[label]['overhead_pct']:+.2f}%; wall {figures[label]['wall_overhead_pct']:+.2f}%); inside the recorder {i * 1000:.1f} ms ="
              f" {figures[label]['listener_pct']:.2f}% of plain, {1e6 * i / count:.0f} us per evaluation (target < 10%)")
    if only and "sellar_study_vs_local" not in only:
        print(json.dumps(figures))
        return
    plain, whole = [], []
    plain_sellar(), whole_study(engine)  # warm-up
    for _ in range(repeat):
        plain.append(plain_sellar())
        whole.append(whole_study(engine))
    p, w = statistics.median(plain), statistics.median(whole)
    figures["sellar_study_vs_local"] = {"local_cpu_s": round(p, 4), "study_cpu_s": round(w, 4), "ratio": round(w / p, 3)}
    print(f"Sellar MDF SLSQP, CPU: local GEMSEO {p * 1000:.1f} ms, whole study (check, build, run, record, problem.h5)"
          f" {w * 1000:.1f} ms, x{w / p:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
