"""Price models in the shape of Orb's API, and the one normal form the pricing SQL runs.

Each model validates its ``<model_type>_config`` and compiles it to a ``Program``:
an ordered list of tiers plus a few switches. ``pricing_sql/sql/line_items.sql``
evaluates every program for every customer in one set-based pass:

- the usage of each group (one group unless the price is grouped or a matrix) is
  reduced by an allocation, then rounded up to whole packages, if the price has one;
- ``graduated``: each unit is charged at the rate of the tier it falls in;
  ``volume``: every unit is charged at the rate of the tier the total falls in;
  ``threshold``: the flat amount of the tier the total falls in is charged;
- a tier's ``minimum_amount`` is the least the group pays once usage reaches it;
- a matrix cell whose dimension values equal the group's overrides the rate.

Tier bounds are ``(lower, upper]``: exclusive lower, inclusive upper, as Orb
documents for tiered prices; a null lower bound is minus infinity and a null
upper bound is infinity. See docs/pricing.md for each model's formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from billing.catalog.fields import DecimalString, Identifier, Strict, decimal_string

RATE_PLACES = 12  # unit rates are DECIMAL(38, 12) in SQL
BASIS_POINT = Decimal("0.0001")
PERCENT = Decimal("0.01")


Amount = Annotated[DecimalString, Field(ge=0)]
Quantity = Annotated[Decimal, Field(ge=0)]
PropertyKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


@dataclass(frozen=True)
class ProgramTier:
    lower: Decimal | None
    upper: Decimal | None
    rate: Decimal = Decimal(0)
    flat_amount: Decimal | None = None
    minimum_amount: Decimal | None = None


@dataclass(frozen=True)
class Program:
    scheme: Literal["graduated", "volume", "threshold"]
    tiers: list[ProgramTier]
    cells: list[tuple[tuple[str | None, ...], Decimal]] = field(default_factory=list)
    grouping: tuple[str, ...] = ()
    package_size: Decimal | None = None
    allocation: Decimal | None = None
    matrix_allocation: Decimal | None = None
    prorate: bool = False


def _rate(value: Decimal, what: str) -> Decimal:
    """A rate the SQL can hold exactly (12 decimal places), or a clear error."""
    if value != value.quantize(Decimal(1).scaleb(-RATE_PLACES)):
        raise ValueError(f"{what} {value} needs more than {RATE_PLACES} decimal places")
    return value


def _flat(rate: Decimal) -> list[ProgramTier]:
    return [ProgramTier(Decimal(0), None, rate)]


def _upper_bounds(lowers: list[Decimal]) -> list[Decimal | None]:
    return [*lowers[1:], None]


def _increasing(values: list[Decimal]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def _check_lower_bounds(lowers: list[Decimal]) -> None:
    if lowers[0] != 0:
        raise ValueError("the first tier_lower_bound must be 0")
    if not _increasing(lowers):
        raise ValueError("tier_lower_bound values must increase")


def _check_maxima(maxima: list[Decimal | None], name: str) -> None:
    """Volume tiers: upper bounds that increase, and only the last one open."""
    if any(m is None for m in maxima[:-1]):
        raise ValueError(f"only the last tier may have no {name}")
    if not _increasing([m for m in maxima if m is not None]):
        raise ValueError(f"{name} must increase from tier to tier")


def _volume_tiers(maxima: list[Decimal | None], rates: list[Decimal]) -> list[ProgramTier]:
    # The last tier is open-ended whatever its maximum says.
    uppers = [*maxima[:-1], None]
    lowers = [None, *uppers[:-1]]
    return [ProgramTier(lo, hi, rate) for lo, hi, rate in zip(lowers, uppers, rates, strict=True)]


# ---- configs ---------------------------------------------------------------------------


class Tier(Strict):
    """A tiered price's tier: units in ``(first_unit, last_unit]`` cost ``unit_amount``."""

    first_unit: Quantity
    last_unit: Quantity | None = None
    unit_amount: Amount


