from celery.contrib.testing.worker import start_worker
from proj.tasks import mul, who


def test_create_task(celery_app, celery_worker):
    @celery_app.task
    def mul_inline(x, y):
        return x * y

    assert mul_inline.delay(4, 4).get(timeout=10) == 16


def test_shared_tasks(celery_app, celery_worker):
    assert mul.delay(6, 7).get(timeout=10) == 42
    assert who.delay().get(timeout=10) is True


def test_session(celery_session_app, celery_session_worker):
    assert celery_session_app.send_task("proj.tasks.mul", (2, 5)).get(timeout=10) == 10


def test_start_worker(celery_app):
    with start_worker(celery_app, perform_ping_check=False):
        assert mul.delay(3, 3).get(timeout=10) == 9
