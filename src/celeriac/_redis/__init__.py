"""Redis plumbing shared by ``brokers/redis.py`` and ``backends/redis.py``; not public API.

- ``connect.py``: URLs, ``RedisOptions``, the redis-py client and Redis's clock.
- ``keys.py``: every key name celeriac uses.
- ``scripts.py``: the loader of the ``redis_lua/*.lua`` package data and its shared library,
  ``lib.lua`` (beside it), and the composition of several scripts into one.
- ``database.py``: one ``RedisDatabase`` per server and process: the fast path and batches.

It imports nothing of celeriac above the core (``exceptions``, ``urls``, ``message``), so the
stores can use it without reaching the app. Importing ``connect.py`` imports ``redis``: only a
Redis URL does that.
"""
