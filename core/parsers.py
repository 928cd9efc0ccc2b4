"""JSON request bodies for every DRF endpoint: parsed by orjson, at most MAX_JSON_DEPTH deep.

DRF's own JSONParser uses the standard library, which accepts lone surrogates (`"\\ud800"`,
text no database can encode) and recurses until a RecursionError on a body nested about a
thousand levels deep: both ended in a 500. orjson refuses the first and stops at 1,024
levels; the depth check below refuses anything deeper than the platform ever reads.
"""

from collections.abc import Mapping
from typing import IO, Any

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

# Also the per-item limit of ingested metadata and end-user properties.
MAX_JSON_DEPTH = 32


def json_depth(value: object, limit: int = MAX_JSON_DEPTH) -> int:
    """Levels of nested objects/arrays in a parsed JSON value (a scalar is 0, `{}` is 1),
    counted level by level without recursion; stops once past `limit`."""
    depth = 0
    level = [value] if isinstance(value, dict | list) else []
    while level and depth <= limit:
        depth += 1
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            below.extend(child for child in children if isinstance(child, dict | list))
        level = below
    return depth


class JSONParser(BaseParser):
    media_type = "application/json"

    def parse(
        self, stream: IO[Any] | None, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}")
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(f"JSON parse error - nested more than {MAX_JSON_DEPTH} levels deep.")
        return data
