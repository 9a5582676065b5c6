import time

from .celery import app


@app.task(bind=True)
def upload_files(self, filenames):
    for i, _file in enumerate(filenames):
        if not self.request.called_directly:
            self.update_state(state="PROGRESS", meta={"current": i, "total": len(filenames)})
        time.sleep(0.3)
    return len(filenames)
