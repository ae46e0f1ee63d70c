"""OpenAPI: every operation documents the error answers of the one error shape it can give (core.api), so a
client (and the schemathesis run in CI) knows every status the API may answer."""

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": True},
            },
            "required": ["code", "message"],
            "additionalProperties": True,
        }
    },
    "required": ["error"],
}

COMMON = {
    "400": "Invalid input (the message and ``fields`` name what to change).",
    "401": "Not authenticated.",
    "403": "Not allowed for this user's role.",
    "404": "No such resource (or not visible to this user).",
    "503": "The database or cache is briefly unreachable; retry after ``Retry-After`` seconds.",
}
WRITES = {
    "409": "The resource is not in a state that allows this.",
    "413": "The request body is too large.",
}


def error_responses_document(result, generator, request, public):
    """drf-spectacular postprocessing hook: add the error answers to every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            extra = {**COMMON, **(WRITES if method in {"post", "put", "patch", "delete"} else {})}
            for status, description in extra.items():
                operation["responses"].setdefault(status, {"description": description, "content": reference})
    return result
