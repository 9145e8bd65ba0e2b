"""A second fictional product for the scan's tests and benchmark: "Filmbua", a DVD rental shop of
another shape than the demo learning platform - customers and staff with upper-case names and
e-mails, addresses with international phone numbers, stores, rentals, payments (partitioned by
month on PostgreSQL), reviews, API keys, and lookup tables for countries, cities, languages and
film categories. No tenant column: the whole database belongs to one customer.

``TRUTH`` is the hand-labelled set of columns that hold personal data: what identifies a person or
what they wrote, and every link to a person's row. Attributes that are personal only through such a
link (a payment's amount, a rental's date) are not counted on their own. Every person is fictional
(example.com).
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    insert,
    text,
)

metadata = MetaData()

country = Table(
    "country",
    metadata,
    Column("country_id", Integer, primary_key=True),
    Column("country", String(50), nullable=False),
)
city = Table(
    "city",
    metadata,
    Column("city_id", Integer, primary_key=True),
    Column("city", String(50), nullable=False),
    Column("country_id", Integer, ForeignKey("country.country_id"), nullable=False),
)
address = Table(
    "address",
    metadata,
    Column("address_id", Integer, primary_key=True),
    Column("address", String(50), nullable=False),
    Column("address2", String(50)),
    Column("district", String(20), nullable=False),
    Column("city_id", Integer, ForeignKey("city.city_id"), nullable=False),
    Column("postal_code", String(10)),
    Column("phone", String(20), nullable=False),
    Column("last_update", DateTime, nullable=False),
)
language = Table(
    "language",
    metadata,
    Column("language_id", Integer, primary_key=True),
    Column("name", String(20), nullable=False),
)
category = Table(
    "category",
    metadata,
    Column("category_id", Integer, primary_key=True),
    Column("name", String(25), nullable=False),
)
film = Table(
    "film",
    metadata,
    Column("film_id", Integer, primary_key=True),
    Column("title", String(255), nullable=False),
    Column("description", Text),
    Column("release_year", SmallInteger),
    Column("language_id", Integer, ForeignKey("language.language_id"), nullable=False),
    Column("rental_rate", Numeric(4, 2), nullable=False),
    Column("rating", String(5)),
)
film_category = Table(
    "film_category",
    metadata,
    Column("film_id", Integer, ForeignKey("film.film_id"), primary_key=True),
    Column("category_id", Integer, ForeignKey("category.category_id"), primary_key=True),
)
staff = Table(
    "staff",
    metadata,
    Column("staff_id", Integer, primary_key=True),
    Column("first_name", String(45), nullable=False),
    Column("last_name", String(45), nullable=False),
    Column("address_id", Integer, ForeignKey("address.address_id"), nullable=False),
    Column("email", String(50)),
    Column("store_id", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("username", String(16), nullable=False),
    Column("password", String(40)),
)
store = Table(
    "store",
    metadata,
    Column("store_id", Integer, primary_key=True),
    Column("manager_staff_id", Integer, ForeignKey("staff.staff_id"), nullable=False),
    Column("address_id", Integer, ForeignKey("address.address_id"), nullable=False),
)
customer = Table(
    "customer",
    metadata,
    Column("customer_id", Integer, primary_key=True),
    Column("store_id", Integer, ForeignKey("store.store_id"), nullable=False),
    Column("first_name", String(45), nullable=False),
    Column("last_name", String(45), nullable=False),
    Column("email", String(50), unique=True),
    Column("address_id", Integer, ForeignKey("address.address_id"), nullable=False),
    Column("birth_date", Date),
    Column("active", Boolean, nullable=False),
    Column("create_date", DateTime, nullable=False),
)
inventory = Table(
    "inventory",
    metadata,
    Column("inventory_id", Integer, primary_key=True),
    Column("film_id", Integer, ForeignKey("film.film_id"), nullable=False),
    Column("store_id", Integer, ForeignKey("store.store_id"), nullable=False),
)
rental = Table(
    "rental",
    metadata,
    Column("rental_id", Integer, primary_key=True),
    Column("rental_date", DateTime, nullable=False),
    Column("inventory_id", Integer, ForeignKey("inventory.inventory_id"), nullable=False),
    Column("customer_id", Integer, ForeignKey("customer.customer_id"), nullable=False),
    Column("return_date", DateTime),
    Column("staff_id", Integer, ForeignKey("staff.staff_id"), nullable=False),
)
payment = Table(
    "payment",
    metadata,
    Column("payment_id", Integer, nullable=False),
    Column("customer_id", Integer, ForeignKey("customer.customer_id"), nullable=False),
    Column("staff_id", Integer, ForeignKey("staff.staff_id"), nullable=False),
    Column("rental_id", Integer, ForeignKey("rental.rental_id")),
    Column("amount", Numeric(5, 2), nullable=False),
    Column("payment_date", DateTime, nullable=False),
    PrimaryKeyConstraint("payment_id", "payment_date"),
    postgresql_partition_by="RANGE (payment_date)",
)
review = Table(
    "review",
    metadata,
    Column("review_id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customer.customer_id", ondelete="CASCADE"), nullable=False),
    Column("film_id", Integer, ForeignKey("film.film_id"), nullable=False),
    Column("stars", SmallInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)
api_key = Table(
    "api_key",
    metadata,
    Column("key_id", Integer, primary_key=True),
    Column("staff_id", Integer, ForeignKey("staff.staff_id"), nullable=False),
    Column("token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# Columns that hold personal data (hand-labelled; see the module's docstring).
TRUTH = frozenset(
    {
        "address.address",
        "address.address2",
        "address.district",
        "address.postal_code",
        "address.phone",
        "staff.staff_id",
        "staff.first_name",
        "staff.last_name",
        "staff.email",
        "staff.username",
        "staff.password",
        "store.manager_staff_id",
        "customer.customer_id",
        "customer.first_name",
        "customer.last_name",
        "customer.email",
        "customer.birth_date",
        "rental.customer_id",
        "rental.staff_id",
        "payment.customer_id",
        "payment.staff_id",
        "review.customer_id",
        "review.body",
        "api_key.staff_id",
        "api_key.token",
    }
)

FIRST = [
    "KARI",
    "OLA",
    "MARY",
    "JOHN",
    "INGRID",
    "AHMED",
    "SOFIE",
    "CARLOS",
    "EMMA",
    "LARS",
    "FATIMA",
    "PETER",
]
LAST = ["NORDMANN", "SMITH", "HANSEN", "GARCIA", "BERG", "MÜLLER", "KHAN", "DAHL", "JOHNSON", "LUND", "ROSSI"]
COUNTRIES = ["Norway", "Sweden", "United Kingdom", "Germany", "United States", "Spain", "Pakistan", "Italy"]
CITIES = ["Oslo", "Bergen", "Tromsø", "Göteborg", "London", "Hamburg", "Boston", "Madrid", "Lahore", "Roma"]
STREETS = [
    "Storgata",
    "Kirkeveien",
    "High Street",
    "Hauptstraße",
    "Main St",
    "Calle Mayor",
    "Via Roma",
    "Elm Road",
]
DISTRICTS = [
    "Oslo",
    "Vestland",
    "Troms",
    "Västra Götaland",
    "Greater London",
    "Hamburg",
    "Massachusetts",
    "Madrid",
]
LANGUAGES = ["English", "Norwegian", "Italian", "Japanese", "Mandarin", "French", "German"]
CATEGORIES = [
    "Action",
    "Animation",
    "Children",
    "Classics",
    "Comedy",
    "Documentary",
    "Drama",
    "Family",
    "Foreign",
    "Games",
    "Horror",
    "Music",
    "New",
    "Sci-Fi",
    "Sports",
    "Travel",
]
FILM_WORDS = [
    "ACADEMY",
    "DINOSAUR",
    "ACE",
    "GOLDFINGER",
    "ADAPTATION",
    "HOLES",
    "AFFAIR",
    "PREJUDICE",
    "AGENT",
    "TRUMAN",
    "AIRPLANE",
    "SIERRA",
    "ALABAMA",
    "DEVIL",
    "ALADDIN",
    "CALENDAR",
]
REVIEWS = [
    "Flott film, men plata hadde riper og hakket midt i.",
    "Great film for the whole family, we watched it twice over the weekend.",
    "Levert for sent, og coveret manglet. Ellers grei.",
    "Not my taste, too long and the sound was poor on this copy.",
]


def _phone(i: int, rng: random.Random) -> str:
    kind = i % 5
    if kind == 0:
        return f"+47 9{rng.randrange(1000000, 9999999)}"
    if kind == 1:
        return f"+44 20 7946 0{rng.randrange(100, 999)}"
    if kind == 2:
        return f"(617) 555-01{rng.randrange(10, 99)}"
    if kind == 3:
        return f"+49 30 {rng.randrange(1000000, 9999999)}"
    return f"0{rng.randrange(100000000, 999999999)}"


def _postcode(i: int, rng: random.Random) -> str:
    return [
        f"{rng.randrange(1, 9999):04d}",
        f"SW1A {rng.randrange(1, 9)}AA",
        f"{rng.randrange(10000, 99999)}",
        f"{rng.randrange(10000, 99999)}-{rng.randrange(1000, 9999)}",
    ][i % 4]


def create_product(engine: Engine) -> None:
    metadata.create_all(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for month in range(1, 13):
                start = date(2025, month, 1)
                end = date(2025 + month // 12, month % 12 + 1, 1)
                conn.execute(
                    text(
                        f"CREATE TABLE payment_p2025_{month:02d} PARTITION OF payment "
                        f"FOR VALUES FROM ('{start}') TO ('{end}')"
                    )
                )


Rows = dict[Table, list[dict[str, Any]]]


def fill(engine: Engine, *, customers: int = 60, seed: int = 11) -> None:
    rng = random.Random(seed)
    now = datetime(2025, 6, 1, 12, 0)
    rows: Rows = {t: [] for t in metadata.sorted_tables}
    _catalogue(rows)
    people = customers + 4
    rows[address] = [_address_row(i, rng, now) for i in range(people)]
    _staff_and_stores(rows, people, now)
    for i in range(20):
        rows[inventory].append({"inventory_id": i + 1, "film_id": i % 40 + 1, "store_id": i % 2 + 1})
    for c in range(customers):
        _customer(rows, c, now)
    _insert(engine, rows)


def _catalogue(rows: Rows) -> None:
    """The lookup tables and the films with their categories."""
    rows[country] = [{"country_id": i + 1, "country": c} for i, c in enumerate(COUNTRIES)]
    rows[city] = [
        {"city_id": i + 1, "city": c, "country_id": i % len(COUNTRIES) + 1} for i, c in enumerate(CITIES)
    ]
    rows[language] = [{"language_id": i + 1, "name": n} for i, n in enumerate(LANGUAGES)]
    rows[category] = [{"category_id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)]
    for i in range(40):
        rows[film].append(
            {
                "film_id": i + 1,
                "title": f"{FILM_WORDS[i % 16]} {FILM_WORDS[(i * 7 + 3) % 16]}",
                "description": "A thoughtful drama of a lumberjack and a dog who must find a boat "
                "in the Canadian Rockies",
                "release_year": 2006,
                "language_id": i % len(LANGUAGES) + 1,
                "rental_rate": Decimal("2.99"),
                "rating": ["G", "PG", "R"][i % 3],
            }
        )
        rows[film_category].append({"film_id": i + 1, "category_id": i % len(CATEGORIES) + 1})


def _address_row(i: int, rng: random.Random, now: datetime) -> dict[str, Any]:
    """The address of person ``i`` (customers first, then staff and stores)."""
    return {
        "address_id": i + 1,
        "address": f"{STREETS[i % len(STREETS)]} {rng.randrange(1, 120)}"
        if i % 3
        else f"{rng.randrange(1, 999)} {STREETS[i % len(STREETS)]}",
        "address2": f"Leilighet H0{rng.randrange(101, 409)}" if i % 4 == 0 else None,
        "district": DISTRICTS[i % len(DISTRICTS)],
        "city_id": i % len(CITIES) + 1,
        "postal_code": _postcode(i, rng),
        "phone": _phone(i, rng),
        "last_update": now,
    }


def _staff_and_stores(rows: Rows, people: int, now: datetime) -> None:
    """Two stores, each with its manager and the manager's API key."""
    for s in range(2):
        first, last = FIRST[s + 3], LAST[s + 4]
        rows[staff].append(
            {
                "staff_id": s + 1,
                "first_name": first.title(),
                "last_name": last.title(),
                "address_id": people - s,
                "email": f"{first}.{last}@example.com".title(),
                "store_id": s + 1,
                "active": True,
                "username": f"{first.lower()}{s}",
                "password": hashlib.sha1(f"fiktivt-{s}".encode(), usedforsecurity=False).hexdigest(),
            }
        )
        rows[store].append({"store_id": s + 1, "manager_staff_id": s + 1, "address_id": people - 2 - s})
        rows[api_key].append(
            {
                "key_id": s + 1,
                "staff_id": s + 1,
                "token": hashlib.sha256(f"k{s}".encode()).hexdigest(),
                "created_at": now,
            }
        )


