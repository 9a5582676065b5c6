"""`make demo`: a worker on the embedded SQLite broker, a few tasks, their results.

Starts `celeriac -A tasks worker -c 2` in this folder as a subprocess (as you would in a
terminal), sends the example tasks from this process, prints what comes back, and stops the
worker with SIGTERM (a warm shutdown).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CELERIAC = str(Path(sys.executable).with_name("celeriac"))


def main() -> None:
    os.chdir(HERE)
    sys.path.insert(0, str(HERE))
    from tasks import add, divide, flaky, mul, test, tsum

    from celeriac import chain, chord, group

    print("Starting: celeriac -A tasks worker -c 2 -l info   (broker: ./celeriac.db)")
    worker = subprocess.Popen([CELERIAC, "-A", "tasks", "worker", "-c", "2", "-l", "info"])
    try:
        print("\ntest.delay(2, 2).get()            ->", test.delay(2, 2).get(timeout=30))
        results = [add.delay(i, i) for i in range(10)]
        print("[add.delay(i, i) for i in 0..9]  ->", [r.get(timeout=30) for r in results])
        started = time.monotonic()
        retries = flaky.delay(3).get(timeout=30)
        print(
            f"flaky.delay(3).get()             -> {retries} (after 3 retries, "
            f"{time.monotonic() - started:.1f}s)"
        )
        failed = divide.delay(1, 0)
        failed.get(timeout=30, propagate=False)
        print("divide.delay(1, 0).state         ->", failed.state, repr(failed.result))
        later = add.apply_async((40, 2), countdown=2)
        print("add.apply_async(countdown=2)     ->", later.get(timeout=30))
        print(
            "chain(add.s(4, 4) | mul.s(8))()  ->", chain(add.s(4, 4) | mul.s(8))().get(timeout=30)
        )
        total = chord(group(add.s(i, i) for i in range(100)), tsum.s())().get(timeout=30)
        print("chord(100 x add, tsum)()         ->", total)
        print("\nAll done. The worker shuts down now.")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


if __name__ == "__main__":
    main()
