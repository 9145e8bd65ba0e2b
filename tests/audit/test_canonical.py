"""The pieces of the fast append path give exactly what the slow, obvious code gives."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.audit.helpers import audit_log
from tests.conftest import make_settings
from vern.audit.chain import (
    FIELDS,
    Keys,
    _dumps,
    canonical,
    canonical_details,
    datetime_to_us,
    fast_ids,
    now_us,
)
from vern.audit.logfile import file_for
from vern.core.db import Database, new_id

scalars = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    st.text(max_size=60))


@given(st.lists(scalars, min_size=1, max_size=20))
def test_the_prebuilt_encoder_writes_what_json_dumps_writes(values: list[Any]) -> None:
    assert _dumps(values) == json.dumps(values, separators=(",", ":"))
    assert _dumps(tuple(values)) == json.dumps(values, separators=(",", ":"))


@given(st.dictionaries(st.text(max_size=10), st.one_of(scalars, st.lists(scalars, max_size=3)),
                       max_size=6))
def test_details_are_canonical_json_with_sorted_keys(details: dict[str, Any]) -> None:
    assert canonical_details(details) == json.dumps(details, sort_keys=True,
                                                    separators=(",", ":"), default=str)


def test_a_record_line_has_the_sealed_data_as_hex() -> None:
    line = canonical([7, "id", 1, "ingest", None, None, None, "a", "k", b"\x01\xff", None, None,
                      "x.read", "r", "success", None, None, None])
    assert json.loads(line)[9] == "01ff"


def test_bulk_ids_are_distinct_version_7_uuids() -> None:
    ids = fast_ids(5000)
    assert len(set(ids)) == 5000
    for value in ids[:200]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


def test_the_sealed_plaintext_is_the_json_of_the_fields_given() -> None:
    keys = Keys()
    assert keys.payload(None, None, None) is None
    assert json.loads(keys.payload("192.0.2.1", "UA" * 300, "Kari") or b"") == {
        "ip": "192.0.2.1", "ua": ("UA" * 300)[:512], "name": "Kari"}
    assert keys.payload("192.0.2.1", None, None) is keys.payload("192.0.2.1", None, None)


texts = st.one_of(st.none(), st.text(max_size=40))  # any character: quotes, controls, astral


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(texts, texts, texts, texts, texts, texts, texts), min_size=1, max_size=12))
def test_the_lines_the_append_writes_are_the_canonical_form_of_the_stored_rows(
    sqlite_db: Database, tmp_path: Path, fields: list[tuple[str | None, ...]]
) -> None:
    """The append builds each line from cached pieces; it must be byte for byte what
    ``canonical`` gives for the row as stored (what ``vern audit verify`` recomputes)."""
    settings = make_settings(sqlite_db.url, tmp_path / uuid.uuid4().hex)
    log = audit_log(sqlite_db, settings)
    rows = [{
        "id": new_id(), "ts": now_us(), "source": "ingest", "org_id": org, "actor_user_id": None,
        "actor_token_id": None, "actor_ref": actor, "key_id": None,
        "personal": None if i % 2 else bytes([i % 256, 0, 255]), "ip_index": None,
        "net_index": net, "action": action or "x.read", "resource": resource,
        "outcome": "success", "request_id": request, "client_event_id": None,
        "details": None if details is None else canonical_details({"v": details}),
    } for i, (org, actor, net, action, resource, request, details) in enumerate(fields)]
    result = log.append(rows)
    with sqlite_db.engine.connect() as conn:
        stored = conn.execute(text(
            f"SELECT {', '.join(FIELDS)} FROM audit_events WHERE seq >= :a ORDER BY seq"),  # noqa: S608
            {"a": result.first_seq}).all()
    written = [line for line in file_for(settings.audit_log_dir).read_bytes().splitlines()
               if not line.startswith(b'{"checkpoint"')][-len(rows):]
    assert written == [canonical(tuple(r)) for r in stored]


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                    timezones=st.just(UTC)))
def test_times_are_whole_microseconds_since_the_epoch_exactly(moment: datetime) -> None:
    span = moment - datetime(1970, 1, 1, tzinfo=UTC)
    assert datetime_to_us(moment) == (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds
