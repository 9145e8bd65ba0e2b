"""Loading a product data map from YAML, with errors that name the file, line and place.

Every problem is collected (not only the first), so that one run of ``vern datamap check`` shows
all of them. Nothing is executed from a map that did not load cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vern.datamap.categories import CATEGORIES
from vern.datamap.model import (
    EXTERNAL_OPERATIONS,
    IDENTITY_KINDS,
    RETENTION_ACTIONS,
    DatabaseDef,
    DataMap,
    Erase,
    Field,
    HttpConnector,
    ManualTask,
    Match,
    Recipient,
    Reference,
    Retention,
    Strategy,
    System,
    Table,
    Tenancy,
    TenancyModel,
)


@dataclass(frozen=True)
class Problem:
    place: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.place}: {self.message}"


class MapError(ValueError):
    """The map cannot be used; ``problems`` names each place that is wrong."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"the data map {source} has {len(problems)} problem(s):\n{lines}")


_NAMED_STRATEGIES = {s.value: s for s in Strategy}


def load_map_file(path: str | Path) -> DataMap:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise MapError(str(p), [Problem("file", f"cannot read: {exc.strerror}")]) from exc
    return load_map(text, source=str(p))


def load_map(text: str, *, source: str = "<map>") -> DataMap:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        msg = str(getattr(exc, "problem", None) or exc)
        raise MapError(source, [Problem("yaml", f"not valid YAML: {msg}", line)]) from exc
    builder = _Builder(source, _lines(node))
    data_map = builder.build(raw)
    if builder.problems:
        raise MapError(source, builder.problems)
    return data_map


