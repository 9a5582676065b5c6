import os
import time

deadline = time.monotonic() + 60
lines = []
while time.monotonic() < deadline:
    if os.path.exists(os.environ["PROGRAM_OUT"]):
        with open(os.environ["PROGRAM_OUT"]) as f:
            lines = f.read().split()
    if lines.count("hello") >= 2 and lines.count("32") >= 2:
        break
    time.sleep(0.1)
print(lines.count("hello") >= 2, lines.count("32") >= 2)
print(sorted(set(lines) - {"Happy", "Mondays!", "sunset"}))
