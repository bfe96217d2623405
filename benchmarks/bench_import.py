"""Import time of ``nftk_jax`` next to ``import jax`` and a TensorFlow import.

Each import runs in a fresh interpreter, ``--repeats`` times, interleaved, and the
median is reported; the ratios are measured side by side in one run.

    python benchmarks/bench_import.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, sys, time
t0 = time.perf_counter()
import {module}
print(json.dumps({{"s": time.perf_counter() - t0,
                   "tf": "tensorflow" in sys.modules}}))
"""


def _time(module: str) -> tuple[float, bool]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = json.loads(out.strip().splitlines()[-1])
    return info["s"], info["tf"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--with-tensorflow", action="store_true")
    args = p.parse_args()
    modules = ["jax", "nftk_jax"]  # plain neural_tangents fails on current JAX
    if args.with_tensorflow:
        modules.append("tensorflow")
    times: dict[str, list[float]] = {m: [] for m in modules}
    tf_loaded = {}
    for _ in range(args.repeats):
        for m in modules:
            s, tf = _time(m)
            times[m].append(s)
            tf_loaded[m] = tf
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"{'module':<16} {'median s':>9} {'x jax':>7}  loads TensorFlow")
    for m in modules:
        print(f"{m:<16} {med[m]:9.2f} {med[m] / med['jax']:7.2f}  {tf_loaded[m]}")


if __name__ == "__main__":
    main()
