"""The fast path of ``POST /v1/ingest`` under ``orb serve`` decodes a request with
msgspec (``event_requests.fast_lines``) instead of pydantic: it must write the lines
pydantic's path writes (``serialized``: the same values, keys in the same order; only a
float's spelling may differ, 1e16 for 1e+16), and leave every request it refuses to
pydantic, which words the error as before."""

import json

from fastapi.exceptions import RequestValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from api.bodies import parsed
from ingestion.event_requests import IngestRequest, fast_lines, serialized

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
events = st.fixed_dictionaries(
    {"event_name": st.text(max_size=10), "idempotency_key": st.text(min_size=1, max_size=10),
     "timestamp": st.text(max_size=25), "properties": st.dictionaries(st.text(max_size=6),
                                                                     values, max_size=4)},
    optional={"customer_id": st.none() | st.text(max_size=6),
              "external_customer_id": st.none() | st.text(max_size=6),
              "unknown_field": st.integers()})


def pydantic_lines(body: bytes) -> tuple[bytes, int] | None:
    """What the endpoint writes when msgspec refuses the body (None: a 400)."""
    try:
        request = parsed(IngestRequest, body)
    except RequestValidationError:
        return None
    return serialized(request.events), len(request.events)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, min_size=0, max_size=4))
def test_the_fast_path_writes_what_pydantic_writes_or_leaves_the_request_to_it(batch):
    body = json.dumps({"events": batch}).encode()
    fast, slow = fast_lines(body), pydantic_lines(body)
    assert (fast is None) == (slow is None)
    if fast is not None and slow is not None:
        assert fast[1] == slow[1] == len(batch)
        assert fields_of(fast[0]) == fields_of(slow[0])


def fields_of(lines: bytes) -> list[list[tuple[str, object]]]:
    """Each line's fields, in their order (properties compared as values)."""
    return [list(json.loads(line).items()) for line in lines.splitlines()]


def test_what_pydantic_refuses_is_left_to_it():
    for refused in (b'{"events": []}', b'{"events": [{"event_name": "api"}]}', b"[]",
                    b'{"events": [{"event_name": "a", "timestamp": "t", "idempotency_key": "k",'
                    b' "properties": {"n": NaN}}]}', b'{"events": [', b"",
                    b'{"events": [{"event_name": "a", "timestamp": "t", "idempotency_key": "k",'
                    b' "properties": {"n": 1e999}}]}'):
        assert fast_lines(refused) is None
        assert pydantic_lines(refused) is None
    ok = (b'{"events": [{"timestamp": "2026-11-09T12:00:00Z", "properties": {"b": [1, {"y": 2,'
          b' "x": 1.5}], "a": "\\u00e9"}, "event_name": "api", "customer_id": null,'
          b' "idempotency_key": "k1"}]}')
    # keys sorted at every level, no spaces, no nulls, UTF-8 as is
    assert fast_lines(ok) == (
        '{"event_name":"api","idempotency_key":"k1","properties":{"a":"é","b":[1,{"x":1.5,'
        '"y":2}]},"timestamp":"2026-11-09T12:00:00Z"}\n'.encode(), 1)
