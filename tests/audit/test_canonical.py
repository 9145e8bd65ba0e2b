"""The pieces of the fast append path give exactly what the slow, obvious code gives."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vern.audit.chain import Keys, _dumps, canonical, canonical_details, fast_ids

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
