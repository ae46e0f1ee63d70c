"""The labeling hot path's raw SQL plumbing: a cursor whose statements PostgreSQL plans once per connection,
the few places where PostgreSQL and SQLite spell a statement differently, and the write lock on SQLite.

Vote recording and assignment run the same statements on both databases (services.py, assignment.py); only
these fragments differ. Planning was most of PostgreSQL's time on the hot statements (0.2-0.4 ms each
against well under 0.1 ms of execution). Django turns psycopg's automatic preparation off
(``prepare_threshold=None``, for connection poolers); the hot cursor asks for it explicitly, on our few fixed
statements only. Behind a pooler in transaction mode without prepared-statement support (PgBouncer before
1.21) set LABELING_PREPARED_STATEMENTS = False.
"""

import contextlib
import json
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime

import psycopg
from django.conf import settings
from django.db import connection, transaction


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


class PreparingCursor(psycopg.Cursor):
    """Server-side binding, and every statement prepared (psycopg keeps them per connection, LRU)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)


def hot_cursor():
    """A cursor (Django's wrapper: query logging, error translation) for the hot path's raw statements."""
    # When queries are being logged (DEBUG, CaptureQueriesContext) Django would log a prepared statement's text
    # as None; then the same SQL runs unprepared, so the log stays readable and the results are the same.
    if not getattr(settings, "LABELING_PREPARED_STATEMENTS", True) or not is_postgres() or connection.queries_logged:
        return connection.cursor()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # None turns preparation off even for prepare=True; a threshold no statement reaches keeps automatic
        # preparation off for every other query (Django's cursors bind client-side and never prepare anyway).
        raw.prepare_threshold = 2**31 - 1
    # Public API only: Django's create_cursor() asks the psycopg connection for a cursor, which makes one of
    # its cursor_factory; swapped for this one call (the connection belongs to this thread), Django wraps
    # ours exactly as any other cursor. tests/labeling/test_hot_path.py fails if either side changes.
    factory = raw.cursor_factory
    raw.cursor_factory = PreparingCursor
    try:
        return connection.cursor()
    finally:
        raw.cursor_factory = factory


# --- Where the two databases differ -----------------------------------------------------------------------
def lock_rows(table: str, *, skip_locked: bool = False) -> str:
    """Row locks for a SELECT on PostgreSQL (FOR NO KEY UPDATE: inserts referencing the row are not
    blocked); nothing on SQLite, where the IMMEDIATE transaction already holds the database's write lock."""
    if not is_postgres():
        return ""
    return f"FOR NO KEY UPDATE OF {table}" + (" SKIP LOCKED" if skip_locked else "")


def not_in_ids(column: str, param: str) -> str:
    """``column`` is none of the ids in the list parameter ``param`` (pass the list through ``ids``)."""
    if is_postgres():
        return f"{column} <> ALL(%({param})s::bigint[])"
    return f"{column} NOT IN (SELECT value FROM json_each(%({param})s))"


def ids(values: Iterable[int]) -> list[int] | str:
    """A list of ids as ``not_in_ids`` and ``pairs`` read it: an array on PostgreSQL, JSON text on SQLite."""
    values = [int(v) for v in values]
    return values if is_postgres() else json.dumps(values)


def pairs_table(first: str, second: str) -> str:
    """A FROM item ``c(id, room)`` over two parallel list parameters (pass each through ``ids`` / ``rooms``)."""
    if is_postgres():
        return f"unnest(%({first})s::bigint[], %({second})s::int[]) AS c(id, room)"
    return (
        f"(SELECT f.value AS id, s.value AS room FROM json_each(%({first})s) f "
        f"JOIN json_each(%({second})s) s ON s.key = f.key) AS c"
    )


def rooms(values: Iterable[int | None]) -> list[int | None] | str:
    values = list(values)
    return values if is_postgres() else json.dumps(values)


def json_param(name: str) -> str:
    return f"%({name})s::jsonb" if is_postgres() else f"%({name})s"


def json_column(column: str) -> str:
    """A JSON column read back as text on both databases."""
    return f"{column}::text" if is_postgres() else column


def uuid_value(value):
    """A UUID as the database stores it (native on PostgreSQL, 32 hex digits on SQLite)."""
    return value if is_postgres() else value.hex


def datetime_value(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


# --- One writer at a time on SQLite -----------------------------------------------------------------------
# SQLite takes its write lock at BEGIN IMMEDIATE; a thread that finds it taken polls with sleeps of up to
# 100 ms (the busy timeout), so under a crowd answers waited far longer than the work. Threads of one server
# process queue on this lock instead, in order, and SQLite's lock is then only contended by other processes.
_sqlite_writer = threading.Lock()


@contextlib.contextmanager
def write_transaction() -> Iterator[None]:
    """``transaction.atomic()``, entered one thread at a time per process on SQLite."""
    if is_postgres() or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    with _sqlite_writer, transaction.atomic():
        yield
