import pytest


@pytest.fixture(scope="session")
def celery_config():
    return {"task_always_eager": False, "result_expires": 60}


@pytest.fixture(scope="session")
def celery_includes():
    return ["proj.tasks"]
