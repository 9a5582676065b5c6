"""What the SQLite broker and the SQLite backend share: their file, opened with their schema on
first use, and their errors, which name the store and the file."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator

from celeriac._sqlite.database import SqliteDatabase, open_database, read_schema
from celeriac.exceptions import CeleriacError


class StoreFile:
    """One store's SQLite file.

    ``name`` says which store in errors ("SQLite broker"); ``schema_package`` ships the store's
    schema, ``schema`` (``sqlite.sql`` by default); ``error`` is what a failed ``sqlite3`` call
    becomes.
    """

    def __init__(
        self,
        path: str,
        *,
        name: str,
        schema_package: str,
        error: type[CeleriacError],
        schema: str = "sqlite.sql",
    ) -> None:
        self.path = path
        self._name = name
        self._schema_package = schema_package
        self._schema = schema
        self._error = error
        self._db: SqliteDatabase | None = None

    @contextlib.contextmanager
    def errors(self, what: str, error: type[CeleriacError] | None = None) -> Iterator[None]:
        """A context that turns ``sqlite3`` errors into ``error`` (the store's by default),
        naming the store, the file and ``what`` failed.

        Raises:
            CeleriacError: the ``error`` class given, or the store's, for a ``sqlite3.Error``.
        """
        try:
            yield
        except sqlite3.Error as exc:
            raise (error or self._error)(
                f"{self._name} at {self.path}: {what} failed: {exc}"
            ) from exc

    @property
    def db(self) -> SqliteDatabase:
        """The database, opened (and the store's schema created) on first use.

        Raises:
            CeleriacError: the store's error class: the file cannot be opened or created.
        """
        return self._db or self.open()

    def open(self, error: type[CeleriacError] | None = None) -> SqliteDatabase:
        """:attr:`db`, raising ``error`` (the store's by default) when it cannot be opened.

        Raises:
            CeleriacError: ``error``, or the store's: the file cannot be opened or created.
        """
        if self._db is None:
            with self.errors("opening the database", error):
                db = open_database(self.path)
                db.add_schema(read_schema(self._schema_package, self._schema))
            self._db = db
        return self._db

    def deadline(self, seconds: float) -> contextlib.AbstractContextManager[None]:
        """A context in which this thread waits for the file's lock no longer than ``seconds``
        from now, opening the file included (see ``SqliteDatabase.deadline``)."""
        db = self._db or open_database(self.path)  # the file is opened under the deadline
        return db.deadline(time.monotonic() + seconds)

    def close(self) -> None:
        """Close this thread's connection, if the file was opened."""
        if self._db is not None:
            self._db.close()
