"""Loading a product data map from YAML, with errors that name the file, line and place.

Every problem is collected (not only the first), so that one run of ``vern datamap check`` shows
all of them. Nothing is executed from a map that did not load cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from vern.datamap.model import (
    EXTERNAL_OPERATIONS,
    DatabaseDef,
    DataMap,
    HttpConnector,
    ManualTask,
    Recipient,
    System,
    Table,
    Tenancy,
    TenancyModel,
)
from vern.datamap.problems import MapError, Problem
from vern.datamap.table_reader import TableReader

# The key of ``tenancy`` each model but the column model needs, and what it must hold.
_TENANCY_KEYS = (
    (TenancyModel.SCHEMA, "schema", 'a schema name with {key}, e.g. "tenant_{key}"'),
    (TenancyModel.DATABASE, "url_env", 'an environment variable with {key}, e.g. "SHOP_URL_{key}"'),
    (TenancyModel.SINGLE, "customer", "the product key of the customer the database belongs to"),
)


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


class _Builder(TableReader):
    """Reads a whole map: its systems, their connectors and databases (and, through
    ``TableReader``, the tables)."""

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
        values = {"schema": schema, "url_env": url_env, "customer": customer}
        for other, key, what in _TENANCY_KEYS:
            self.tenancy_key(
                model, f"{place}.{key}", other=other, key=key, value=values[key], what=what, has_url=has_url
            )
        return Tenancy(model=model, holds=holds, schema=schema, url_env=url_env, customer=customer)

    def tenancy_key(
        self,
        model: TenancyModel,
        place: str,
        *,
        other: TenancyModel,
        key: str,
        value: str | None,
        what: str,
        has_url: bool,
    ) -> None:
        """``key`` is given (and reviewed) for the model ``other`` that needs it, and only then."""
        if model is not other:
            if value:
                self.fail(place, f"only for the {other.value} model")
            return
        if not value:
            if other is TenancyModel.DATABASE and has_url:
                return  # the database's own URL is the template, with {key} in its name
            self.fail(place, f"the {model.value} model needs {what}")
        elif key != "customer" and "{key}" not in str(value):
            self.fail(place, "must contain {key} (replaced by the customer's product key)")
        elif str(value).startswith("TODO"):
            self.fail(place, "still says TODO: review the draft")

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
