"""``AnyOf``: "the column holds one of these values", sent to PostgreSQL as one array parameter.

``filter(id__in=ids)`` sends ``id IN (%s, %s, …)``: one placeholder per value, so a batch of 200 values costs
Django 200 bound parameters and psycopg a fresh conversion of a statement text that differs with every
batch size (too long for its cache). ``filter(AnyOf(F("id"), ids))`` sends ``id = ANY(%s::bigint[])`` on
PostgreSQL: one parameter, the same text for every batch; PostgreSQL plans an IN list as the same ANY.
Elsewhere (SQLite) it is the usual IN. An empty list matches nothing and, like IN, runs no query.
"""

from django.core.exceptions import EmptyResultSet
from django.db.models import Expression, Lookup
from django.db.models.lookups import In


class AnyOf(Lookup):
    """``lhs = ANY(values)``; ``values`` must already be of the column's Python type (ids, strings)."""

    lookup_name = "any_of"
    prepare_rhs = False

    def __init__(self, lhs: Expression, values) -> None:
        super().__init__(lhs, list(values))

    def as_sql(self, compiler, connection):
        if connection.vendor != "postgresql":
            return compiler.compile(In(self.lhs, self.rhs))
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if not self.rhs:
            raise EmptyResultSet
        array_type = self.lhs.output_field.cast_db_type(connection)
        return f"{lhs} = ANY(%s::{array_type}[])", (*lhs_params, self.rhs)
