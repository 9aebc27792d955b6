"""The benchmark runs end to end (tiny counts); it prints figures, and no test asserts a time."""

import json
import subprocess
import sys

from conftest import CODE


def test_bench_smoke():
    result = subprocess.run(
        [sys.executable, str(CODE / "bench" / "bench.py"), "--smoke", "--only", "S1", "A1", "N1", "N2", "G1", "G2", "M1", "T2"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])["results"]["gaas"]
    assert figures["A1"]["lost"] == 0 and figures["A1"]["finished"] == 30
    assert figures["G2"]["returned"] == 100
    assert figures["M1"]["worker_processes"] >= 3
    assert figures["T2"]["evaluations"] == 10 and figures["T2"]["waited"] >= 1
    assert "S1" in result.stdout.splitlines()[1]
