"""Tenant isolation by construction (vern/core/db.py): a tenant-scoped session never sees, changes or
writes another organisation's rows, whatever the distribution of rows across organisations."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import aliased

from vern.accounts.models import ApiToken, Organisation
from vern.core.db import (
    CrossTenantWrite,
    Database,
    Prepared,
    Scope,
    ScopeBypassed,
    ScopeMissing,
    execute_fast,
    new_id,
    utcnow,
)

FIXTURE_OK = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Rows per organisation: 2-4 organisations holding 0-5 rows each.
DISTRIBUTIONS = st.lists(st.integers(min_value=0, max_value=5), min_size=2, max_size=4)


def _populate(db: Database, counts: list[int]) -> tuple[list[str], dict[str, list[str]]]:
    orgs: list[str] = []
    rows: dict[str, list[str]] = {}
    with db.transaction(Scope.system("test data")) as session:
        for count in counts:
            org = Organisation(slug=f"t-{new_id()[-12:]}", name="Testbarnehage", kind="tenant")
            session.add(org)
            session.flush()
            orgs.append(org.id)
            rows[org.id] = []
            for n in range(count):
                token = ApiToken(org_id=org.id, name=f"token {n}", prefix="vt_x",
                                 token_hash=new_id() + new_id()[:28], role="member",
                                 expires_at=utcnow() + timedelta(days=1))
                session.add(token)
                session.flush()
                rows[org.id].append(token.id)
    return orgs, rows


def _clean(db: Database, orgs: list[str]) -> None:
    with db.transaction(Scope.system("test clean-up")) as session:
        session.execute(delete(ApiToken).where(ApiToken.org_id.in_(orgs)))
        session.execute(delete(Organisation).where(Organisation.id.in_(orgs)))


@FIXTURE_OK
@given(counts=DISTRIBUTIONS)
def test_a_tenant_session_reads_only_its_own_rows(db: Database, counts: list[int]) -> None:
    orgs, rows = _populate(db, counts)
    try:
        everyone = [r for ids in rows.values() for r in ids]
        for org in orgs:
            with db.transaction(Scope.tenant(org)) as session:
                assert set(session.scalars(select(ApiToken.id))) == set(rows[org])
                assert session.scalar(select(func.count()).select_from(ApiToken)) == len(rows[org])
                assert session.scalar(select(func.count(ApiToken.id))) == len(rows[org])
                seen = {t.id for t in session.scalars(select(ApiToken))}
                assert seen == set(rows[org])
                for token_id in everyone:
                    found = session.get(ApiToken, token_id)
                    assert (found is not None) == (token_id in rows[org])
                joined = session.execute(
                    select(Organisation.id, ApiToken.id).join(
                        ApiToken, ApiToken.org_id == Organisation.id)
                ).all()
                assert {o for o, _t in joined} <= {org}
                assert len(joined) == len(rows[org])
                other = aliased(ApiToken)
                pairs = session.execute(
                    select(ApiToken.id, other.id).join(other, other.role == ApiToken.role)
                ).all()
                assert len(pairs) == len(rows[org]) ** 2
                assert session.scalar(
                    select(func.count()).select_from(Organisation)
                    .where(Organisation.id.in_(select(ApiToken.org_id)))
                ) == (1 if rows[org] else 0)
    finally:
        _clean(db, orgs)


@FIXTURE_OK
@given(counts=DISTRIBUTIONS, target=st.integers(min_value=0, max_value=3))
def test_a_tenant_session_updates_and_deletes_only_its_own_rows(
    db: Database, counts: list[int], target: int
) -> None:
    orgs, rows = _populate(db, counts)
    org = orgs[target % len(orgs)]
    try:
        with db.transaction(Scope.tenant(org)) as session:
            session.execute(update(ApiToken).values(name="renamed"))
        with db.transaction(Scope.system("check")) as session:
            renamed = Counter(session.scalars(
                select(ApiToken.org_id).where(ApiToken.name == "renamed",
                                              ApiToken.org_id.in_(orgs))))
        assert renamed == Counter({org: len(rows[org])} if rows[org] else {})
        with db.transaction(Scope.tenant(org)) as session:
            session.execute(delete(ApiToken))
        with db.transaction(Scope.system("check")) as session:
            left = Counter(session.scalars(
                select(ApiToken.org_id).where(ApiToken.org_id.in_(orgs))))
        assert left == Counter({o: len(rows[o]) for o in orgs if o != org and rows[o]})
    finally:
        _clean(db, orgs)


def test_it_refuses_to_flush_a_row_of_another_organisation(db: Database) -> None:
    orgs, rows = _populate(db, [1, 1])
    mine, theirs = orgs
    with db.transaction(Scope.tenant(mine)) as session:
        session.add(ApiToken(org_id=theirs, name="sneaky", prefix="vt_x", token_hash=new_id(),
                             role="tenant_admin", expires_at=utcnow() + timedelta(days=1)))
        with pytest.raises(CrossTenantWrite):
            session.flush()
        session.rollback()
    with db.transaction(Scope.tenant(mine)) as session:
        own = session.get(ApiToken, rows[mine][0])
        assert own is not None
        own.org_id = theirs  # moving a row out of the organisation is a cross-tenant write
        with pytest.raises(CrossTenantWrite):
            session.flush()
        session.rollback()
    with db.transaction(Scope.system("detached copy")) as session:
        foreign = session.get(ApiToken, rows[theirs][0])
        assert foreign is not None
        session.expunge(foreign)
    with db.transaction(Scope.tenant(mine)) as session:
        session.merge(foreign)  # not visible here, so merge treats it as new
        with pytest.raises(CrossTenantWrite):
            session.flush()
        session.rollback()
    with db.transaction(Scope.system("check")) as session:
        assert session.get(ApiToken, rows[theirs][0]).name == "token 0"  # type: ignore[union-attr]
        assert session.get(ApiToken, rows[mine][0]).org_id == mine  # type: ignore[union-attr]


def test_a_new_row_takes_the_organisation_of_the_scope(db: Database) -> None:
    orgs, _rows = _populate(db, [0, 0])
    with db.transaction(Scope.tenant(orgs[1])) as session:
        row = ApiToken(name="fresh", prefix="vt_x", token_hash=new_id(), role="member",
                       expires_at=utcnow() + timedelta(days=1))
        session.add(row)
        session.flush()
        assert row.org_id == orgs[1]


def test_it_refuses_tenant_data_without_a_scope(db: Database) -> None:
    orgs, rows = _populate(db, [1])
    session = db.session(None)
    try:
        with pytest.raises(ScopeMissing):
            session.scalars(select(ApiToken)).all()
        with pytest.raises(ScopeMissing):
            session.get(ApiToken, rows[orgs[0]][0])
        with pytest.raises(ScopeMissing):
            session.execute(update(ApiToken).values(name="x"))
        with pytest.raises(ScopeMissing):
            session.execute(delete(ApiToken))
        session.rollback()
        session.add(ApiToken(org_id=orgs[0], name="x", prefix="vt_x", token_hash=new_id(),
                             role="member", expires_at=utcnow() + timedelta(days=1)))
        with pytest.raises(ScopeMissing):
            session.flush()
        session.rollback()
        # Tables that are not tenant-owned need no scope.
        assert session.scalar(select(func.count()).select_from(Organisation)) == 1
    finally:
        session.close()


def test_a_system_scope_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        Scope.system("")


# -- Core statements: the ORM's criteria do not reach a table named directly -------------------

_TOKENS = ApiToken.__table__


def _core_reads() -> list[Any]:
    t = _TOKENS
    return [
        select(t),
        select(t.c.id, t.c.name),
        select(func.count()).select_from(t),
        select(Organisation.id).where(Organisation.id.in_(select(t.c.org_id))),
        select(Organisation.id).join(t, t.c.org_id == Organisation.id),
    ]


def _core_writes() -> list[Any]:
    t = _TOKENS
    return [
        update(t).values(name="renamed"),
        delete(t),
        insert(t).values(id=new_id(), name="x", prefix="vt_x", token_hash=new_id(),
                         role="member", expires_at=utcnow() + timedelta(days=1)),
    ]


def test_a_core_statement_on_a_tenant_table_is_refused_in_a_tenant_session(db: Database) -> None:
    orgs, rows = _populate(db, [1, 2])
    mine, theirs = orgs
    for stmt in _core_reads() + _core_writes():
        with db.transaction(Scope.tenant(mine)) as session, pytest.raises(ScopeBypassed):
            session.execute(stmt)
        unscoped = db.session(None)
        try:
            with pytest.raises(ScopeMissing):
                unscoped.execute(stmt)
        finally:
            unscoped.close()
    with db.transaction(Scope.system("check")) as session:
        assert set(session.scalars(select(ApiToken.name).where(ApiToken.org_id.in_(orgs)))) == {
            "token 0", "token 1"}
        assert session.scalar(select(func.count()).select_from(_TOKENS)) == 3  # system: allowed
    assert len(rows[theirs]) == 2


def test_a_deliberate_cross_tenant_read_says_so(db: Database) -> None:
    orgs, _rows = _populate(db, [1, 2])
    stmt = select(func.count()).select_from(_TOKENS).where(_TOKENS.c.org_id.in_(orgs))
    with db.transaction(Scope.tenant(orgs[0])) as session:
        assert session.scalar(stmt.execution_options(cross_tenant="test: every organisation")) == 3


def test_an_orm_insert_or_update_cannot_set_another_organisation(db: Database) -> None:
    orgs, rows = _populate(db, [1, 1])
    mine, theirs = orgs
    values = {"name": "bulk", "prefix": "vt_x", "role": "member",
              "expires_at": utcnow() + timedelta(days=1)}
    with db.transaction(Scope.tenant(mine)) as session, pytest.raises(CrossTenantWrite):
        session.execute(insert(ApiToken).values(id=new_id(), token_hash=new_id(), org_id=theirs,
                                                **values))
    with db.transaction(Scope.tenant(mine)) as session, pytest.raises(CrossTenantWrite):
        session.execute(insert(ApiToken), [{"id": new_id(), "token_hash": new_id(),
                                            "org_id": theirs, **values}])
    with db.transaction(Scope.tenant(mine)) as session, pytest.raises(CrossTenantWrite):
        session.execute(update(ApiToken).values(org_id=theirs))
    with db.transaction(Scope.tenant(mine)) as session:
        session.execute(insert(ApiToken).values(id=new_id(), token_hash=new_id(), org_id=mine,
                                                **values))
    with db.transaction(Scope.system("check")) as session:
        by_org = Counter(session.scalars(select(ApiToken.org_id).where(ApiToken.org_id.in_(orgs))))
    assert by_org == Counter({mine: 2, theirs: 1})
    assert rows[theirs]


def test_a_prepared_statement_on_a_tenant_table_must_say_why_it_has_no_scope() -> None:
    for stmt in (update(_TOKENS).values(name="x"), update(ApiToken).values(name="x"),
                 insert(ApiToken)):
        with pytest.raises(ScopeMissing, match="cross_tenant"):
            Prepared(stmt)
        with pytest.raises(ScopeMissing):
            execute_fast(None, stmt, {})
        Prepared(stmt.execution_options(cross_tenant="test: the engine's bookkeeping"))
    Prepared(update(Organisation).values(name="x"))  # not tenant-owned: no reason needed
