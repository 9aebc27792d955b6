"""What the DOE and optimiser back ends cost a zygote: its start (import GEMSEO, scan the
disciplines) and its memory, then the first algorithm catalogue and the first DOE of a warm
process. `--hide pyDOE3,openturns,nlopt` makes those packages unimportable, as on an install
without them. Prints one JSON line.

    .venv/bin/python bench/zygote.py [--hide NAMES] [--stage start|algorithms|doe]
"""

import argparse
import gc
import importlib.abc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Hidden(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(name)
        return None


def pss_mib():
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hide", default="")
    parser.add_argument("--stage", choices=("start", "algorithms", "doe"), default="doe")
    args = parser.parse_args()
    if args.hide:
        sys.meta_path.insert(0, Hidden(set(args.hide.split(","))))
    import jobproc

    figures = {}
    started = time.perf_counter()
    engine = jobproc.Engine(frozenset())
    gc.freeze()
    figures["start_s"] = round(time.perf_counter() - started, 3)
    figures["start_pss_mib"] = pss_mib()
    if args.stage in ("algorithms", "doe"):
        started = time.perf_counter()
        catalogue = engine.algorithms()
        figures["algorithms_s"] = round(time.perf_counter() - started, 3)
        figures["algorithms"] = {kind: len(entries) for kind, entries in catalogue.items()}
        figures["algorithms_pss_mib"] = pss_mib()
    if args.stage == "doe":
        space = {"x": {"lower_bound": [0.0, 0.0], "upper_bound": [1.0, 1.0]}}
        started = time.perf_counter()
        engine.doe({"algo_name": "LHS", "n_samples": 20, "design_space": space}, 10_000)
        figures["first_doe_s"] = round(time.perf_counter() - started, 3)
    figures["modules"] = sorted({name.partition(".")[0] for name in sys.modules} & {"pyDOE3", "openturns", "nlopt"})
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
