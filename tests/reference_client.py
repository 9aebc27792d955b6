"""The reference client, the HTTPDiscipline of gemseo-http 3.0.0, unchanged, in a venv of its own.

It needs gemseo[all], which gaas does not install (tests/venvs.py makes its venv). Both ends of
the pipe live here: the tests hold a ReferenceClient; this file, run by the reference venv's
python, answers it, one JSON request a line on stdin and one JSON answer a line on stdout. One
process serves the whole session, so GEMSEO is imported once, not once a test.

A request names a client and steps run on it in order, e.g.

    {"url": "http://127.0.0.1:8123", "user": "alice", "password": "alice-pw",
     "options": {"name": "remote Sellar1", "class_name": "Sellar1"},
     "steps": [["grammars"], ["execute", {"x_1": [2.0]}]]}

and the answer is each step's result, or the exception that stopped them; the tests raise it
again as the same class when they can import it (RuntimeError, GEMSEO's errors).
"""

import importlib
import json
import os
import select
import subprocess
import sys
import traceback
from pathlib import Path
from urllib.parse import urlsplit

TIMEOUT = 300


class RemoteError(Exception):
    """An exception of the reference client whose class the tests cannot import."""


class ReferenceClient:
    """The tests' end: sends requests to one driver process, started at once and again if it dies."""

    def __init__(self, bin_dir, log_path):
        self.command = [str(Path(bin_dir) / "python"), __file__]
        self.log_path = Path(log_path)
        self.process = None
        self.start()

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )
        # Its first line says GEMSEO is imported: the wait lands on the fixture, not on a test.
        self.read()

    def read(self):
        ready, _, _ = select.select([self.process.stdout], [], [], TIMEOUT)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise AssertionError(f"the reference client did not answer:\n{self.log()}")
        return json.loads(line)

    def log(self):
        return self.log_path.read_text(errors="replace")[-5000:]

    def run(self, url, *steps, user="alice", password="alice-pw", **options):
        """Make an HTTPDiscipline(**options) of user on the service at url, run steps; their results."""
        return self.send(dict(url=url, user=user, password=password, options=options, steps=steps))

    def sellar(self, url, without_cache=True, **execute):
        """Run the Sellar MDF scenario on the three remote disciplines of alice; its sellar.optimum()."""
        request = dict(url=url, user="alice", password="alice-pw", without_cache=without_cache, execute=execute)
        return self.send(dict(request, sellar=True))

    def send(self, request):
        if self.process is None:
            self.start()
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError:
            self.close()
            raise AssertionError(f"the reference client died:\n{self.log()}") from None
        answer = self.read()
        if "error" in answer:
            raise rebuilt(**answer["error"])
        return answer["results"]

    def close(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            for pipe in (self.process.stdin, self.process.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass  # a request it never read: it is gone anyway
            self.process = None


def rebuilt(classes, message, trace):
    """The remote exception as the first of its classes (its own, then its bases) found here."""
    for name in classes:
        module, _, qualname = name.partition(":")
        try:
            found = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
            error = found(message)
        except Exception:
            continue
        if isinstance(error, Exception):
            error.add_note(f"raised by the reference client:\n{trace}")
            return error
    return RemoteError(f"{classes[0]}: {message}\n{trace}")


# The driver's end, in the reference venv.


def jsonable(value):
    """numpy arrays as lists, in nested dicts."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    return value.tolist() if hasattr(value, "tolist") else value


def client(request, **options):
    from gemseo_http.http_discipline import HTTPDiscipline

    parts = urlsplit(request["url"])
    return HTTPDiscipline(
        url=f"{parts.scheme}://{parts.hostname}",
        port=parts.port,
        user=request["user"],
        password=request["password"],
        # The client sends one request by a relative path: it needs a base URL.
        httpx_client_options={"base_url": request["url"], "timeout": 60},
        **options,
    )


def grammars(discipline):
    inputs, outputs = discipline.io.input_grammar, discipline.io.output_grammar
    return {
        "inputs": list(inputs.names),
        "outputs": list(outputs.names),
        "input_properties": list(inputs.schema["properties"]),
        "output_properties": list(outputs.schema["properties"]),
        "defaults": list(inputs.defaults),
    }


def execute(discipline, input_data=None):
    from numpy import array

    data = None if input_data is None else {name: array(value) for name, value in input_data.items()}
    return jsonable(dict(discipline.execute(data)))


def linearize(discipline, input_data, options=None):
    from numpy import array

    jacobian = discipline.linearize({name: array(value) for name, value in input_data.items()}, **(options or {}))
    return {"jacobian": jsonable(dict(jacobian)), "data": jsonable(dict(discipline.io.data))}


def differentiate(discipline, inputs, outputs):
    discipline.add_differentiated_inputs(inputs)
    discipline.add_differentiated_outputs(outputs)


def no_cache(discipline):
    discipline.set_cache(discipline.CacheType.NONE)


def get(discipline, url):
    return discipline._http_client.get(url).json()


STEPS = {step.__name__: step for step in (grammars, execute, linearize, differentiate, no_cache, get)}


def sellar(request):
    """The three Sellar disciplines, with the README's workaround (no cache) unless told."""
    from sellar import SELLAR, optimum, sellar_scenario

    disciplines = []
    for class_name in SELLAR:
        discipline = client(request, name=class_name, class_name=class_name)
        if request["without_cache"]:
            no_cache(discipline)
        disciplines.append(discipline)
    scenario = sellar_scenario(disciplines)
    scenario.execute(**request["execute"])
    return optimum(scenario)


def answer(request):
    if request.get("sellar"):
        return sellar(request)
    discipline = client(request, **request["options"])
    return [STEPS[name](discipline, *args) for name, *args in request["steps"]]


def main():
    # Only answers on stdout: whatever GEMSEO prints goes to stderr, the log.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # The slow import, before saying ready.
    import gemseo_http.http_discipline  # noqa: F401

    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        try:
            reply = {"results": answer(json.loads(line))}
        except Exception as error:
            classes = [f"{cls.__module__}:{cls.__qualname__}" for cls in type(error).__mro__[:-1]]
            reply = {"error": {"classes": classes, "message": str(error), "trace": traceback.format_exc()}}
        print(json.dumps(reply), file=out, flush=True)


if __name__ == "__main__":
    main()
