import os

from .celery import app


@app.task
def test(arg):
    with open(os.environ["PROGRAM_OUT"], "a") as f:
        f.write(f"{arg}\n")


@app.task
def add(x, y):
    z = x + y
    with open(os.environ["PROGRAM_OUT"], "a") as f:
        f.write(f"{z}\n")
    return z