def _lines(node: yaml.Node | None) -> dict[str, int]:
    """Dotted place → 1-based line, for every mapping key in the document."""
    found: dict[str, int] = {}

    def walk(n: yaml.Node, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                place = f"{prefix}.{key.value}" if prefix else str(key.value)
                found[place] = key.start_mark.line + 1
                walk(value, place)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                place = f"{prefix}[{i}]"
                found[place] = item.start_mark.line + 1
                walk(item, place)

    if node is not None:
        walk(node, "")
    return found


class _Builder:
    def __init__(self, source: str, lines: dict[str, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def fail(self, place: str, message: str) -> None:
        line = self.lines.get(place)
        probe = place
        while line is None and "." in probe:
            probe = probe.rsplit(".", 1)[0]
            line = self.lines.get(probe)
        self.problems.append(Problem(place, message, line))

    def mapping(self, value: Any, place: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(place, f"must be a mapping, got {type(value).__name__}")
            return {}
        return {str(k): v for k, v in value.items()}

    def unknown_keys(self, value: dict[str, Any], allowed: set[str], place: str) -> None:
        for key in sorted(set(value) - allowed):
            self.fail(f"{place}.{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    # -- the document ------------------------------------------------------------------------

    def build(self, raw: Any) -> DataMap:
        doc = self.mapping(raw, "document")
        self.unknown_keys(doc, {"version", "systems"}, "document")
        if doc.get("version", 1) != 1:
            self.fail("version", f"unsupported version {doc.get('version')!r} (expected 1)")
        systems_raw = self.mapping(doc.get("systems"), "systems")
        if not systems_raw:
            self.fail("systems", "no systems are described")
        systems = {name: self.system(name, body, f"systems.{name}") for name, body in systems_raw.items()}
        for name, system in systems.items():
            for i, r in enumerate(system.notify):
                if r.system is not None and (r.system not in systems or systems[r.system].http is None):
                    where = f"systems.{name}.recipients[{i}].system"
                    self.fail(where, f"{r.system!r} is not a system with an http connector")
        return DataMap(systems=systems, source=self.source)

    def system(self, name: str, raw: Any, place: str) -> System:
        body = self.mapping(raw, place)
        self.unknown_keys(body, {"title", "recipients", "databases", "http", "manual"}, place)
        recipients = body.get("recipients") or []
        if not isinstance(recipients, list):
            self.fail(f"{place}.recipients", "must be a list of texts")
            recipients = []
        names, notify = self.recipients(recipients, f"{place}.recipients")
        http = self.http(body["http"], f"{place}.http") if "http" in body else None
        manual = self.manual(body["manual"], f"{place}.manual") if "manual" in body else None
        dbs_raw = self.mapping(body.get("databases"), f"{place}.databases")
        if not dbs_raw and http is None and manual is None:
            self.fail(f"{place}.databases", "no databases are described (nor http nor manual)")
        dbs = {db: self.database(name, db, b, f"{place}.databases.{db}") for db, b in dbs_raw.items()}
        return System(
            name=name,
            title=str(body.get("title") or name),
            recipients=names,
            databases=dbs,
            http=http,
            manual=manual,
            notify=notify,
        )

    def recipients(self, raw: list[Any], place: str) -> tuple[tuple[str, ...], tuple[Recipient, ...]]:
        """A recipient is a text (listed only), or ``{name, email}`` / ``{name, system}`` (told of
        every rectification, erasure and restriction - Art. 19)."""
        names: list[str] = []
        notify: list[Recipient] = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                names.append(str(item))
                continue
            body = self.mapping(item, f"{place}[{i}]")
            self.unknown_keys(body, {"name", "email", "system"}, f"{place}[{i}]")
            name = str(body.get("name") or "").strip()
            if not name:
                self.fail(f"{place}[{i}].name", "a recipient needs a name")
                continue
            email = body.get("email")
            if email is not None and (not isinstance(email, str) or "@" not in email):
                self.fail(f"{place}[{i}].email", "must be an e-mail address")
                email = None
            system = body.get("system")
            names.append(name)
            notify.append(Recipient(name=name, email=email, system=str(system) if system else None))
        return tuple(names), tuple(notify)

    def _operations(self, raw: Any, place: str) -> tuple[str, ...]:
        if raw is None:
            return EXTERNAL_OPERATIONS
        if not isinstance(raw, list) or not raw:
            self.fail(place, f"must be a list of: {', '.join(EXTERNAL_OPERATIONS)}")
            return EXTERNAL_OPERATIONS
        for op in raw:
            if op not in EXTERNAL_OPERATIONS:
                self.fail(place, f"unknown operation {op!r} (expected: {', '.join(EXTERNAL_OPERATIONS)})")
        return tuple(str(op) for op in raw if op in EXTERNAL_OPERATIONS)

    def http(self, raw: Any, place: str) -> HttpConnector:
        body = self.mapping(raw, place)
        self.unknown_keys(
            body,
            {"url_env", "url_file", "url", "secret_env", "secret_file", "secret", "operations", "timeout"},
            place,
        )
        if "url" in body:
            self.fail(f"{place}.url", "URLs never go in the map: use url_env or url_file")
        if "secret" in body:
            self.fail(f"{place}.secret", "secrets never go in the map: use secret_env or secret_file")
        if not body.get("url_env") and not body.get("url_file"):
            self.fail(place, "needs url_env or url_file")
        if not body.get("secret_env") and not body.get("secret_file"):
            self.fail(place, "needs secret_env or secret_file (the key requests are signed with)")
        timeout = body.get("timeout", 10)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 120:
            self.fail(f"{place}.timeout", "must be a number of seconds between 0 and 120")
            timeout = 10
        return HttpConnector(
            url_env=body.get("url_env"),
            url_file=body.get("url_file"),
            secret_env=body.get("secret_env"),
            secret_file=body.get("secret_file"),
            operations=self._operations(body.get("operations"), f"{place}.operations"),
            timeout=float(timeout),
        )

    def manual(self, raw: Any, place: str) -> ManualTask:
        body = self.mapping(raw, place)
        self.unknown_keys(body, {"owner", "operations", "instructions"}, place)
        owner = body.get("owner")
        if not isinstance(owner, str) or "@" not in owner:
            self.fail(f"{place}.owner", "must be the e-mail address of the person who does the task")
            owner = ""
        return ManualTask(
            owner=owner,
            operations=self._operations(body.get("operations"), f"{place}.operations"),
            instructions=str(body.get("instructions") or ""),
        )

    def database(self, system: str, name: str, raw: Any, place: str) -> DatabaseDef:
        body = self.mapping(raw, place)
        self.unknown_keys(body, {"url_env", "url_file", "url", "tables", "tenancy", "out_of_scope"}, place)
        if "url" in body:
            self.fail(f"{place}.url", "connection URLs never go in the map; use url_env or url_file")
        url_env = body.get("url_env")
        url_file = body.get("url_file")
        tenancy = self.tenancy(body.get("tenancy"), f"{place}.tenancy", has_url=bool(url_env or url_file))
        if not url_env and not url_file and tenancy.model is not TenancyModel.DATABASE:
            self.fail(place, "needs url_env (an environment variable) or url_file (a secret file)")
        tables_raw = self.mapping(body.get("tables"), f"{place}.tables")
        if not tables_raw:
            self.fail(f"{place}.tables", "no tables are described")
        tables = {t: self.table(t, b, f"{place}.tables.{t}", tenancy) for t, b in tables_raw.items()}
        out_of_scope = self.out_of_scope(body.get("out_of_scope"), tables, f"{place}.out_of_scope")
        db = DatabaseDef(
            system=system,
            name=name,
            url_env=str(url_env) if url_env else None,
            url_file=str(url_file) if url_file else None,
            tables=tables,
            tenancy=tenancy,
            out_of_scope=out_of_scope,
        )
        self.check_references(db, place)
        return db

    def tenancy(self, raw: Any, place: str, *, has_url: bool = False) -> Tenancy:
        if raw is None:
            return Tenancy()
        if isinstance(raw, str):
            raw = {"model": raw}
        body = self.mapping(raw, place)
        self.unknown_keys(body, {"model", "holds", "schema", "url_env", "customer"}, place)
        models = ", ".join(m.value for m in TenancyModel)
        try:
            model = TenancyModel(str(body.get("model") or "column"))
        except ValueError:
            self.fail(
                f"{place}.model", f"unknown tenancy model {body.get('model')!r} (expected one of: {models})"
            )
            return Tenancy()
        holds = str(body.get("holds") or Tenancy.holds)
        if holds.startswith("TODO"):
            self.fail(f"{place}.holds", "still says TODO: say which key of the customer it holds")
        schema = str(body["schema"]) if body.get("schema") else None
        url_env = str(body["url_env"]) if body.get("url_env") else None
        customer = str(body["customer"]) if body.get("customer") is not None else None
        needs = {
            TenancyModel.SCHEMA: ("schema", schema, 'a schema name with {key}, e.g. "tenant_{key}"'),
            TenancyModel.DATABASE: (
                "url_env",
                url_env,
                'an environment variable with {key}, e.g. "SHOP_URL_{key}"',
            ),
            TenancyModel.SINGLE: (
                "customer",
                customer,
                "the product key of the customer the database belongs to",
            ),
        }
        for other, (key, value, what) in needs.items():
            if model is other and not value and other is TenancyModel.DATABASE and has_url:
                continue  # the database's own URL is the template, with {key} in its name
            if model is other and not value:
                self.fail(f"{place}.{key}", f"the {model.value} model needs {what}")
            elif model is other and key != "customer" and "{key}" not in str(value):
                self.fail(f"{place}.{key}", "must contain {key} (replaced by the customer's product key)")
            elif model is other and str(value).startswith("TODO"):
                self.fail(f"{place}.{key}", "still says TODO: review the draft")
            elif model is not other and value:
                self.fail(f"{place}.{key}", f"only for the {other.value} model")
        return Tenancy(model=model, holds=holds, schema=schema, url_env=url_env, customer=customer)

    def out_of_scope(self, raw: Any, tables: dict[str, Table], place: str) -> dict[str, str]:
        body = self.mapping(raw, place)
        found: dict[str, str] = {}
        for name, reason in body.items():
            here = f"{place}.{name}"
            if not reason or not str(reason).strip():
                self.fail(here, "needs the reason it holds no personal data or is handled elsewhere")
            elif str(reason).startswith("TODO"):
                self.fail(here, "still says TODO: review the draft")
            elif name in tables:
                self.fail(here, "is also mapped under tables: a table is either mapped or out of scope")
            elif "." in name and name.split(".", 1)[1] in getattr(
                tables.get(name.split(".", 1)[0]), "fields", {}
            ):
                self.fail(here, "is also mapped as a field: a column is either mapped or out of scope")
            else:
                found[name] = str(reason)
        return found

    def table(  # noqa: PLR0912 - one rule per key
        self, name: str, raw: Any, place: str, tenancy: Tenancy | None = None
    ) -> Table:
        body = self.mapping(raw, place)
        allowed = {
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
        self.unknown_keys(body, allowed, place)
        by_column = tenancy is None or tenancy.model is TenancyModel.COLUMN
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
        pk_raw = body.get("primary_key") or []
        if isinstance(pk_raw, str):
            pk_raw = [pk_raw]
        for col in pk_raw:
            if col not in fields:
                self.fail(f"{place}.primary_key", f"column {col!r} is not among the fields")
        rule = self.retention(body.get("retention"), fields, pk_raw, f"{place}.retention")
        delete_row = self.table_erase(body.get("erase"), f"{place}.erase")
        delete_row = delete_row or any(
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
        if rule is not None and rule.action == "anonymise" and (delete_row or not table.strategies()):
            self.fail(
                f"{place}.retention.action",
                "anonymise needs fields with erase strategies (this table's rows are erased by "
                "deleting them: use delete)",
            )
        if not delete_row:
            self.check_personal_fields(table, place)
        for f in fields.values():
            if (
                f.category == "user.credential"
                and f.erase is not None
                and f.erase.strategy
                not in (
                    Strategy.NULL,
                    Strategy.FIXED,
                    Strategy.DELETE_ROW,
                )
            ):
                self.fail(
                    f"{place}.fields.{f.name}.erase",
                    "a credential is deleted on erasure: null, a fixed value or the table's delete_row",
                )
        return table

    def retention(
        self, raw: Any, fields: dict[str, Field], pk: list[Any], place: str
    ) -> Retention | None:
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
        ok = True
        if isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= 36_500:
            self.fail(f"{place}.days", "must be a whole number of days, 1-36500")
            ok = False
        if not after:
            self.fail(f"{place}.after", "is required: the date/time column the period runs from")
            ok = False
        elif after not in fields:
            self.fail(f"{place}.after", f"column {after!r} is not among the fields")
            ok = False
        elif fields[after].category != "system.timestamp":
            self.fail(
                f"{place}.after", f"column {after!r} is not a date/time field (category system.timestamp)"
            )
            ok = False
        if action not in RETENTION_ACTIONS:
            self.fail(f"{place}.action", f"must be one of: {', '.join(RETENTION_ACTIONS)}")
            ok = False
        if not reason or reason.startswith("TODO"):
            self.fail(f"{place}.reason", "is required: why rows are removed after this period")
            ok = False
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
            self.fail(f"{place}.minimum_days", "must be a whole number of days, 0 or more")
            return None
        if minimum and not why:
            self.fail(f"{place}.minimum_reason", "a legal minimum needs its legal reason")
            ok = False
        if ok and isinstance(days, int) and days < minimum:
            self.fail(
                f"{place}.days",
                f"{days} days is shorter than the legal minimum of {minimum} days ({why})",
            )
            ok = False
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

    def erase(self, raw: Any, place: str) -> Erase | None:  # noqa: PLR0911, PLR0912 - per strategy
        if raw is None:  # `erase: null` reads naturally as "set null"
            return Erase(Strategy.NULL)
        if isinstance(raw, str):
            strategy = _NAMED_STRATEGIES.get(raw)
            if strategy is None:
                self.fail(place, f"unknown strategy {raw!r} (expected one of: {_strategy_names()})")
                return None
            if strategy is Strategy.FIXED:
                self.fail(place, 'fixed needs a value: {fixed: "[slettet]"}')
                return None
            if strategy is Strategy.KEEP:
                self.fail(place, 'keep needs a stated legal reason: {keep: "…"}')
                return None
            return Erase(strategy)
        body = self.mapping(raw, place)
        if len(body) != 1:
            self.fail(place, f"give exactly one strategy (one of: {_strategy_names()})")
            return None
        key, value = next(iter(body.items()))
        strategy = _NAMED_STRATEGIES.get(key)
        if strategy is None:
            self.fail(f"{place}.{key}", f"unknown strategy {key!r} (expected one of: {_strategy_names()})")
            return None
        if strategy is Strategy.KEEP:
            if not value or not str(value).strip():
                self.fail(f"{place}.keep", "a kept field needs a stated legal reason")
                return None
            if str(value).startswith("TODO"):
                self.fail(f"{place}.keep", "still says TODO: state the legal reason")
                return None
            return Erase(strategy, reason=str(value))
        if strategy is Strategy.FIXED:
            return Erase(strategy, value="" if value is None else str(value))
        if strategy is Strategy.PSEUDONYM:
            fmt = str(value) if value else None
            if fmt is not None and "{id}" not in fmt:
                self.fail(f"{place}.pseudonym", "the format must contain {id}")
                return None
            return Erase(strategy, value=fmt)
        if strategy is Strategy.HMAC:
            if value is not None and (not isinstance(value, int) or not 8 <= value <= 64):
                self.fail(f"{place}.hmac", "the length must be a number of hex characters, 8-64")
                return None
            return Erase(strategy, length=value)
        return Erase(strategy)

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

    def check_references(self, db: DatabaseDef, place: str) -> None:
        for tname, table in db.tables.items():
            links = [("references", i, r) for i, r in enumerate(table.references)]
            links += [("refers_to", i, r) for i, r in enumerate(table.refers_to)]
            for key, i, ref in links:
                here = f"{place}.tables.{tname}.{key}[{i}].to"
                target = db.tables.get(ref.table)
                if target is None:
                    self.fail(here, f"table {ref.table!r} is not in this database's map")
                elif ref.column not in target.fields:
                    self.fail(here, f"column {ref.table}.{ref.column} is not in the map")
        for cycle in _cycles(db):
            self.fail(
                f"{place}.tables",
                f"references form a cycle ({' → '.join(cycle)}); mark one with follow: false",
            )
        if not any(t.identities for t in db.tables.values()):
            self.fail(f"{place}.tables", "no table has identities, so no person can be found")


def _strategy_names() -> str:
    return ", ".join(s.value for s in Strategy)


def _cycles(db: DatabaseDef) -> Iterator[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> Iterator[list[str]]:
        state[name] = 1
        stack.append(name)
        # discovered after: the tables it follows references to, and the tables whose rows
        # point at it with an outward link
        after = [r.table for r in db.tables[name].references if r.follow and r.table in db.tables]
        after += [
            o for o in sorted(db.tables) if o != name and any(r.table == name for r in db.tables[o].refers_to)
        ]
        for target in after:
            if state.get(target) == 1:
                yield [*stack[stack.index(target) :], target]
            elif target not in state:
                yield from visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(db.tables):
        if name not in state:
            yield from visit(name)
