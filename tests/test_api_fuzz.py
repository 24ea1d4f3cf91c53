"""Every operation of the API's OpenAPI document, fuzzed by schemathesis against the real
``orb serve`` on loopback: whatever a client sends (valid, malformed, huge, unknown ids),
the server answers with a status the document declares, in the declared shape, and
never a 500. Orb's error shape is declared once for every route (api/errors.py)."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.access import ApiConfig
from api.app import create_app
from api.registry import Registry
from tests.api_tenants import API_VARIABLES, create_key, make_tenants, serve

# Examples per operation: a few in `make test`; ORB_FUZZ_EXAMPLES=200 for a deep run.
EXAMPLES = int(os.environ.get("ORB_FUZZ_EXAMPLES", "5"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The served API's root URL and an admin key (writes included)."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in API_VARIABLES:
            patch.delenv(variable, raising=False)
        data, _ = make_tenants(tmp_path_factory.mktemp("fuzz"))
        admin = create_key(data, "admin")
    with serve(data) as root:
        yield root, admin


# The document depends on the routes alone, so it is taken at collection from an app over
# a registry it never opens (schemathesis' lazy fixture loader does not run on pytest 9),
# and the cases are sent to the served process. A test checks they are the same document.
DOCUMENT = create_app(ApiConfig(Registry(sa.create_engine("sqlite://"), b"", ""))).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_fuzzed(served):
    root, _ = served
    with urllib.request.urlopen(f"{root}/v1/openapi.json") as response:
        assert json.load(response) == DOCUMENT


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_every_operation_answers_as_documented(case, served):
    root, admin = served
    case.call_and_validate(base_url=root, headers={"Authorization": f"Bearer {admin}"},
                           checks=CHECKS, timeout=30)
