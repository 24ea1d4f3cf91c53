"""The Orb-compatible REST API (docs/api.md): FastAPI under ``/v1`` in Orb's shapes, with
API keys, roles, tenants and an audit trail, over the state store and the catalog. It sits
beside the CLI (``orb serve``), at the top of the layers (docs/architecture.md)."""
