from .celery import app


@app.task(bind=True)
def compress_video(self, name):
    return f"{name} on {self.request.delivery_info['routing_key']}"


@app.task(bind=True)
def import_feed(self, url):
    return f"{url} on {self.request.delivery_info['routing_key']}"


@app.task(bind=True)
def where(self):
    return self.request.delivery_info["routing_key"]
