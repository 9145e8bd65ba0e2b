"""The product data map: where personal data lives in the vendor's own databases.

A map is versioned with the vendor's code as YAML (see ``docs/datamap.md``) and loaded by
``vern.datamap.loader``. It names systems, their databases (the connection URL comes from an
environment variable or a secret file, never from the map), tables, fields with data categories,
identity fields, the tenant column, references between tables, and for every personal field how it
is erased.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from vern.datamap.categories import RETENTION_RULES, is_personal


class Strategy(StrEnum):
    """How one field is erased (Art. 17); ``keep`` needs a stated legal reason (Art. 17(3))."""

    DELETE_ROW = "delete_row"
    NULL = "null"
    FIXED = "fixed"
    HMAC = "hmac"
    PSEUDONYM = "pseudonym"
    KEEP = "keep"


# Identity kinds a request can carry and a table can be searched by.
IDENTITY_KINDS = ("email", "user_id", "phone", "national_id")


class Match(StrEnum):
    """How a lookup column is compared with a person's identity (a field's ``match``).

    ``email``: trimmed and case-insensitive (``lower(trim(column))``); ``casefold``: the same for
    any text; ``phone``: the number in E.164 and its usual written forms; ``national_id``: digits
    only; ``exact``: as stored.
    """

    EMAIL = "email"
    CASEFOLD = "casefold"
    PHONE = "phone"
    NATIONAL_ID = "national_id"
    EXACT = "exact"


# The comparison a lookup column gets when its field does not say.
DEFAULT_MATCH = {
    "email": Match.EMAIL,
    "phone": Match.PHONE,
    "national_id": Match.NATIONAL_ID,
    "user_id": Match.EXACT,
}

DEFAULT_PSEUDONYM = "anon-{id}"
HMAC_HEX_LENGTH = 64


@dataclass(frozen=True)
class Erase:
    strategy: Strategy
    value: str | None = None  # fixed value, pseudonym format
    reason: str | None = None  # keep: the legal reason
    length: int | None = None  # hmac: hex characters kept

    def written_length(self) -> int | None:
        """How many characters this strategy writes (None when it writes no text)."""
        if self.strategy is Strategy.FIXED:
            return len(self.value or "")
        if self.strategy is Strategy.HMAC:
            return self.length or HMAC_HEX_LENGTH
        if self.strategy is Strategy.PSEUDONYM:
            return len((self.value or DEFAULT_PSEUDONYM).replace("{id}", "x" * 12))
        return None

    def describe(self) -> str:
        if self.strategy is Strategy.FIXED:
            return f"fixed value {self.value!r}"
        if self.strategy is Strategy.KEEP:
            return f"kept: {self.reason}"
        return self.strategy.value.replace("_", " ")


@dataclass(frozen=True)
class Field:
    name: str
    category: str
    erase: Erase | None = None
    note: str = ""
    match: Match | None = None  # how the field compares as a lookup column (None: by its kind)
    # The database sets it by itself on every UPDATE (MariaDB ``ON UPDATE CURRENT_TIMESTAMP``):
    # Vern's writes keep its old value, so an erasure leaves no new trace.
    auto_update: bool = False

    @property
    def personal(self) -> bool:
        return is_personal(self.category)


@dataclass(frozen=True)
class Reference:
    """``field`` of this table holds values of ``table.column`` (a foreign key, declared or not).

    Rows that point at a person's rows belong to that person too, unless ``follow`` is false.
    A ``refers_to`` link (``outward``) goes the other way: the row this table's field points at
    belongs to the person when the pointing row does (a customer's address) - unless anything
    outside the person's rows still refers to it, then it is shared and kept.
    """

    field: str
    table: str
    column: str
    follow: bool = True
    outward: bool = False


RETENTION_ACTIONS = ("delete", "anonymise")


@dataclass(frozen=True)
class Retention:
    """A table's machine-readable retention (``retention: {days: 90, after: submitted_at, …}``):
    rows whose ``after`` column is older than ``days`` are deleted, or anonymised with the fields'
    erase strategies, by ``vern retention run``. The free-text form means no automatic deletion."""

    days: int
    after: str
    action: str
    reason: str
    minimum_days: int = 0
    minimum_reason: str = ""

    def describe(self) -> str:
        return f"{self.action} {self.days} days after {self.after}: {self.reason}"


@dataclass(frozen=True)
class Table:
    name: str
    purpose: str
    retention: str
    tenant: str
    fields: dict[str, Field]
    identities: dict[str, str] = field(default_factory=dict)  # kind -> column
    references: tuple[Reference, ...] = ()
    primary_key: tuple[str, ...] = ()
    delete_row: bool = False
    refers_to: tuple[Reference, ...] = ()  # outward links, followed from the person's rows
    rule: Retention | None = None  # machine-readable retention, applied by vern.retention

    def match_of(self, column: str) -> Match:
        """How ``column`` is compared when a person is looked up by it."""
        f = self.fields.get(column)
        if f is not None and f.match is not None:
            return f.match
        for kind, col in self.identities.items():
            if col == column:
                return DEFAULT_MATCH.get(kind, Match.EXACT)
        return Match.EXACT

    @property
    def auto_update_columns(self) -> tuple[str, ...]:
        return tuple(name for name, f in self.fields.items() if f.auto_update)

    @property
    def retention_text(self) -> str:
        if self.rule is not None:
            return self.rule.describe()
        return RETENTION_RULES.get(self.retention, self.retention)

    def personal_fields(self) -> list[Field]:
        return [f for f in self.fields.values() if f.personal]

    def strategies(self) -> dict[str, Erase]:
        """Fields changed by an erasure (everything but ``keep`` and unstated link columns)."""
        return self._strategies

    @cached_property
    def _strategies(self) -> dict[str, Erase]:  # a frozen map: computed once per loaded map
        return {
            name: f.erase
            for name, f in self.fields.items()
            if f.erase is not None and f.erase.strategy not in (Strategy.KEEP,)
        }


class TenancyModel(StrEnum):
    """How a product database tells its customers apart (see ``docs/datamap.md``)."""

    COLUMN = "column"  # a column in every table holds the customer's product key
    SCHEMA = "schema"  # one schema per customer, named from the product key
    DATABASE = "database"  # one database per customer, its URL named from the product key
    SINGLE = "single"  # the whole database belongs to one customer


@dataclass(frozen=True)
class Tenancy:
    """Which rows, schema or database belong to a customer.

    Every model is compared with the customer's *product key*: the value the vendor set for the
    customer (``product_tenant_key``), or Vern's organisation id when none is set. ``holds`` says in
    words which of the customer's keys in the product that is (e.g. "schools.id of the school").
    """

    model: TenancyModel = TenancyModel.COLUMN
    holds: str = "the customer's product key"
    schema: str | None = None  # schema model: a name with {key}, e.g. "tenant_{key}"
    url_env: str | None = None  # database model: an environment variable name with {key}
    customer: str | None = None  # single model: the product key of the one customer

    def schema_for(self, key: str) -> str | None:
        return self.schema.replace("{key}", key) if self.schema else None

    def url_env_for(self, key: str) -> str | None:
        return self.url_env.replace("{key}", key) if self.url_env else None

    def owns(self, key: str) -> bool:
        """Whether a request of the customer with this product key may reach this database."""
        return self.model is not TenancyModel.SINGLE or key == self.customer


@dataclass(frozen=True)
class DatabaseDef:
    system: str
    name: str
    url_env: str | None
    url_file: str | None
    tables: dict[str, Table]
    tenancy: Tenancy = field(default_factory=Tenancy)
    # Tables (``name``) and columns (``table.column``) deliberately left out of the map, with the
    # reason; ``vern datamap check`` does not report them as unmapped.
    out_of_scope: dict[str, str] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.system}.{self.name}"

    def is_out_of_scope(self, table: str, column: str | None = None) -> bool:
        if table in self.out_of_scope:
            return True
        return column is not None and f"{table}.{column}" in self.out_of_scope

    def dependency_order(self) -> list[str]:
        """Tables with referenced tables first (the order rows are discovered in)."""
        return list(self._order)

    def erasure_order(self) -> list[str]:
        """Tables in the order an erasure writes them: a table whose rows point at another's
        (a followed reference, or an outward ``refers_to`` link) goes first, so that its link is
        changed or its rows are gone before the row it points at is."""
        return list(self._erasure_order)

    @cached_property
    def _erasure_order(self) -> tuple[str, ...]:
        if not any(t.refers_to for t in self.tables.values()):
            return tuple(reversed(self._order))
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:  # a table after every table pointing at it
            if name in seen:
                return
            seen.add(name)
            for other in sorted(self.tables):
                links = [r for r in self.tables[other].references if r.follow]
                links += list(self.tables[other].refers_to)
                if other != name and any(r.table == name for r in links):
                    visit(other)
            order.append(name)

        for name in self._order:
            visit(name)
        return tuple(order)

    @cached_property
    def _order(self) -> tuple[str, ...]:  # a frozen map: computed once per loaded map
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for ref in self.tables[name].references:
                if ref.follow and ref.table != name:
                    visit(ref.table)
            for other in sorted(self.tables):  # an outward link: the pointing table first
                if other != name and any(r.table == name for r in self.tables[other].refers_to):
                    visit(other)
            order.append(name)

        for name in sorted(self.tables):
            visit(name)
        return tuple(order)


# What a system outside SQL can be asked to do for a request (``http``), or a person does by hand
# (``manual``); the other kinds (objection, withdrawal) are flags the product checks itself.
EXTERNAL_OPERATIONS = ("access", "portability", "erasure", "rectification", "restriction")


@dataclass(frozen=True)
class HttpConnector:
    """The vendor's endpoint for a system Vern has no database connection to (a CRM, a newsletter
    tool): ``POST <base>/<operation>``, signed with HMAC-SHA256 under the system's secret."""

    url_env: str | None
    url_file: str | None
    secret_env: str | None
    secret_file: str | None
    operations: tuple[str, ...] = EXTERNAL_OPERATIONS
    timeout: float = 10.0


