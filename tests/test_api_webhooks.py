"""Webhook endpoints through Orb's official SDK against the real ``orb serve``, and the
events the API's writes make posted by the real ``orb webhooks deliver`` to a receiver on
loopback, where the SDK's own verifier checks them (docs/webhooks.md)."""

from __future__ import annotations

import json

import orb
import pytest
from orb.types import WebhookEndpoint, WebhookEndpointWithSecret
from standardwebhooks import Webhook

from state.outbox import derived_event_id
from tests.api_tenants import API_VARIABLES, create_key, make_tenants, serve
from tests.api_tenants import orb as orb_cli
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        for variable in API_VARIABLES:
            patch.delenv(variable, raising=False)
        a, _ = make_tenants(tmp_path_factory.mktemp("api"))
        keys = (create_key(a, "admin"), create_key(a, "billing_operator"))
    with serve(a) as root:
        yield f"{root}/v1", keys, a


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_endpoints_through_the_sdk_and_a_delivery_the_sdk_verifies(server, receiver):
    url, (admin_key, operator_key), data_dir = server
    admin = orb.Orb(api_key=admin_key, base_url=url, max_retries=0)
    operator = orb.Orb(api_key=operator_key, base_url=url, max_retries=0)
    with pytest.raises(orb.PermissionDeniedError, match="need an admin key"):
        operator.webhook_endpoints.create(url=receiver.url)
    with pytest.raises(orb.BadRequestError, match=r"body.enabled_event_types: unknown "):
        admin.webhook_endpoints.create(url=receiver.url, enabled_event_types=["nope"])
    made = admin.webhook_endpoints.create(url=receiver.url,
                                          enabled_event_types=["customer.created"],
                                          extra_body={"signature_style": "orb"})
    assert isinstance(made, WebhookEndpointWithSecret)
    assert (made.enabled, made.payload_style, made.secret[:6]) == (True, "standard", "whsec_")
    plain = admin.webhook_endpoints.create(url=receiver.url, payload_style="expanded")
    listed = admin.webhook_endpoints.list()
    assert [e.id for e in listed.data] == [plain.id, made.id]  # newest first
    assert all(isinstance(e, WebhookEndpoint) for e in listed.data)
    assert "secret" not in (listed.data[0].model_extra or {})  # shown by the create only
    admin.webhook_endpoints.disable(plain.id)
    assert admin.webhook_endpoints.retrieve(plain.id).enabled is False
    admin.webhook_endpoints.enable(plain.id)
    updated = admin.webhook_endpoints.update(plain.id, enabled_event_types=["customer.created",
                                                                            "customer.edited"])
    assert updated.enabled_event_types == ["customer.created", "customer.edited"]
    with pytest.raises(orb.NotFoundError):
        admin.webhook_endpoints.retrieve("whe_missing")
    created = operator.customers.create(email="ap@acme.test", name="Acme",
                                        external_customer_id="acme-1")
    output = orb_cli(["webhooks", "deliver", "--data-dir", str(data_dir)])
    assert "2 delivered, 0 to retry, 0 failed" in output
    by_endpoint = {"x-orb-signature" in r.headers: r for r in receiver.received}
    # the orb-signed one, through the SDK's own verifier and parser (standard payloads)
    signed = by_endpoint[True]
    event = admin.webhooks.unwrap_standard(signed.body.decode(), signed.headers,
                                           secret=made.secret)
    assert (event.type, event.id) == ("customer.created",
                                      derived_event_id("customer.created", created.id))
    other = Webhook(plain.secret).verify(by_endpoint[False].body, by_endpoint[False].headers)
    assert (other["payload_style"], other["customer"]["external_customer_id"]) == (
        "expanded", "acme-1")
    attempts = json.loads(orb_cli(["webhooks", "attempts", event.id, "--format", "json",
                                   "--data-dir", str(data_dir)]))
    assert sorted((a["endpoint_id"], a["attempt"], a["outcome"], a["status_code"])
                  for a in attempts) == sorted([(made.id, 1, "delivered", 200),
                                                (plain.id, 1, "delivered", 200)])
    endpoints = json.loads(orb_cli(["webhooks", "endpoints", "list", "--format", "json",
                                    "--data-dir", str(data_dir)]))
    assert [(e["id"], e["signature_style"]) for e in endpoints] == [
        (made.id, "orb"), (plain.id, "standard")]
