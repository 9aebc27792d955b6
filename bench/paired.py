"""Two gaas services side by side, differing in settings, measured in alternation.

farm-bench alternates whole runs, a minute each; on a shared machine whose speed swings within
minutes, a 5% effect drowns in that. Here both services run at once and their requests
interleave: S1 in rounds of a few requests each, A1 and a batch in small rounds, the order of the
two flipped every round. A slow minute slows both alike; the ratios are of rounds run seconds
apart.

    .venv/bin/python bench/paired.py --a GEMSEO_HTTP_CACHE=user --b GEMSEO_HTTP_CACHE=off
    .venv/bin/python bench/paired.py --rounds 40 --only S1
    .venv/bin/python bench/paired.py --rounds 60 --both-orders   # two fresh pairs, b started first in the second

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


def measure(args, first, second):
    """{figure: (a's values, b's values, a's CPU, b's CPU)} of rounds on two fresh services, the
    one of settings `first` started first."""
    found = {}
    with tempfile.TemporaryDirectory(prefix="gaas-paired-") as scratch:
        targets = {}
        try:
            for name, given in (first, second):
                root = Path(scratch) / name
                root.mkdir()
                targets[name] = bench.start_gaas(root, **settings(given))
            for figure in args.only:
                run, n, _ = ROUNDS[figure]
                print(f"[paired] {figure} ...", file=sys.stderr, flush=True)
                seen, cpu = {"a": [], "b": []}, {"a": 0.0, "b": 0.0}
                for number in range(args.rounds):
                    order = ("a", "b") if number % 2 == 0 else ("b", "a")
                    for name in order:
                        before = service_cpu(targets[name])
                        seen[name].append(run(targets[name], n) * 1000)
                        cpu[name] += service_cpu(targets[name]) - before
                found[figure] = (seen["a"], seen["b"], cpu["a"], cpu["b"])
        finally:
            for target in targets.values():
                target.stop()
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", nargs="*", default=["GEMSEO_HTTP_CACHE=user"], help="settings of service a")
    parser.add_argument("--b", nargs="*", default=["GEMSEO_HTTP_CACHE=off"], help="settings of service b")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=list(ROUNDS))
    parser.add_argument("--both-orders", action="store_true",
                        help="measure again on two fresh services started the other way round, and give the geometric"
                        " mean of both: two identical services differ by a few percent, the same one each time")
    args = parser.parse_args()
    a, b = ("a", args.a), ("b", args.b)
    runs = [measure(args, a, b)] + ([measure(args, b, a)] if args.both_orders else [])
    results = {}
    for figure in args.only:
        ratios, cpu_ratios, a_values, b_values = [], [], [], []
        for run in runs:
            seen_a, seen_b, cpu_a, cpu_b = run[figure]
            ratios.append(sorted(x / y for x, y in zip(seen_a, seen_b)))
            cpu_ratios.append(cpu_a / cpu_b)
            a_values += seen_a
            b_values += seen_b
        medians = [statistics.median(values) for values in ratios]
        quartiles = [statistics.quantiles(values, n=4) for values in ratios]
        results[figure] = {
            "unit": ROUNDS[figure][2], "a_median": round(statistics.median(a_values), 3),
            "b_median": round(statistics.median(b_values), 3),
            "ratio_median": round(statistics.geometric_mean(medians), 4),
            "ratio_quartiles": [round(statistics.geometric_mean([q[0] for q in quartiles]), 4),
                                round(statistics.geometric_mean([q[2] for q in quartiles]), 4)],
            "rounds": args.rounds * len(runs),
            "service_cpu_ratio": round(statistics.geometric_mean(cpu_ratios), 4),
            "per_order": [{"ratio_median": round(m, 4), "service_cpu_ratio": round(c, 4)} for m, c in zip(medians, cpu_ratios)],
        }
    print(f"a: {' '.join(args.a)}\nb: {' '.join(args.b)}" + ("\n(both orders: geometric means)" if args.both_orders else ""))
    for figure, row in results.items():
        print(f"{figure:3} {row['unit']:28} a {row['a_median']:9.3f}  b {row['b_median']:9.3f}  a/b {row['ratio_median']:.4f}"
              f" (quartiles {row['ratio_quartiles'][0]:.4f}-{row['ratio_quartiles'][1]:.4f}, {row['rounds']} rounds);"
              f" service CPU a/b {row['service_cpu_ratio']:.4f}")
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "a": args.a, "b": args.b, "results": results}))


if __name__ == "__main__":
    main()
