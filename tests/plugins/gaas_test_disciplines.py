"""Disciplines used by the tests, found through GEMSEO_PATH like any plugin."""

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

from gemseo.core.discipline import Discipline
from numpy import array


class _Simple(Discipline):
    inputs = {}
    outputs = ()

    def __init__(self, name=""):
        super().__init__(name)
        self.io.input_grammar.update_from_names(list(self.inputs))
        self.io.output_grammar.update_from_names(list(self.outputs))
        self.io.input_grammar.defaults = {key: array(value) for key, value in self.inputs.items()}


class WriteTag(_Simple):
    """Writes out.txt by a relative path, after a delay, and reads it back."""

    inputs = {"tag": [0.0], "delay": [0.0]}
    outputs = ("echo",)

    def _run(self, input_data):
        tag = int(input_data["tag"][0])
        Path("out.txt").write_text(f"tag {tag}\n")
        time.sleep(float(input_data["delay"][0]))
        return {"echo": array([float(Path("out.txt").read_text().split()[1])])}


class ReadInput(_Simple):
    """Reads input.txt from its directory and writes results/upper.txt."""

    inputs = {"x": [1.0]}
    outputs = ("length",)

    def _run(self, input_data):
        text = Path("input.txt").read_text()
        Path("results").mkdir(exist_ok=True)
        Path("results", "upper.txt").write_text(text.upper())
        print("read", len(text), "characters")
        return {"length": array([float(len(text))])}


class Failing(_Simple):
    inputs = {"x": [1.0]}
    outputs = ("y",)

    def _run(self, input_data):
        raise ValueError("the model diverged at x=%s" % input_data["x"][0])


class SquareRoot(_Simple):
    """y = sqrt(x): a negative x fails the run, a valid input all the same."""

    inputs = {"x": [1.0]}
    outputs = ("y",)

    def _run(self, input_data):
        x = float(input_data["x"][0])
        if x < 0:
            raise ValueError(f"no square root of {x}")
        return {"y": array([x**0.5])}


class Sleeper(_Simple):
    """Prints, then sleeps; with child=1 it starts a child process that sleeps too."""

    inputs = {"duration": [1.0], "child": [0.0]}
    outputs = ("slept",)

    def _run(self, input_data):
        duration = float(input_data["duration"][0])
        print("sleeper pid", os.getpid(), flush=True)
        if input_data["child"][0]:
            child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({duration})"])
            Path("child.pid").write_text(str(child.pid))
        time.sleep(duration)
        return {"slept": array([duration])}


class Crasher(_Simple):
    """mode 0: segfault; 1: os._exit(3); 2: SIGKILL itself."""

    inputs = {"mode": [0.0]}
    outputs = ("y",)

    def _run(self, input_data):
        mode = int(input_data["mode"][0])
        if mode == 0:
            ctypes.string_at(0)
        elif mode == 1:
            os._exit(3)
        os.kill(os.getpid(), 9)
        return {"y": array([0.0])}


class MemoryHog(_Simple):
    inputs = {"megabytes": [100.0]}
    outputs = ("y",)

    def _run(self, input_data):
        block = bytearray(int(input_data["megabytes"][0]) * 1024 * 1024)
        return {"y": array([float(len(block))])}


class Printer(_Simple):
    """Prints from Python and from C, to check that the job log gets both."""

    inputs = {"x": [1.0]}
    outputs = ("y",)

    def _run(self, input_data):
        print("python says hello")
        sys.stderr.write("python stderr line\n")
        ctypes.CDLL(None).puts(b"C says hello")
        return {"y": input_data["x"] * 2}


class Series(_Simple):
    """An output long enough to be plotted, and a file to download."""

    inputs = {"n": [50.0]}
    outputs = ("curve",)

    def _run(self, input_data):
        import numpy

        n = int(input_data["n"][0])
        curve = numpy.sin(numpy.linspace(0.0, 6.0, n))
        Path("curve.csv").write_text("\n".join(f"{value:.6f}" for value in curve) + "\n")
        return {"curve": curve}


class Counted(_Simple):
    """y = 2 x with its Jacobian; prints one line per run, so the log counts the runs."""

    inputs = {"x": [1.0]}
    outputs = ("y",)

    def _run(self, input_data):
        print("run at", float(input_data["x"][0]), flush=True)
        return {"y": input_data["x"] * 2}

    def _compute_jacobian(self, input_names=(), output_names=()):
        self._init_jacobian(input_names, output_names)
        self.jac = {"y": {"x": array([[2.0]])}}


class Timestamp(_Simple):
    """y = x after delay seconds; t is the time.time() of its end, so that a client can tell how
    soon it heard of the evaluation (bench/bench.py, T2)."""

    inputs = {"x": [0.0], "delay": [0.0]}
    outputs = ("y", "t")

    def _run(self, input_data):
        time.sleep(float(input_data["delay"][0]))
        return {"y": input_data["x"].copy(), "t": array([time.time()])}


class Documented(Discipline):
    """A plugin whose input grammar carries descriptions and units, as a dashboard shows them."""

    def __init__(self, name=""):
        super().__init__(name)
        self.io.input_grammar.update_from_names(["length", "load"])
        self.io.output_grammar.update_from_names(["deflection"])
        self.io.input_grammar.set_descriptions({"length": "Beam length [m]", "load": "Point load [N]"})
        self.io.input_grammar.defaults = {"length": array([2.0]), "load": array([100.0, 50.0, 10.0])}

    def _run(self, input_data):
        return {"deflection": input_data["load"] * input_data["length"][0] ** 3 / 1e6}


class SlowCounted(_Simple):
    """y = 2 x after delay seconds, failing for a negative x. Each run prints "run at x" and, when
    GAAS_TEST_RUNS names a file, appends x to it: a count of runs across processes and hosts."""

    inputs = {"x": [1.0], "delay": [0.0]}
    outputs = ("y",)

    def _run(self, input_data):
        x = float(input_data["x"][0])
        print("run at", x, flush=True)
        runs = os.environ.get("GAAS_TEST_RUNS")
        if runs:
            with open(runs, "a") as file:  # one short append: whole lines from concurrent runs
                file.write(f"{x!r}\n")
        time.sleep(float(input_data["delay"][0]))
        if x < 0:
            raise ValueError(f"no run at a negative x: {x}")
        return {"y": input_data["x"] * 2}