class TieredConfig(Strict):
    tiers: list[Tier] = Field(min_length=1)
    prorated: bool = False

    @model_validator(mode="after")
    def _contiguous(self) -> TieredConfig:
        if self.tiers[0].first_unit != 0:
            raise ValueError("the first tier must start at first_unit 0")
        for index, tier in enumerate(self.tiers):
            last = index == len(self.tiers) - 1
            if tier.last_unit is None and not last:
                raise ValueError(f"tier {index} has no last_unit but is not the last tier")
            if tier.last_unit is not None and tier.last_unit <= tier.first_unit:
                raise ValueError(f"tier {index}: last_unit must exceed first_unit")
            if not last and self.tiers[index + 1].first_unit != tier.last_unit:
                raise ValueError(f"tier {index + 1} starts at {self.tiers[index + 1].first_unit}, "
                                 f"but tier {index} ends at {tier.last_unit}: tiers must be "
                                 "contiguous")
        return self


class UnitConfig(Strict):
    unit_amount: Amount
    prorated: bool = False


class PackageConfig(Strict):
    package_amount: Amount
    package_size: Annotated[Decimal, Field(gt=0)]


class MatrixValue(Strict):
    dimension_values: list[str | None] = Field(min_length=1)
    unit_amount: Amount


class MatrixConfig(Strict):
    dimensions: list[PropertyKey | None] = Field(min_length=1)
    default_unit_amount: Amount
    matrix_values: list[MatrixValue] = []

    @model_validator(mode="after")
    def _shape(self) -> MatrixConfig:
        if not self.keys():
            raise ValueError("a matrix needs at least one non-null dimension")
        seen = set()
        for index, value in enumerate(self.matrix_values):
            cell = self.cell(value)
            if cell in seen:
                raise ValueError(f"matrix_values[{index}] repeats dimension_values {cell}")
            seen.add(cell)
        return self

    def keys(self) -> tuple[str, ...]:
        return tuple(d for d in self.dimensions if d is not None)

    def cell(self, value: MatrixValue) -> tuple[str | None, ...]:
        """A matrix value's dimension values, one per non-null dimension (Orb sends
        ``[value, null]`` for a one-dimensional matrix)."""
        values = list(value.dimension_values) + [None] * len(self.dimensions)
        cell = tuple(v for d, v in zip(self.dimensions, values, strict=False) if d is not None)
        extra = value.dimension_values[len(self.dimensions):]
        if any(v is not None for v in extra):
            raise ValueError(f"dimension_values {value.dimension_values} has more values than "
                             f"dimensions {self.dimensions}")
        return cell


class MatrixWithAllocationConfig(MatrixConfig):
    allocation: Quantity


class BulkTier(Strict):
    maximum_units: Quantity | None = None
    unit_amount: Amount


