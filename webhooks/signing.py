"""The headers that sign a webhook (docs/webhooks.md#signatures).

``standard``: the Standard Webhooks spec, through its reference library: ``webhook-id``
(the event id, the receiver's idempotency key), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256>``), which ``standardwebhooks.Webhook``
verifies. ``orb``: Orb's own, which the official SDK's ``client.webhooks.verify_signature``
verifies: ``X-Orb-Timestamp`` (ISO 8601) and ``X-Orb-Signature`` (``v1=<hex HMAC-SHA256>``
of ``v1:<timestamp>:<body>``, keyed by the secret's text).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from standardwebhooks import Webhook

from webhooks.endpoints import SignatureStyle


def headers(style: SignatureStyle, secret: str, event_id: str, body: str,
            now: datetime) -> dict[str, str]:
    """The headers of one POST of ``body`` (sent as it is, UTF-8) at ``now``."""
    common = {"content-type": "application/json", "webhook-id": event_id}
    if style == "standard":
        return common | {"webhook-timestamp": str(int(now.timestamp())),
                         "webhook-signature": Webhook(secret).sign(event_id, now, body)}
    stamp = now.replace(microsecond=0).isoformat()
    digest = hmac.new(secret.encode(), f"v1:{stamp}:{body}".encode(),
                      hashlib.sha256).hexdigest()
    return common | {"X-Orb-Timestamp": stamp, "X-Orb-Signature": f"v1={digest}"}
