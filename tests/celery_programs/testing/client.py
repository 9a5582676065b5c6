import subprocess
import sys

run = subprocess.run(
    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
    capture_output=True,
    text=True,
)
print(run.returncode, "4 passed" in run.stdout)
if run.returncode:
    print(run.stdout[-3000:], run.stderr[-2000:], file=sys.stderr)
