"""Values of product rows as Vern handles them: converted to what a column holds (``coerce``), kept
with their types in a sealed plan (``dumps``, ``loads``), and shown in an export (``plain``).
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column
from sqlalchemy.types import Integer, Numeric


def coerce(column: Column[Any], value: Any) -> Any:  # noqa: PLR0911 - one rule per type
    """``value`` converted to what ``column`` holds, or None when it cannot be."""
    if value is None:
        return None
    if isinstance(column.type, Integer) and not isinstance(value, int):
        try:
            return int(str(value).strip())
        except ValueError:
            return None
    if isinstance(column.type, Numeric) and isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return None
    if (
        not isinstance(column.type, Integer | Numeric)
        and isinstance(value, int | Decimal)
        and not isinstance(value, bool)
    ):
        try:
            python_type = column.type.python_type
        except NotImplementedError:
            python_type = str
        if python_type is str:
            return str(value)
    return value


# -- storing rows in the sealed plan: JSON with types kept -------------------------------------


def dumps(value: Any) -> str:
    return json.dumps(value, default=_encode, separators=(",", ":"), ensure_ascii=False)


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_decode)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, value),) = obj.items()
        if key == "$dt":
            return datetime.fromisoformat(value)
        if key == "$d":
            return date.fromisoformat(value)
        if key == "$dec":
            return Decimal(value)
        if key == "$b64":
            return base64.b64decode(value)
    return obj


def plain(value: Any) -> Any:
    """A value as it appears in an export (JSON/CSV): text for dates and numbers kept exact."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value
