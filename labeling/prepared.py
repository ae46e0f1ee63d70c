"""A database cursor for the labeling hot path whose statements PostgreSQL plans once per connection.

Planning was most of PostgreSQL's time on the hot statements (0.2-0.4 ms each against well under 0.1 ms of
execution). Django turns psycopg's automatic preparation off (``prepare_threshold=None``, for connection
poolers); this cursor asks for it explicitly, on our few fixed statements only. Behind a pooler in
transaction mode without prepared-statement support (PgBouncer before 1.21) set
LABELING_PREPARED_STATEMENTS = False.
"""

import psycopg
from django.conf import settings
from django.db import connection


class _PreparingCursor(psycopg.Cursor):
    """Server-side binding, and every statement prepared (psycopg keeps them per connection, LRU)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)


def hot_cursor():
    """A cursor (Django's wrapper: query logging, error translation) for the hot path's raw statements."""
    # When queries are being logged (DEBUG, CaptureQueriesContext) Django would log a prepared statement's text
    # as None; then the same SQL runs unprepared, so the log stays readable and the results are the same.
    if (
        not getattr(settings, "LABELING_PREPARED_STATEMENTS", True)
        or connection.vendor != "postgresql"
        or connection.queries_logged
    ):
        return connection.cursor()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # None turns preparation off even for prepare=True; a threshold no statement reaches keeps automatic
        # preparation off for every other query (Django's cursors bind client-side and never prepare anyway).
        raw.prepare_threshold = 2**31 - 1
    # _prepare_cursor wraps a driver cursor exactly as connection.cursor() does (debug log, execute wrappers).
    return connection._prepare_cursor(_PreparingCursor(raw))
