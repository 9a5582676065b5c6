from .celery import OUT, app


@app.task
def add(x, y):
    return x + y


@app.task
def echo(text):
    return text


@app.task
def error_handler(request, exc, traceback):
    with open(OUT, "a") as f:
        f.write(f"Task {request.id} raised exception: {exc!r}\n")
