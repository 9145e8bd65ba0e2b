"""Reading one table of a product data map: its fields with their categories and erase
strategies, identities, references, primary key and retention rule, with a problem for each
place that is wrong (the loader reads the systems and databases around them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from vern.datamap.categories import CATEGORIES
from vern.datamap.model import (
    IDENTITY_KINDS,
    RETENTION_ACTIONS,
    Erase,
    Field,
    Match,
    Reference,
    Retention,
    Strategy,
    Table,
    Tenancy,
    TenancyModel,
)
from vern.datamap.problems import Reader

_NAMED_STRATEGIES = {s.value: s for s in Strategy}
_TABLE_KEYS = {
    "purpose",
    "retention",
    "tenant",
    "identities",
    "references",
    "fields",
    "primary_key",
    "erase",
    "refers_to",
}
# A strategy named alone that needs a value, and what to say.
_NEEDS_VALUE = {
    Strategy.FIXED: 'fixed needs a value: {fixed: "[slettet]"}',
    Strategy.KEEP: 'keep needs a stated legal reason: {keep: "…"}',
}
# How a credential may be erased: it is deleted, never kept or hashed.
_CREDENTIAL_ERASE = (Strategy.NULL, Strategy.FIXED, Strategy.DELETE_ROW)


class TableReader(Reader):
    """Reads tables (and their fields) of a map, collecting the problems."""

    def table(self, name: str, raw: Any, place: str, tenancy: Tenancy | None = None) -> Table:
        body = self.mapping(raw, place)
        self.unknown_keys(body, _TABLE_KEYS, place)
        by_column = tenancy is None or tenancy.model is TenancyModel.COLUMN
        self.required_keys(body, place, tenancy, by_column=by_column)
        fields_raw = self.mapping(body.get("fields"), f"{place}.fields")
        if not fields_raw:
            self.fail(f"{place}.fields", "no fields are described")
        fields = {f: self.field(f, b, f"{place}.fields.{f}") for f, b in fields_raw.items()}
        tenant = str(body.get("tenant") or "") if by_column else ""
        if tenant and tenant not in fields:
            self.fail(f"{place}.tenant", f"column {tenant!r} is not among the fields")
        identities = self.identities(body.get("identities"), fields, f"{place}.identities")
        references = self.references(body.get("references"), fields, f"{place}.references")
        refers_to = tuple(
            Reference(r.field, r.table, r.column, True, outward=True)
            for r in self.references(body.get("refers_to"), fields, f"{place}.refers_to", outward=True)
        )
        pk_raw = self.primary_key(body.get("primary_key"), fields, f"{place}.primary_key")
        rule = self.retention(body.get("retention"), fields, pk_raw, f"{place}.retention")
        delete_row = self.table_erase(body.get("erase"), f"{place}.erase") or any(
            f.erase is not None and f.erase.strategy is Strategy.DELETE_ROW for f in fields.values()
        )
        table = Table(
            name=name,
            purpose=str(body.get("purpose") or ""),
            retention=rule.reason if rule is not None else str(body.get("retention") or ""),
            tenant=tenant,
            fields=fields,
            identities=identities,
            references=references,
            primary_key=tuple(str(c) for c in pk_raw),
            delete_row=delete_row,
            refers_to=refers_to,
            rule=rule,
        )
        self.check_erasure(table, place)
        return table

    def required_keys(
        self, body: dict[str, Any], place: str, tenancy: Tenancy | None, *, by_column: bool
    ) -> None:
        """A purpose, a retention and (rows told apart by a column) the tenant column, reviewed."""
        if not by_column and body.get("tenant") and tenancy is not None:
            self.fail(
                f"{place}.tenant",
                f"the database's tenancy is {tenancy.model.value}: rows are not told apart by a column",
            )
        for key in ("purpose", "retention", "tenant"):
            if key == "tenant" and not by_column:
                continue
            if not body.get(key):
                self.fail(f"{place}.{key}", "is required")
            elif str(body[key]).startswith("TODO"):
                self.fail(f"{place}.{key}", "still says TODO: review the draft")

    def primary_key(self, raw: Any, fields: dict[str, Field], place: str) -> Any:
        """The primary key's columns as given (one column may be given as a text)."""
        pk_raw = raw or []
        if isinstance(pk_raw, str):
            pk_raw = [pk_raw]
        for col in pk_raw:
            if col not in fields:
                self.fail(place, f"column {col!r} is not among the fields")
        return pk_raw

    def check_erasure(self, table: Table, place: str) -> None:
        """The table's rows can be erased as the map says: anonymised rows have strategies, every
        personal field has one, and credentials are deleted."""
        rule = table.rule
        if rule is not None and rule.action == "anonymise" and (table.delete_row or not table.strategies()):
            self.fail(
                f"{place}.retention.action",
                "anonymise needs fields with erase strategies (this table's rows are erased by "
                "deleting them: use delete)",
            )
        if not table.delete_row:
            self.check_personal_fields(table, place)
        for f in table.fields.values():
            if (
                f.category == "user.credential"
                and f.erase is not None
                and f.erase.strategy not in _CREDENTIAL_ERASE
            ):
                self.fail(
                    f"{place}.fields.{f.name}.erase",
                    "a credential is deleted on erasure: null, a fixed value or the table's delete_row",
                )

    def retention(self, raw: Any, fields: dict[str, Field], pk: list[Any], place: str) -> Retention | None:
        """``retention: {days, after, action, reason[, minimum_days, minimum_reason]}``; a string
        (a rule's name or free text) means no automatic deletion."""
        if not isinstance(raw, dict):
            return None
        body = self.mapping(raw, place)
        keys = {"days", "after", "action", "reason", "minimum_days", "minimum_reason"}
        self.unknown_keys(body, keys, place)
        days, after = body.get("days"), str(body.get("after") or "")
        action, reason = str(body.get("action") or ""), str(body.get("reason") or "").strip()
        minimum, why = body.get("minimum_days", 0), str(body.get("minimum_reason") or "").strip()
        ok = self.retention_days(days, place)
        ok = self.retention_after(after, fields, place) and ok
        if action not in RETENTION_ACTIONS:
            self.fail(f"{place}.action", f"must be one of: {', '.join(RETENTION_ACTIONS)}")
            ok = False
        if not reason or reason.startswith("TODO"):
            self.fail(f"{place}.reason", "is required: why rows are removed after this period")
            ok = False
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
            self.fail(f"{place}.minimum_days", "must be a whole number of days, 0 or more")
            return None
        ok = self.legal_minimum(days, minimum, why, place, ok=ok)
        if len(pk) != 1:
            self.fail(
                place, "a table with retention needs a primary_key of one column (rows go in batches by it)"
            )
            ok = False
        if not ok:
            return None
        assert isinstance(days, int)
        return Retention(days=days, after=after, action=action, reason=reason, minimum_days=minimum,
                         minimum_reason=why)

    def retention_days(self, days: Any, place: str) -> bool:
        if isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= 36_500:
            self.fail(f"{place}.days", "must be a whole number of days, 1-36500")
            return False
        return True

    def retention_after(self, after: str, fields: dict[str, Field], place: str) -> bool:
        """The period runs from a date/time column of the table."""
        if not after:
            self.fail(f"{place}.after", "is required: the date/time column the period runs from")
        elif after not in fields:
            self.fail(f"{place}.after", f"column {after!r} is not among the fields")
        elif fields[after].category != "system.timestamp":
            self.fail(
                f"{place}.after", f"column {after!r} is not a date/time field (category system.timestamp)"
            )
        else:
            return True
        return False

    def legal_minimum(self, days: Any, minimum: int, why: str, place: str, *, ok: bool) -> bool:
        """A legal minimum has its reason, and a rule that is otherwise right keeps rows that long."""
        if minimum and not why:
            self.fail(f"{place}.minimum_reason", "a legal minimum needs its legal reason")
            ok = False
        if ok and isinstance(days, int) and days < minimum:
            self.fail(
                f"{place}.days",
                f"{days} days is shorter than the legal minimum of {minimum} days ({why})",
            )
            ok = False
        return ok

    def table_erase(self, raw: Any, place: str) -> bool:
        if raw is None:
            return False
        if raw == Strategy.DELETE_ROW.value:
            return True
        self.fail(place, f"a table's erase can only be 'delete_row', got {raw!r}")
        return False

    def check_personal_fields(self, table: Table, place: str) -> None:
        # Row keys and links stay (they point at rows, which are erased or pseudonymised themselves).
        link_columns = (
            set(table.primary_key)
            | {r.field for r in table.references}
            | {r.field for r in table.refers_to}
        )
        if "user_id" in table.identities:
            link_columns.add(table.identities["user_id"])
        for f in table.fields.values():
            if f.personal and f.erase is None and f.name not in link_columns:
                self.fail(
                    f"{place}.fields.{f.name}",
                    "personal field needs an erase strategy "
                    "(null, fixed, hmac, pseudonym, keep with a reason) or the table erase: delete_row",
                )

    def field(self, name: str, raw: Any, place: str) -> Field:
        if isinstance(raw, str):
            raw = {"category": raw}
        body = self.mapping(raw, place)
        self.unknown_keys(body, {"category", "erase", "note", "match", "auto_update"}, place)
        category = str(body.get("category") or "")
        match: Match | None = None
        if "match" in body:
            try:
                match = Match(str(body["match"]))
            except ValueError:
                names = ", ".join(m.value for m in Match)
                self.fail(
                    f"{place}.match", f"unknown comparison {body['match']!r} (expected one of: {names})"
                )
        auto_update = body.get("auto_update", False)
        if not isinstance(auto_update, bool):
            self.fail(f"{place}.auto_update", "must be true or false")
            auto_update = False
        if not category:
            self.fail(f"{place}.category", "is required")
        elif category not in CATEGORIES:
            self.fail(f"{place}.category", f"unknown category {category!r}")
        erase = self.erase(body.get("erase"), f"{place}.erase") if "erase" in body else None
        if auto_update and erase is not None and erase.strategy is not Strategy.KEEP:
            self.fail(f"{place}.auto_update", "a column the database sets by itself cannot also be erased")
        return Field(
            name=name,
            category=category,
            erase=erase,
            note=str(body.get("note") or ""),
            match=match,
            auto_update=auto_update,
        )

    def erase(self, raw: Any, place: str) -> Erase | None:
        if raw is None:  # `erase: null` reads naturally as "set null"
            return Erase(Strategy.NULL)
        if isinstance(raw, str):
            return self.named_erase(raw, place)
        body = self.mapping(raw, place)
        if len(body) != 1:
            self.fail(place, f"give exactly one strategy (one of: {_strategy_names()})")
            return None
        key, value = next(iter(body.items()))
        strategy = _NAMED_STRATEGIES.get(key)
        if strategy is None:
            self.fail(f"{place}.{key}", f"unknown strategy {key!r} (expected one of: {_strategy_names()})")
            return None
        read_value = self._ERASE_VALUES.get(strategy)
        return read_value(self, value, place) if read_value is not None else Erase(strategy)

    def named_erase(self, raw: str, place: str) -> Erase | None:
        """A strategy given by its name alone (``erase: hmac``)."""
        strategy = _NAMED_STRATEGIES.get(raw)
        if strategy is None:
            self.fail(place, f"unknown strategy {raw!r} (expected one of: {_strategy_names()})")
            return None
        if strategy in _NEEDS_VALUE:
            self.fail(place, _NEEDS_VALUE[strategy])
            return None
        return Erase(strategy)

    def _keep(self, value: Any, place: str) -> Erase | None:
        if not value or not str(value).strip():
            self.fail(f"{place}.keep", "a kept field needs a stated legal reason")
            return None
        if str(value).startswith("TODO"):
            self.fail(f"{place}.keep", "still says TODO: state the legal reason")
            return None
        return Erase(Strategy.KEEP, reason=str(value))

    def _fixed(self, value: Any, place: str) -> Erase | None:
        return Erase(Strategy.FIXED, value="" if value is None else str(value))

    def _pseudonym(self, value: Any, place: str) -> Erase | None:
        fmt = str(value) if value else None
        if fmt is not None and "{id}" not in fmt:
            self.fail(f"{place}.pseudonym", "the format must contain {id}")
            return None
        return Erase(Strategy.PSEUDONYM, value=fmt)

    def _hmac(self, value: Any, place: str) -> Erase | None:
        if value is not None and (not isinstance(value, int) or not 8 <= value <= 64):
            self.fail(f"{place}.hmac", "the length must be a number of hex characters, 8-64")
            return None
        return Erase(Strategy.HMAC, length=value)

    # The strategies given with a value (``{keep: "…"}``), each read by its own method.
    _ERASE_VALUES: ClassVar[dict[Strategy, Callable[[TableReader, Any, str], Erase | None]]] = {
        Strategy.KEEP: _keep,
        Strategy.FIXED: _fixed,
        Strategy.PSEUDONYM: _pseudonym,
        Strategy.HMAC: _hmac,
    }

    def identities(self, raw: Any, fields: dict[str, Field], place: str) -> dict[str, str]:
        body = self.mapping(raw, place)
        found: dict[str, str] = {}
        for kind, column in body.items():
            if kind not in IDENTITY_KINDS:
                self.fail(
                    f"{place}.{kind}", f"unknown identity kind (expected one of: {', '.join(IDENTITY_KINDS)})"
                )
            elif str(column) not in fields:
                self.fail(f"{place}.{kind}", f"column {column!r} is not among the fields")
            else:
                found[kind] = str(column)
        return found

    def references(
        self, raw: Any, fields: dict[str, Field], place: str, *, outward: bool = False
    ) -> tuple[Reference, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.fail(place, "must be a list of {field: …, to: table.column}")
            return ()
        refs: list[Reference] = []
        for i, item in enumerate(raw):
            here = f"{place}[{i}]"
            body = self.mapping(item, here)
            self.unknown_keys(body, {"field", "to"} if outward else {"field", "to", "follow"}, here)
            col, to = str(body.get("field") or ""), str(body.get("to") or "")
            if col not in fields:
                self.fail(f"{here}.field", f"column {col!r} is not among the fields")
                continue
            if to.count(".") != 1:
                self.fail(f"{here}.to", f"must be table.column, got {to!r}")
                continue
            table, column = to.split(".")
            refs.append(Reference(col, table, column, bool(body.get("follow", True))))
        return tuple(refs)


def _strategy_names() -> str:
    return ", ".join(s.value for s in Strategy)