class BulkConfig(Strict):
    tiers: list[BulkTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _maxima(self) -> BulkConfig:
        _check_maxima([t.maximum_units for t in self.tiers], "maximum_units")
        return self


class Threshold(Strict):
    threshold: DecimalString = Field(ge=0)
    total_amount: Amount


class ThresholdTotalAmountConfig(Strict):
    consumption_table: list[Threshold] = Field(min_length=1)
    prorate: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdTotalAmountConfig:
        if not _increasing([t.threshold for t in self.consumption_table]):
            raise ValueError("consumption_table thresholds must increase")
        return self


class TieredPackageTier(Strict):
    tier_lower_bound: DecimalString = Field(ge=0)
    per_unit: Amount  # per package, as Orb documents


class TieredPackageConfig(Strict):
    package_size: Annotated[DecimalString, Field(gt=0)]
    tiers: list[TieredPackageTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> TieredPackageConfig:
        lowers = [t.tier_lower_bound for t in self.tiers]
        _check_lower_bounds(lowers)
        for bound in lowers:
            if bound % self.package_size:
                raise ValueError(f"tier_lower_bound {bound} is not a multiple of package_size "
                                 f"{self.package_size}")
        return self


class MinimumTier(Strict):
    tier_lower_bound: DecimalString = Field(ge=0)
    unit_amount: Amount
    minimum_amount: Amount


class TieredWithMinimumConfig(Strict):
    tiers: list[MinimumTier] = Field(min_length=1)
    hide_zero_amount_tiers: bool = False
    prorate: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> TieredWithMinimumConfig:
        _check_lower_bounds([t.tier_lower_bound for t in self.tiers])
        return self


class PackageWithAllocationConfig(Strict):
    allocation: Annotated[DecimalString, Field(ge=0)]
    package_amount: Amount
    package_size: Annotated[DecimalString, Field(gt=0)]


class UnitWithPercentConfig(Strict):
    percent: Annotated[DecimalString, Field(ge=0)]
    unit_amount: Amount


def _no_per_unit_maximum(value: object) -> object:
    if value is not None:
        raise ValueError(
            "per_unit_maximum caps each event's fee, which needs event-level rating; cap it in "
            "the metric instead, e.g. SELECT sum(least(properties.amount * 0.0125, 11)) FROM "
            "events, with a unit price of '1'")
    return value


NoPerUnitMaximum = Annotated[None, BeforeValidator(_no_per_unit_maximum)]
BasisPoints = Annotated[Decimal, BeforeValidator(decimal_string), Field(ge=0)]


class BpsConfig(Strict):
    bps: BasisPoints
    per_unit_maximum: NoPerUnitMaximum = None


class BulkBpsTier(Strict):
    maximum_amount: DecimalString | None = None
    bps: BasisPoints
    per_unit_maximum: NoPerUnitMaximum = None


class BulkBpsConfig(Strict):
    tiers: list[BulkBpsTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _maxima(self) -> BulkBpsConfig:
        _check_maxima([t.maximum_amount for t in self.tiers], "maximum_amount")
        return self


class TieredBpsTier(Strict):
    minimum_amount: DecimalString = Field(ge=0)
    maximum_amount: DecimalString | None = None
    bps: BasisPoints
    per_unit_maximum: NoPerUnitMaximum = None


class TieredBpsConfig(Strict):
    tiers: list[TieredBpsTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _contiguous(self) -> TieredBpsConfig:
        tiers = self.tiers
        if tiers[0].minimum_amount != 0:
            raise ValueError("the first tier must start at minimum_amount 0")
        for index, (lower, upper) in enumerate(zip(tiers, tiers[1:], strict=False)):
            if lower.maximum_amount != upper.minimum_amount:
                raise ValueError(f"tier {index + 1} must start where tier {index} ends")
        return self


class GroupedTier(Strict):
    tier_lower_bound: DecimalString = Field(ge=0)
    unit_amount: Amount


class GroupedTieredConfig(Strict):
    grouping_key: PropertyKey
    tiers: list[GroupedTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> GroupedTieredConfig:
        _check_lower_bounds([t.tier_lower_bound for t in self.tiers])
        return self


class GroupedAllocationConfig(Strict):
    grouping_key: PropertyKey
    allocation: Annotated[DecimalString, Field(ge=0)]
    overage_unit_rate: Amount


# ---- prices ----------------------------------------------------------------------------


CADENCE_MONTHS = {"monthly": 1, "quarterly": 3, "semi_annual": 6, "annual": 12}


class PriceBase(Strict):
    id: Identifier
    name: str
    cadence: Literal["monthly", "quarterly", "semi_annual", "annual"] = "monthly"
    billable_metric_id: Identifier | None = None
    fixed_price_quantity: Annotated[Decimal, Field(gt=0)] | None = None
    # Orb's default: fixed fees in advance, usage in arrears (usage can only be counted after).
    billed_in_advance: bool | None = None
    if TYPE_CHECKING:
        # Every price model declares it as its own Literal: the union's discriminator.
        model_type: str

    @model_validator(mode="after")
    def _usage_or_fixed(self) -> PriceBase:
        if (self.billable_metric_id is None) == (self.fixed_price_quantity is None):
            raise ValueError(
                "a price needs exactly one of billable_metric_id (usage price) "
                "or fixed_price_quantity (fixed fee)"
            )
        if self.fixed_price_quantity is not None and self.program().grouping:
            raise ValueError(f"a {self.model_type} price groups usage, so it cannot be a fixed fee")
        if self.billable_metric_id is not None and self.billed_in_advance:
            raise ValueError("a usage price is billed in arrears: usage is only known at the "
                             "end of its period")
        return self

    @property
    def in_advance(self) -> bool:
        return self.fixed_price_quantity is not None and self.billed_in_advance is not False

    @property
    def cadence_months(self) -> int:
        return CADENCE_MONTHS[self.cadence]

    def program(self) -> Program:
        raise NotImplementedError

    def grouping(self) -> tuple[str, ...]:
        """Event properties the usage is grouped by before pricing."""
        return self.program().grouping


class UnitPrice(PriceBase):
    model_type: Literal["unit"]
    unit_config: UnitConfig

    def program(self) -> Program:
        config = self.unit_config
        return Program("graduated", _flat(config.unit_amount), prorate=config.prorated)


class TieredPrice(PriceBase):
    model_type: Literal["tiered"]
    tiered_config: TieredConfig

    def program(self) -> Program:
        tiers = [ProgramTier(t.first_unit, t.last_unit, t.unit_amount)
                 for t in self.tiered_config.tiers]
        return Program("graduated", tiers, prorate=self.tiered_config.prorated)


class PackagePrice(PriceBase):
    model_type: Literal["package"]
    package_config: PackageConfig

    def program(self) -> Program:
        config = self.package_config
        return Program("graduated", _flat(config.package_amount),
                       package_size=config.package_size)


class MatrixPrice(PriceBase):
    model_type: Literal["matrix"]
    matrix_config: MatrixConfig

    def program(self) -> Program:
        config = self.matrix_config
        cells = [(config.cell(v), v.unit_amount) for v in config.matrix_values]
        return Program("graduated", _flat(config.default_unit_amount), cells=cells,
                       grouping=config.keys())


class MatrixWithAllocationPrice(PriceBase):
    model_type: Literal["matrix_with_allocation"]
    matrix_with_allocation_config: MatrixWithAllocationConfig

    def program(self) -> Program:
        config = self.matrix_with_allocation_config
        cells = [(config.cell(v), v.unit_amount) for v in config.matrix_values]
        return Program("graduated", _flat(config.default_unit_amount), cells=cells,
                       grouping=config.keys(), matrix_allocation=config.allocation)


class BulkPrice(PriceBase):
    model_type: Literal["bulk"]
    bulk_config: BulkConfig

    def program(self) -> Program:
        tiers = self.bulk_config.tiers
        return Program("volume", _volume_tiers([t.maximum_units for t in tiers],
                                               [t.unit_amount for t in tiers]))


class ThresholdTotalAmountPrice(PriceBase):
    model_type: Literal["threshold_total_amount"]
    threshold_total_amount_config: ThresholdTotalAmountConfig

    def program(self) -> Program:
        table = self.threshold_total_amount_config.consumption_table
        bounds = [row.threshold for row in table]
        tiers = [ProgramTier(None, bounds[0], flat_amount=Decimal(0))] + [
            ProgramTier(lo, hi, flat_amount=row.total_amount)
            for lo, hi, row in zip(bounds, _upper_bounds(bounds), table, strict=True)
        ]
        return Program("threshold", tiers, prorate=self.threshold_total_amount_config.prorate)


class TieredPackagePrice(PriceBase):
    model_type: Literal["tiered_package"]
    tiered_package_config: TieredPackageConfig

    def program(self) -> Program:
        config = self.tiered_package_config
        # Bounds are in units and multiples of the package size; the SQL counts packages.
        lowers = [t.tier_lower_bound / config.package_size for t in config.tiers]
        tiers = [ProgramTier(lo, hi, t.per_unit)
                 for lo, hi, t in zip(lowers, _upper_bounds(lowers), config.tiers, strict=True)]
        return Program("graduated", tiers, package_size=config.package_size)


class TieredWithMinimumPrice(PriceBase):
    model_type: Literal["tiered_with_minimum"]
    tiered_with_minimum_config: TieredWithMinimumConfig

    def program(self) -> Program:
        config = self.tiered_with_minimum_config
        lowers = [t.tier_lower_bound for t in config.tiers]
        tiers = [ProgramTier(lo, hi, t.unit_amount, minimum_amount=t.minimum_amount)
                 for lo, hi, t in zip(lowers, _upper_bounds(lowers), config.tiers, strict=True)]
        return Program("graduated", tiers, prorate=config.prorate)


class PackageWithAllocationPrice(PriceBase):
    model_type: Literal["package_with_allocation"]
    package_with_allocation_config: PackageWithAllocationConfig

    def program(self) -> Program:
        config = self.package_with_allocation_config
        return Program("graduated", _flat(config.package_amount),
                       package_size=config.package_size, allocation=config.allocation)


class UnitWithPercentPrice(PriceBase):
    model_type: Literal["unit_with_percent"]
    unit_with_percent_config: UnitWithPercentConfig

    def program(self) -> Program:
        config = self.unit_with_percent_config
        rate = _rate(config.unit_amount * config.percent * PERCENT, "unit_amount x percent")
        return Program("graduated", _flat(rate))


class BpsPrice(PriceBase):
    model_type: Literal["bps"]
    bps_config: BpsConfig

    def program(self) -> Program:
        return Program("graduated", _flat(_rate(self.bps_config.bps * BASIS_POINT, "bps")))


class BulkBpsPrice(PriceBase):
    model_type: Literal["bulk_bps"]
    bulk_bps_config: BulkBpsConfig

    def program(self) -> Program:
        tiers = self.bulk_bps_config.tiers
        return Program("volume", _volume_tiers([t.maximum_amount for t in tiers],
                                               [_rate(t.bps * BASIS_POINT, "bps") for t in tiers]))


class TieredBpsPrice(PriceBase):
    model_type: Literal["tiered_bps"]
    tiered_bps_config: TieredBpsConfig

    def program(self) -> Program:
        return Program("graduated", [
            ProgramTier(t.minimum_amount, t.maximum_amount, _rate(t.bps * BASIS_POINT, "bps"))
            for t in self.tiered_bps_config.tiers])


class GroupedTieredPrice(PriceBase):
    model_type: Literal["grouped_tiered"]
    grouped_tiered_config: GroupedTieredConfig

    def program(self) -> Program:
        config = self.grouped_tiered_config
        lowers = [t.tier_lower_bound for t in config.tiers]
        tiers = [ProgramTier(lo, hi, t.unit_amount)
                 for lo, hi, t in zip(lowers, _upper_bounds(lowers), config.tiers, strict=True)]
        return Program("graduated", tiers, grouping=(config.grouping_key,))


class UnitWithProrationPrice(PriceBase):
    model_type: Literal["unit_with_proration"]
    unit_with_proration_config: UnitConfig

    def program(self) -> Program:
        return Program("graduated", _flat(self.unit_with_proration_config.unit_amount),
                       prorate=True)


class GroupedAllocationPrice(PriceBase):
    model_type: Literal["grouped_allocation"]
    grouped_allocation_config: GroupedAllocationConfig

    def program(self) -> Program:
        config = self.grouped_allocation_config
        tiers = [ProgramTier(Decimal(0), config.allocation, Decimal(0)),
                 ProgramTier(config.allocation, None, config.overage_unit_rate)]
        if config.allocation == 0:
            tiers = tiers[1:]
        return Program("graduated", tiers, grouping=(config.grouping_key,))


PRICE_MODELS = (
    UnitPrice, TieredPrice, PackagePrice, MatrixPrice, MatrixWithAllocationPrice, BulkPrice,
    ThresholdTotalAmountPrice, TieredPackagePrice, TieredWithMinimumPrice,
    PackageWithAllocationPrice, UnitWithPercentPrice, BpsPrice, BulkBpsPrice, TieredBpsPrice,
    GroupedTieredPrice, UnitWithProrationPrice, GroupedAllocationPrice,
)
Price = Annotated[
    UnitPrice | TieredPrice | PackagePrice | MatrixPrice | MatrixWithAllocationPrice | BulkPrice
    | ThresholdTotalAmountPrice | TieredPackagePrice | TieredWithMinimumPrice
    | PackageWithAllocationPrice | UnitWithPercentPrice | BpsPrice | BulkBpsPrice
    | TieredBpsPrice | GroupedTieredPrice | UnitWithProrationPrice | GroupedAllocationPrice,
    Field(discriminator="model_type"),
]