def _customer(rows: Rows, c: int, now: datetime) -> None:
    """Customer ``c`` with two rentals and their payments, and a review from every third."""
    first, last = FIRST[c % len(FIRST)], LAST[(c * 5) % len(LAST)]
    rows[customer].append(
        {
            "customer_id": c + 1,
            "store_id": c % 2 + 1,
            "first_name": first,
            "last_name": last,
            "email": f"{first}.{last}.{c}@EXAMPLE.COM".replace("Ü", "U"),
            "address_id": c + 1,
            "birth_date": date(1950 + c % 50, 1 + c % 12, 1 + c % 28),
            "active": True,
            "create_date": now - timedelta(days=c),
        }
    )
    for k in range(2):
        rid = c * 2 + k + 1
        when = datetime(2025, 1 + (c + k) % 12, 1 + c % 27, 18, 0)
        rows[rental].append(
            {
                "rental_id": rid,
                "rental_date": when,
                "inventory_id": rid % 20 + 1,
                "customer_id": c + 1,
                "return_date": when + timedelta(days=3),
                "staff_id": k + 1,
            }
        )
        rows[payment].append(
            {
                "payment_id": rid,
                "customer_id": c + 1,
                "staff_id": k + 1,
                "rental_id": rid,
                "amount": Decimal("4.99"),
                "payment_date": when,
            }
        )
    if c % 3 == 0:
        rows[review].append(
            {
                "review_id": c + 1,
                "customer_id": c + 1,
                "film_id": c % 40 + 1,
                "stars": 1 + c % 5,
                "body": REVIEWS[c % len(REVIEWS)],
                "created_at": now,
            }
        )


def _insert(engine: Engine, rows: Rows) -> None:
    with engine.begin() as conn:
        if engine.dialect.name in ("mysql", "mariadb"):
            conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        for table in metadata.sorted_tables:
            if rows[table]:
                conn.execute(insert(table), rows[table])
        if engine.dialect.name in ("mysql", "mariadb"):
            conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
