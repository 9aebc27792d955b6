"""Two gaas services side by side, differing in settings, measured in alternation.

farm-bench alternates whole runs, a minute each; on a shared machine whose speed swings within
minutes, a 5% effect drowns in that. Here both services run at once and their requests
interleave: S1 in rounds of a few requests each, A1 and a batch in small rounds, the order of the
two flipped every round. A slow minute slows both alike; the ratios are of rounds run seconds
apart.

    .venv/bin/python bench/paired.py --a GEMSEO_HTTP_CACHE=user --b GEMSEO_HTTP_CACHE=off
    .venv/bin/python bench/paired.py --rounds 40 --only S1

Prints, for each figure, both medians, the median of the per-round ratios a/b and its spread,
and the ratio of the CPU time the two services' processes spent in their rounds; then one JSON
line.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def s1_round(target, n):
    client = target.client()
    times = [bench.execute(client)[1] for _ in range(n)]
    return statistics.median(times)


def a1_round(target, n):
    # Seconds per job, submitted from 8 threads and long-polled to their end (bench.a1).
    figures = bench.a1(target, n)
    assert figures["finished"] == n, figures
    return 1 / figures["end_to_end_jobs_per_s"]


def batch_round(target, n):
    client = target.client()
    base = next(bench.POINTS) * 1e-6
    start = time.perf_counter()
    batch, _ = bench.run_batch(client, [{"x_1": [base + i / n]} for i in range(n)])
    assert batch["counts"]["finished"] == n, batch
    return time.perf_counter() - start


def service_cpu(target):
    """CPU seconds of every process of a service so far (with their reaped children's): less
    swayed than wall time by other work on the machine."""
    ticks = 0
    for pid in {*bench.descendants(target.server_pid), *bench.descendants(target.worker_pid)}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


ROUNDS = {"S1": (s1_round, 30, "p50 of a round, ms"), "A1": (a1_round, 60, "ms a job, end to end"),
          "B1": (batch_round, 200, "a 200-point batch's end, ms")}


def settings(pairs):
    return dict(pair.split("=", 1) for pair in pairs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", nargs="*", default=["GEMSEO_HTTP_CACHE=user"], help="settings of service a")
    parser.add_argument("--b", nargs="*", default=["GEMSEO_HTTP_CACHE=off"], help="settings of service b")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=list(ROUNDS))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="gaas-paired-") as scratch:
        targets = []
        try:
            for name, given in (("a", args.a), ("b", args.b)):
                root = Path(scratch) / name
                root.mkdir()
                targets.append(bench.start_gaas(root, **settings(given)))
            for figure in args.only:
                run, n, unit = ROUNDS[figure]
                print(f"[paired] {figure} ...", file=sys.stderr, flush=True)
                seen, cpu = {"a": [], "b": []}, {"a": [], "b": []}
                for number in range(args.rounds):
                    order = (("a", targets[0]), ("b", targets[1]))
                    for name, target in order if number % 2 == 0 else order[::-1]:
                        before = service_cpu(target)
                        seen[name].append(run(target, n) * 1000)
                        cpu[name].append(service_cpu(target) - before)
                ratios = sorted(a / b for a, b in zip(seen["a"], seen["b"]))
                quartiles = statistics.quantiles(ratios, n=4)
                results[figure] = {
                    "unit": unit, "a_median": round(statistics.median(seen["a"]), 3),
                    "b_median": round(statistics.median(seen["b"]), 3),
                    "ratio_median": round(statistics.median(ratios), 4),
                    "ratio_quartiles": [round(quartiles[0], 4), round(quartiles[2], 4)], "rounds": args.rounds,
                    "service_cpu_ratio": round(sum(cpu["a"]) / sum(cpu["b"]), 4),
                }
        finally:
            for target in targets:
                target.stop()
    print(f"a: {' '.join(args.a)}\nb: {' '.join(args.b)}")
    for figure, row in results.items():
        print(f"{figure:3} {row['unit']:28} a {row['a_median']:9.3f}  b {row['b_median']:9.3f}  a/b {row['ratio_median']:.4f}"
              f" (quartiles {row['ratio_quartiles'][0]:.4f}-{row['ratio_quartiles'][1]:.4f}, {row['rounds']} rounds);"
              f" service CPU a/b {row['service_cpu_ratio']:.4f}")
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "a": args.a, "b": args.b, "results": results}))


if __name__ == "__main__":
    main()
