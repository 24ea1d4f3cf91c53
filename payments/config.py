"""Which payment processor collects issued invoices, from ``ORB_*`` variables.

Secrets never go through Dagster config: the Stripe key is read from
``ORB_STRIPE_API_KEY`` when the processor is built, so it is neither in run config nor
in the UI.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from payments.manual import ManualProcessor
from payments.processor import PaymentProcessor
from payments.stripe_processor import StripeProcessor

DEFAULT_PROCESSOR = "manual"
DEFAULT_KEY_PREFIX = "orb"


@dataclass(frozen=True)
class PaymentSettings:
    """``processor``: ``manual`` (default; payments recorded in ``payments_file``, by
    default ``<data_dir>/payments/payments.csv``) or ``stripe`` (``ORB_STRIPE_API_KEY``,
    optionally ``ORB_STRIPE_API_BASE``). ``key_prefix`` starts every idempotency key:
    give each lake its own when several share one Stripe account."""

    processor: str = DEFAULT_PROCESSOR
    payments_file: str = ""
    key_prefix: str = DEFAULT_KEY_PREFIX

    @classmethod
    def from_env(cls) -> PaymentSettings:
        """ORB_PAYMENT_PROCESSOR, ORB_PAYMENTS_FILE, ORB_PAYMENT_KEY_PREFIX."""
        return cls(processor=os.environ.get("ORB_PAYMENT_PROCESSOR", DEFAULT_PROCESSOR),
                   payments_file=os.environ.get("ORB_PAYMENTS_FILE", ""),
                   key_prefix=os.environ.get("ORB_PAYMENT_KEY_PREFIX", DEFAULT_KEY_PREFIX))

    def build(self, data_dir: str | Path) -> PaymentProcessor:
        if self.processor not in PROCESSORS:
            raise ValueError(f"unknown payment processor {self.processor!r} "
                             f"(ORB_PAYMENT_PROCESSOR): one of {', '.join(PROCESSORS)}")
        return PROCESSORS[self.processor](self, Path(data_dir))


def _manual(settings: PaymentSettings, data_dir: Path) -> PaymentProcessor:
    return ManualProcessor(settings.payments_file or data_dir / "payments" / "payments.csv")


def _stripe(settings: PaymentSettings, data_dir: Path) -> PaymentProcessor:
    return StripeProcessor.from_env()


# A new gateway: a PaymentProcessor subclass and one entry here.
PROCESSORS: dict[str, Callable[[PaymentSettings, Path], PaymentProcessor]] = {
    "manual": _manual,
    "stripe": _stripe,
}
