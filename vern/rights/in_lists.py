"""Prepared ``IN`` lists: a list of values is bound to 1 or a power of two parameters, so that a
few prepared statements per table and column serve every length of list.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, bindparam

from vern.datamap.model import Table as MapTable
from vern.rights.matching import column_expression


def width_for(n: int) -> int:
    """Parameters for a list of ``n`` values: 1, or the next power of two - so that a few
    prepared statements serve every length (``bind_in`` repeats the last value to fill)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def in_clause(column: Column[Any], name: str, width: int, mt: MapTable | None = None) -> Any:
    """``column = :name`` for one value, ``column IN (:name_0, …)`` for ``width`` values - the
    column compared as the map declares (``lower(trim(column))`` for an e-mail)."""
    expr = column_expression(mt.match_of(column.name), column) if mt is not None else column
    if width == 1:
        return expr == bindparam(name, type_=column.type)
    return expr.in_([bindparam(f"{name}_{j}", type_=column.type) for j in range(width)])


def bind_in(name: str, values: list[Any], width: int) -> dict[str, Any]:
    """The parameters of ``in_clause(column, name, width)`` for ``values`` (at most ``width``; a
    value repeated in an ``IN`` list changes nothing)."""
    if width == 1:
        return {name: values[0]}
    return {f"{name}_{j}": values[min(j, len(values) - 1)] for j in range(width)}
