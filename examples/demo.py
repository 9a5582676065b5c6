"""`make demo`: a worker on the embedded SQLite broker, a few tasks, their results, and the
dashboard to watch them in.

Starts `celeriac -A tasks worker -c 2` and `celeriac -A tasks dashboard` (on 127.0.0.1:5555, or
$CELERIAC_DEMO_PORT) in this folder as subprocesses (as you would in a terminal), sends the
example tasks from this process and prints what comes back. On a terminal it then waits for
Enter, so you can look around the dashboard; then it stops both with SIGTERM (a warm shutdown).
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
    board = start_dashboard()
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
        if board is not None and sys.stdin.isatty():
            input("\nAll done. Look around the dashboard, then press Enter to stop it all. ")
        print("\nAll done. The worker shuts down now.")
    finally:
        for process in (worker, board):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def start_dashboard() -> subprocess.Popen[bytes] | None:
    """`celeriac -A tasks dashboard` on loopback; its address printed (None if it failed)."""
    port = os.environ.get("CELERIAC_DEMO_PORT", "5555")
    board = subprocess.Popen([CELERIAC, "-A", "tasks", "dashboard", "--port", port])
    time.sleep(1.0)  # it prints its address once it listens, or why it could not
    if board.poll() is not None:
        print("(the dashboard did not start: see the line above)")
        return None
    return board


if __name__ == "__main__":
    main()
