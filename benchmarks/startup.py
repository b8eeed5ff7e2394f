"""Start-up cost: `import torch`, `import vlprompt`, `vlprompt --help` and `vlprompt train --help`,
each in a fresh interpreter, median of N runs, with the ratio of `import vlprompt` to
`import torch` (target: at most 1.3; the API loads on first use, so today it is far below).

    python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = {
    "import torch": [sys.executable, "-c", "import torch"],
    "import vlprompt": [sys.executable, "-c", "import vlprompt"],
    "import vlprompt + its API": [sys.executable, "-c", "import vlprompt; vlprompt.train"],
    "vlprompt --help": [sys.executable, "-m", "vlprompt", "--help"],
    "vlprompt train --help": [sys.executable, "-m", "vlprompt", "train", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case (median reported)")
    args = parser.parse_args()
    times = {}
    for name, cmd in CASES.items():
        samples = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            samples.append(time.perf_counter() - t0)
        times[name] = statistics.median(samples)
        print(f"{name:28s} {times[name]:6.2f} s")
    print(f"import vlprompt / import torch: {times['import vlprompt'] / times['import torch']:.2f}")
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
