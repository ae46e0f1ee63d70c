"""JSON request bodies are checked at the edge, before any view sees them.

A body must be one JSON object, no larger than the endpoint's limit (413), nested at most ``MAX_DEPTH`` deep,
with no NUL character or lone surrogate in any key or string (PostgreSQL cannot store them) and no integer
outside the signed 64-bit range (no column can hold it) or non-finite number. Each refusal is a 400 in the one
error shape naming the field, e.g. ``vehicles[3].title``.
"""

import json

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser

MAX_DEPTH = 32
INT_MAX = 2**63 - 1


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class InputRefused(exceptions.ParseError):
    """A body that parsed but holds something no field may hold; names the field in ``fields``."""

    default_code = "invalid"

    def __init__(self, *, field: str, message: str):
        super().__init__(f"{field or 'body'}: {message}")
        self.extra = {"fields": {field or "body": [message]}}


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _path(parent: str, key) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


def json_checked(value):
    """Walk a parsed body without recursion and raise InputRefused at the first thing no field may hold."""
    stack: list[tuple[str, object, int]] = [("", value, 1)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise InputRefused(field=path, message=f"nested deeper than {MAX_DEPTH} levels")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and (problem := _string_problem(key)):
                    raise InputRefused(field=path or "body", message=f"a key {problem}")
                stack.append((_path(path, key), child, depth + 1))
        elif isinstance(item, str):
            if problem := _string_problem(item):
                raise InputRefused(field=path, message=problem)
        elif isinstance(item, int) and not isinstance(item, bool) and not -INT_MAX - 1 <= item <= INT_MAX:
            raise InputRefused(field=path, message="integer out of range")
    return value


def json_body_parse(data: bytes, *, limit: int):
    """Parse and check one JSON object of at most ``limit`` bytes (``data`` may hold one byte more)."""
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
    try:
        value = json.loads(data or b"{}", parse_constant=_refuse_constant)
    except RecursionError:
        raise InputRefused(field="body", message=f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise exceptions.ParseError(f"JSON parse error - {exc}") from None
    if not isinstance(value, dict):
        raise InputRefused(field="body", message=f"must be a JSON object, not {type(value).__name__}")
    return json_checked(value)


class StrictJSONParser(BaseParser):
    """The API's JSON parser: reads at most DATA_UPLOAD_MAX_MEMORY_SIZE + 1 bytes, then ``json_body_parse``."""

    media_type = "application/json"

    def body_limit(self) -> int:
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def parse(self, stream, media_type=None, parser_context=None):
        limit = self.body_limit()
        data = stream.read(limit + 1) if stream is not None else b""
        return json_body_parse(data, limit=limit)
