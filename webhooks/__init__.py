"""What the rest of the company is told (docs/webhooks.md): the outbox's events derived
from lake facts, alerts on usage, cost and credit balances, and their delivery to
webhook endpoints, signed per the Standard Webhooks spec."""
