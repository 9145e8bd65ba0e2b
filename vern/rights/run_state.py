"""What a run of the request engine knows and decides, as plain data: each request (``Job``) with
its person, its parts as stored before the run (``PartState``), the parts it plans now
(``FreshPart``) and what it did; and the kinds of request and of planned write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vern.rights.discovery import Found, Shared, Subject
from vern.rights.models import Kind

Step = Callable[[str], None]  # told each step of a run ("planned:<database>", ...)
Progress = Callable[[int, int], None]  # told (planned entries written, planned entries)

WRITE_KINDS = (Kind.ERASURE.value, Kind.RECTIFICATION.value)
READ_KINDS = (Kind.ACCESS.value, Kind.PORTABILITY.value)
FLAG_KINDS = (Kind.RESTRICTION.value, Kind.OBJECTION.value, Kind.WITHDRAWAL.value)
SET_OPS = ("delete_where", "update_where")  # one statement over the person's rows of a table
WHOLE = "*"  # a task or ledger entry that covers every table of the part
WHOLE_OP = "tables"  # a whole part's plan: [[table, op, rows], ...]


@dataclass
class PartState:
    """A part as stored in Vern's database before this run."""

    id: str
    status: str
    has_tasks: bool
    rows_found: int = 0
    rows_done: int = 0
    error: str | None = None


@dataclass
class Job:
    """One request in a run: what was read before claiming it, and what this run did."""

    request_id: str
    org_id: str
    kind: str
    status: str  # as read, before the claim
    attempts: int  # as read; the claim succeeds only if nobody changed it since
    key_id: str
    channel: str
    locale: str
    received_at: Any
    org_name: str
    org_slug: str
    purpose: str | None
    subject: Subject
    parts: dict[str, PartState] = field(default_factory=dict)
    # filled in by the run
    claimed: bool = False
    fresh: dict[str, FreshPart] = field(default_factory=dict)  # planned now, by database
    stored: list[str] = field(default_factory=list)  # databases carried on from stored plans
    outcome: dict[str, tuple[str, int, int, str | None]] = field(default_factory=dict)
    package: bytes | None = None
    # (key id, e-mail, locale) of the staff to tell if this run, the last automatic attempt,
    # ends partial: read before the run, as the finish's transaction may be pipelined
    staff: list[tuple[str, str, str]] = field(default_factory=list)
    moved: int = 0  # planned rows written in this run (progress)
    result: str = ""
    # what was searched (database -> table -> lookup columns) and what was kept because others
    # still use it, for the outcome
    searched: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    kept: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    answer_nobody_found: bool = False  # the customer's setting: no staff review of "nobody found"

    @property
    def writes(self) -> bool:
        return self.kind in WRITE_KINDS


@dataclass
class FreshPart:
    part_id: str
    new: bool  # the part row does not exist yet
    found: dict[str, list[Found]] = field(default_factory=dict)
    where: dict[str, list[tuple[str, list[Any]]]] = field(default_factory=dict)  # set-based tables
    # (table, operation, rows, ""): the task ids are given when the plan is stored (``planning.task_rows``)
    planned: list[tuple[str, str, list[dict[str, Any]], str]] = field(default_factory=list)
    counted: dict[str, int] = field(default_factory=dict)  # set-based tables: rows counted at planning
    task_id: str | None = None  # the part's one task, when its plan is stored whole
    error: str | None = None
    shared: dict[str, list[Shared]] = field(default_factory=dict)  # kept: others refer to them

    @property
    def rows_found(self) -> int:
        """The person's rows: those read, and those a set-based statement will hit (counted when
        planned, so a statement repeated after a crash does not change the count)."""
        return sum(len(v) for v in self.found.values()) + sum(self.counted.values())

    @property
    def rows_planned(self) -> int:
        return sum(len(rows) for _t, _o, rows, _i in self.planned)

    @property
    def rows_done(self) -> int:
        """Rows written: by key as planned, and the rows each set-based statement covers."""
        return sum(rows_written(op, rows) for _t, op, rows, _i in self.planned)


def rows_written(op: str, rows: list[Any]) -> int:
    """The person's rows a planned write covers: one per row written by key, the counted rows of a
    set-based statement, every table's of a whole part's plan. Fixed at planning, so a checkpoint
    repeated after a crash records the same number."""
    if op == WHOLE_OP:
        return sum(rows_written(table_op, table_rows) for _t, table_op, table_rows in rows)
    if op in SET_OPS:
        return sum(int(row.get("count") or 0) for row in rows)
    return len(rows)
