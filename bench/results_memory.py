"""Memory and time of a web process serving a big batch's results (GET /v1/batch/{id}/results).

    .venv/bin/python bench/results_memory.py                       # 1,000 points of 1,000 floats
    .venv/bin/python bench/results_memory.py --points 10000 --size 100 --store postgresql
    .venv/bin/python bench/results_memory.py --code /path/to/other/checkout   # its web app

The batch is written straight into the store with store.py's own functions (no GEMSEO run): its
points finished with a vector output `y` of --size floats and a scalar `s`. Then for each format,
a fresh web process (bin/run_server.sh of --code) serves the results once; the growth of its peak
resident memory (VmHWM in /proc/PID/status) and the time to read the whole answer are printed,
last as one JSON line. --code must hold a .venv (a symlink to this one will do).
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

CODE = Path(__file__).resolve().parent.parent
TIMEOUT = 600


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_kib(pid):
    """The peak resident memory of a process (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def request(url, path, token=None, method="GET", body=None, headers=None):
    """(status, body bytes, seconds to read it all)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    start = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    seconds = time.perf_counter() - start
    conn.close()
    return response.status, data, seconds


class WebApp:
    """bin/run_server.sh of a checkout, on a free loopback port."""

    def __init__(self, code, env):
        self.code, self.port = Path(code), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env, GEMSEO_HTTP_PORT=str(self.port))
        log = open(Path(env["GEMSEO_HTTP_ROOT_PATH"]) / f"server-{self.port}.log", "ab")
        self.process = subprocess.Popen([str(self.code / "bin" / "run_server.sh")], cwd=self.code, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the web app did not start; see {log.name}")
            try:
                if request(self.url, "/health")[0] in (200, 503):
                    break
            except OSError:
                pass
            time.sleep(0.1)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def make_batch(store, user_id, points, size, seed=1):
    """A finished batch written through the store: input x, outputs y (size floats) and s."""
    rng = random.Random(seed)
    batch = {"user_id": user_id, "name": "bench", "discipline_class_name": "Bench", "design": '{"samples": %d}' % points, "input_names": '["x"]'}
    common = {"user_id": user_id, "name": "bench", "discipline_class_name": "Bench", "job_type": "execute", "job_status": "pending", "execution_mode": "asynchronous"}
    inputs = [json.dumps({"x": [float(index)]}) for index in range(points)]
    batch_id, ids, _ = store.create_batch(batch, common, inputs, "/nonexistent/")
    now = time.time()
    for start in range(0, points, 100):
        moves = []
        for job_id in ids[start : start + 100]:
            output = json.dumps({"y": [rng.random() for _ in range(size)], "s": [rng.random()]})
            moves.append(store.Move(job_id, "finished", ("pending",), None, {"started_at": now, "ended_at": now, "output_data": output}))
        store.set_statuses(moves)
    return batch_id


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1000, help="floats in each point's output y")
    parser.add_argument("--code", type=Path, default=CODE, help="the checkout whose web app serves")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--formats", nargs="+", default=["json", "csv"])
    parser.add_argument("--database-url", help="an empty PostgreSQL database to use, instead of a server of its own")
    args = parser.parse_args()

    engines = None
    with tempfile.TemporaryDirectory() as scratch:
        scratch = os.environ.get("KEEP_ROOT", scratch)
        env = dict(os.environ, GEMSEO_HTTP_ROOT_PATH=scratch, GEMSEO_HTTP_HOST="127.0.0.1", GEMSEO_HTTP_WORKERS="1", GEMSEO_HTTP_SYNC_PROCESSES="1")
        if args.database_url:
            env["GEMSEO_HTTP_DATABASE_URL"] = args.database_url
            figures_store = "postgresql"
        elif args.store == "postgresql":
            sys.path.insert(0, str(CODE / "tests"))
            import servers

            engines = servers.Backends()
            env.update(engines.settings("postgresql"))
            figures_store = "postgresql"
        else:
            figures_store = "sqlite"
        os.environ.update(env)
        sys.path.insert(0, str(CODE))
        import store  # after the environment: settings are read at import

        subprocess.run([str(args.code / "bin" / "gaas-admin"), "create-user", "bench", "--password-stdin"], input="bench-pw\n", text=True, env=env, check=True, capture_output=True)
        app = warm = None
        figures = {"points": args.points, "size": args.size, "store": figures_store, "code": str(args.code)}
        try:
            for kind in args.formats:
                app = WebApp(args.code, env)
                status, body, _ = request(app.url, "/token", method="POST", body="username=bench&password=bench-pw", headers={"Content-Type": "application/x-www-form-urlencoded"})
                assert status == 200, body
                token = json.loads(body)["access_token"]
                if "batch_id" not in figures:
                    user_id = json.loads(request(app.url, "/v1/user/me/", token)[1])["id"]
                    start = time.perf_counter()
                    figures["batch_id"] = make_batch(store, user_id, args.points, args.size)
                    warm = make_batch(store, user_id, 2, 10)
                    figures["stored_mb"] = round(store.connect().execute("SELECT sum(length(output_data)) FROM job_data").fetchone()[0] / 2**20, 1)
                    figures["write_s"] = round(time.perf_counter() - start, 2)
                # Warm the route once on a tiny answer, so that first-call costs are not counted.
                request(app.url, f"/v1/batch/{warm}/results?format={kind}", token)
                before = peak_kib(app.process.pid)
                status, body, seconds = request(app.url, f"/v1/batch/{figures['batch_id']}/results?format={kind}", token)
                after = peak_kib(app.process.pid)
                assert status == 200, body[:300]
                figures[kind] = {
                    "bytes": len(body),
                    "seconds": round(seconds, 2),
                    "peak_before_mib": round(before / 1024, 1),
                    "peak_after_mib": round(after / 1024, 1),
                    "growth_mib": round((after - before) / 1024, 1),
                }
                print(f"{kind}: {len(body) / 2**20:.1f} MB in {seconds:.2f} s, peak RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB (+{(after - before) / 1024:.1f})", flush=True)
                app.stop()
                app = None
        finally:
            if app is not None:
                app.stop()
            if engines is not None:
                engines.close()
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