@dataclass(frozen=True)
class ManualTask:
    """A named owner does the work by hand (a helpdesk without an API) and confirms it."""

    owner: str  # e-mail address of the person responsible
    operations: tuple[str, ...] = EXTERNAL_OPERATIONS
    instructions: str = ""


@dataclass(frozen=True)
class Recipient:
    """Someone the data is disclosed to (Art. 19): told of every rectification, erasure and
    restriction by e-mail, or through a system's HTTP connector."""

    name: str
    email: str | None = None
    system: str | None = None


@dataclass(frozen=True)
class System:
    name: str
    title: str
    recipients: tuple[str, ...]  # the recipients' names (listed in the package and portal)
    databases: dict[str, DatabaseDef]
    http: HttpConnector | None = None
    manual: ManualTask | None = None
    notify: tuple[Recipient, ...] = ()  # recipients that can be told (an e-mail or a system)


@dataclass(frozen=True)
class DataMap:
    systems: dict[str, System]
    source: str = "<map>"

    def databases(self) -> list[DatabaseDef]:
        return [db for s in self.systems.values() for db in s.databases.values()]

    def external(self) -> list[System]:
        """Systems with an HTTP connector or a manual task, or with recipients to tell."""
        return [s for s in self.systems.values() if s.http or s.manual or s.notify]

    def recipient_names(self) -> list[str]:
        return sorted({r for s in self.systems.values() for r in s.recipients})

    def database(self, qualified: str) -> DatabaseDef:
        for db in self.databases():
            if qualified in (db.qualified, db.name):
                return db
        raise KeyError(qualified)
