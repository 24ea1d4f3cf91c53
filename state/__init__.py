"""The state store of customers, subscriptions and their changes (docs/state.md):
SQLite or PostgreSQL through SQLAlchemy Core, migrated with Alembic, append-only and
bitemporal. Plans, prices, metrics and coupons stay catalog YAML."""

from state.errors import StateError
from state.operations import (
    AddAdjustment,
    AddCustomer,
    Cancel,
    ChangePlan,
    CreateSubscription,
    Operation,
    RedeemCoupon,
    SetQuantity,
    UpdateCustomer,
)
from state.snapshot import Snapshot
from state.store import StateStore, Written

__all__ = ["AddAdjustment", "AddCustomer", "Cancel", "ChangePlan", "CreateSubscription",
           "Operation", "RedeemCoupon", "SetQuantity", "Snapshot", "StateError", "StateStore",
           "UpdateCustomer", "Written"]
