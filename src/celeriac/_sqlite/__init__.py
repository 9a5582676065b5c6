"""SQLite plumbing shared by ``brokers/sqlite.py`` and ``backends/sqlite.py``; not public API.

- ``database.py``: one ``SqliteDatabase`` per file and process: its connections (one per
  thread), write transactions, waiting for another process's commit, and ``sqlite:///`` URLs.
- ``store.py``: ``StoreFile``, a store's view of its file: opened with the store's schema on
  first use, ``sqlite3`` errors raised as the store's own.

It imports nothing of celeriac above the core (``exceptions``, ``urls``, ``message``), so the
stores can use it without reaching the app.
"""
