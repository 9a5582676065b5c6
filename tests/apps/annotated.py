"""task_annotations as Celery's configuration guide writes them, for a real worker.

The tasks are defined before the configuration below names them: the app applies annotations
when it finalizes, too. Successes are noted in $CELERIAC_TEST_MARKS by an '@on_success'
wrapper that every task gets from the '*' entry.
"""

import os
import time

from celeriac import Celery

app = Celery("annotated")


@app.task
def stamp(n):
    return time.time()


@app.task
def plain(n):
    return n


def noting(on_success):
    def wrapper(self, retval, task_id, args, kwargs):
        with open(os.environ["CELERIAC_TEST_MARKS"], "a") as marks:
            marks.write(f"{self.name} {retval}\n")
        return on_success(self, retval, task_id, args, kwargs)

    return wrapper


app.conf.task_annotations = [
    {"annotated.stamp": {"rate_limit": "4/s"}},
    {"*": {"@on_success": noting}},
]
