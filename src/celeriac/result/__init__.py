"""Handles on results: ``AsyncResult`` for a sent task, ``EagerResult`` for one run here,
``ResultSet`` for several, ``GroupResult`` for the tasks of a group.

``parent`` links the result of a chain's step to the step before it (set when the chain is
applied, in this process); ``children`` lists what a task caused, as its worker recorded it.

As in Celery, a task run by a worker may not wait for another task's result (``get()``): with
every pool process waiting, the task it waits for may never run. Inside a task, ``get()``
raises ``RuntimeError`` unless it is called within :func:`allow_join_result` or with
``disable_sync_subtasks=False``.
"""

from celeriac.result.joining import (
    E_WOULDBLOCK,
    allow_join_result,
    assert_will_not_block,
    denied_join_result,
)
from celeriac.result.sets import GroupResult, ResultHandle, ResultSet, result_from_tree, result_tree
from celeriac.result.single import (
    AsyncResult,
    EagerResult,
    decode_record,
    group_key,
    state_record,
)

__all__ = [
    "E_WOULDBLOCK",
    "AsyncResult",
    "EagerResult",
    "GroupResult",
    "ResultHandle",
    "ResultSet",
    "allow_join_result",
    "assert_will_not_block",
    "decode_record",
    "denied_join_result",
    "group_key",
    "result_from_tree",
    "result_tree",
    "state_record",
]
