"""Price models in the shape of Orb's API, and the one normal form the pricing SQL runs.

Each model validates its ``<model_type>_config`` and compiles it to a ``Program``:
an ordered list of tiers plus a few switches. ``pricing_sql/sql/line_items.sql``
evaluates every program for every customer in one set-based pass:

- the usage of each group (one group unless the price is grouped or a matrix) is
  reduced by an allocation, then rounded up to whole packages, if the price has one;
  a filtered price reads only the group matching its filter, a ``max_group`` price
  rates only its largest group; a pooled allocation is drawn group by group, each
  group drawing at most ``allocation_per_group``; ``rate_from_group`` reads a group's
  rate from its first group value (an event property); allowance netting rates the
  ``consumption_value`` group and credits the ``allowance_value`` group (a cell of
  negative rate) for at most the consumption;
- ``graduated``: each unit is charged at the rate of the tier it falls in;
  ``volume``: every unit is charged at the rate of the tier the total falls in;
  ``threshold``: the flat amount of the tier the total falls in is charged;
  ``cumulative_volume``: every unit of a group at the rate of the tier the line's total,
  over all its groups, falls in;
- a tier's ``minimum_amount`` is the least the group pays once usage reaches it,
  ``group_maximum`` the most any group pays, ``prorated_group_minimum`` the least a
  group with usage pays, prorated by day (its usage is not);
- a composite price (``percent``, ``minimum_composite``) is charged on the rounded
  amounts of the plan's other prices on the same invoice (its ``components``), after
  they are priced: ``line_items.sql`` rates its ``composite_minimum`` like any amount
  (so it is prorated exactly when the price prorates) and then applies the composite;
- a matrix cell whose dimension values equal the group's (after the first
  ``cell_offset`` of them) overrides the rate, or, with no rate, tiers the group on the
  tiers of its own (the tiers marked with its ``cell``); ``value_rates`` make a group's
  rate the product of its values' rates;
- a spend discount (``cell_discounts``, or ``daily_allowance`` per first group value)
  credits a set of groups a fraction of their spend below and above a threshold, and a
  ``metered_minimum`` raises the groups of each first group value to the minimum unit
  amount times their quantity.

Tier bounds are ``(lower, upper]``: exclusive lower, inclusive upper, as Orb
documents for tiered prices; a null lower bound is minus infinity and a null
upper bound is infinity. See docs/pricing.md for each model's formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from billing.catalog.conversion import ConversionRate, ConversionRateConfig, converted
from billing.catalog.fields import DecimalString, Identifier, Strict, decimal_string
from billing.cycles import ONE_TIME, Cycle

RATE_PLACES = 12  # unit rates are DECIMAL(38, 12) in SQL
QUANTITY_PLACES = 9  # quantities and tier bounds are DECIMAL(38, 9)
BASIS_POINT = Decimal("0.0001")
PERCENT = Decimal("0.01")


# Each bounded to what its SQL column holds exactly, so a value the SQL would have to
# round is refused here, naming its field, rather than by Arrow with no field named.
_RATE = Field(ge=0, lt=Decimal(1).scaleb(38 - RATE_PLACES), decimal_places=RATE_PLACES)
_QUANTITY = Field(ge=0, lt=Decimal(1).scaleb(38 - QUANTITY_PLACES),
                  decimal_places=QUANTITY_PLACES)
Amount = Annotated[DecimalString, _RATE]
Quantity = Annotated[Decimal, _QUANTITY]  # Orb sends tier units as numbers
Bound = Annotated[DecimalString, _QUANTITY]
Size = Annotated[DecimalString, _QUANTITY, Field(gt=0)]
PropertyKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


@dataclass(frozen=True)
class ProgramTier:
    lower: Decimal | None
    upper: Decimal | None
    rate: Decimal = Decimal(0)
    flat_amount: Decimal | None = None
    minimum_amount: Decimal | None = None
    cell: tuple[str | None, ...] | None = None  # the matrix cell these tiers are for
    # the most one event pays in this tier (bps models): rated from per-event usage
    per_unit_maximum: Decimal | None = None


Cell = tuple[tuple[str | None, ...], Decimal | None]  # dimension values, rate (None: own tiers)


@dataclass(frozen=True)
class Program:
    scheme: Literal["graduated", "volume", "threshold", "cumulative_volume"]
    tiers: list[ProgramTier]
    cells: Sequence[Cell] = ()
    grouping: tuple[str, ...] = ()
    package_size: Decimal | None = None
    allocation: Decimal | None = None
    matrix_allocation: Decimal | None = None
    prorate: bool = False
    allocation_per_group: Decimal | None = None
    group_maximum: Decimal | None = None
    max_group: bool = False
    filter_values: tuple[str, ...] | None = None  # with grouping: the one group priced
    rate_from_group: bool = False
    composite: Literal["percent", "minimum"] | None = None
    composite_rate: Decimal | None = None
    composite_minimum: Decimal | None = None
    composite_maximum: Decimal | None = None
    consumption_value: str | None = None
    allowance_value: str | None = None
    prorated_group_minimum: Decimal | None = None  # with prorate: only the minimum prorates
    # leading group values that are not part of a cell (daily_credit_allowance's day)
    cell_offset: int = 0
    cell_discounts: Sequence[tuple[tuple[str | None, ...], SpendDiscount]] = ()
    daily_allowance: Decimal | None = None  # a spend discount per first group value
    metered_minimum: Decimal | None = None  # per unit, over the groups of a first group value
    value_rates: Sequence[ValueRate] = ()  # a group's rate, the product of its values' rates


@dataclass(frozen=True)
class SpendDiscount:
    """A discount on the spend S of a set of cells: ``below`` x min(S, threshold) +
    ``above`` x max(S - threshold, 0), as fractions of the spend."""

    index: int
    label: str
    threshold: Decimal
    below: Decimal
    above: Decimal


@dataclass(frozen=True)
class ValueRate:
    """The rate factor of one value of the group value at ``position`` (1-based)."""

    position: int
    value: str
    rate: Decimal


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


def _graduated_tiers(lowers: list[Decimal], rates: list[Decimal],
                     minimums: list[Decimal | None] | None = None) -> list[ProgramTier]:
    """Tiers from their lower bounds: each runs up to the next tier's bound."""
    return [ProgramTier(lo, hi, rate, minimum_amount=minimum) for lo, hi, rate, minimum in
            zip(lowers, _upper_bounds(lowers), rates, minimums or [None] * len(lowers),
                strict=True)]


def _package_bounds(lowers: list[Decimal], package_size: Decimal) -> list[Decimal]:
    """Unit bounds as package counts (the SQL counts packages); each bound must be a
    multiple of the package size."""
    for bound in lowers:
        if bound % package_size:
            raise ValueError(f"tier_lower_bound {bound} is not a multiple of package_size "
                             f"{package_size}")
    return [bound / package_size for bound in lowers]


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


# Orb's scaling_factor (a number in the SDK): "an optional multiplier applied to rated
# quantity before unit_amount", here folded into the rate, which must stay exact.
Factor = Annotated[DecimalString, Field(ge=0)]


def _scaled(rate: Decimal, factor: Decimal | None, what: str) -> Decimal:
    return rate if factor is None else _rate(rate * factor, f"{what} x scaling_factor")


class UnitConfig(Strict):
    unit_amount: Amount
    prorated: bool = False
    scaling_factor: Factor | None = None

    @model_validator(mode="after")
    def _scale(self) -> UnitConfig:
        self.rate()
        return self

    def rate(self) -> Decimal:
        return _scaled(self.unit_amount, self.scaling_factor, "unit_amount")


class PackageConfig(Strict):
    package_amount: Amount
    package_size: Annotated[Quantity, Field(gt=0)]


class MatrixValue(Strict):
    dimension_values: list[str | None] = Field(min_length=1)
    unit_amount: Amount
    scaling_factor: Factor | None = None


class MatrixConfig(Strict):
    dimensions: list[PropertyKey | None] = Field(min_length=1)
    default_unit_amount: Amount
    matrix_values: list[MatrixValue] = []
    scaling_factor: Factor | None = None  # the default rate's

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
        self.default_rate()
        self.cell_rates()
        return self

    def default_rate(self) -> Decimal:
        return _scaled(self.default_unit_amount, self.scaling_factor, "default_unit_amount")

    def cell_rates(self) -> list[Cell]:
        return [(self.cell(v), _scaled(v.unit_amount, v.scaling_factor,
                                       f"matrix_values[{index}].unit_amount"))
                for index, v in enumerate(self.matrix_values)]

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
    threshold: Bound
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
    tier_lower_bound: Bound
    per_unit: Amount  # per package, as Orb documents


class TieredPackageConfig(Strict):
    package_size: Size
    tiers: list[TieredPackageTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> TieredPackageConfig:
        lowers = [t.tier_lower_bound for t in self.tiers]
        _check_lower_bounds(lowers)
        _package_bounds(lowers, self.package_size)
        return self


class MinimumTier(Strict):
    tier_lower_bound: Bound
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
    allocation: Bound
    package_amount: Amount
    package_size: Size


class UnitWithPercentConfig(Strict):
    percent: Annotated[DecimalString, Field(ge=0)]
    unit_amount: Amount


def _no_per_unit_maximum(value: object) -> object:
    if value is not None:
        raise ValueError(
            "per_unit_maximum is not supported on tiered_bps: an event's volume can fall in "
            "two tiers, and Orb does not say which part of it a tier's cap applies to (its "
            "current API, the orb-billing SDK 4.90.0, has no tiered_bps model left to say "
            "it); use bulk_bps, or cap it in the metric, e.g. SELECT "
            "sum(least(properties.amount * 0.0125, 11)) FROM events, with a unit price of '1'")
    return value


NoPerUnitMaximum = Annotated[None, BeforeValidator(_no_per_unit_maximum)]
BasisPoints = Annotated[Decimal, BeforeValidator(decimal_string), Field(ge=0)]
# Orb: "the maximum amount to charge for any one event"
PerUnitMaximum = Annotated[Amount, Field(gt=0)]


class BpsConfig(Strict):
    bps: BasisPoints
    per_unit_maximum: PerUnitMaximum | None = None


class BulkBpsTier(Strict):
    maximum_amount: Bound | None = None
    bps: BasisPoints
    per_unit_maximum: PerUnitMaximum | None = None


class BulkBpsConfig(Strict):
    tiers: list[BulkBpsTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _maxima(self) -> BulkBpsConfig:
        _check_maxima([t.maximum_amount for t in self.tiers], "maximum_amount")
        return self


class TieredBpsTier(Strict):
    minimum_amount: Bound
    maximum_amount: Bound | None = None
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
    tier_lower_bound: Bound
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
    allocation: Bound
    overage_unit_rate: Amount


class LowerBoundTier(Strict):
    """``tier_lower_bound`` is exclusive, as in Orb's other tier_lower_bound models."""

    tier_lower_bound: Bound
    unit_amount: Amount


class TieredWithProrationConfig(Strict):
    tiers: list[LowerBoundTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> TieredWithProrationConfig:
        _check_lower_bounds([t.tier_lower_bound for t in self.tiers])
        return self


class BulkLowerBoundTier(Strict):
    tier_lower_bound: Bound | None = None
    unit_amount: Amount


def _bulk_lowers(tiers: list[BulkLowerBoundTier]) -> list[Decimal]:
    """Bulk tiers' lower bounds, the first one's 0 if it has none."""
    if any(t.tier_lower_bound is None for t in tiers[1:]):
        raise ValueError("only the first tier may have no tier_lower_bound")
    lowers = [t.tier_lower_bound or Decimal(0) for t in tiers]
    _check_lower_bounds(lowers)
    return lowers


class BulkWithProrationConfig(Strict):
    tiers: list[BulkLowerBoundTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> BulkWithProrationConfig:
        _bulk_lowers(self.tiers)
        return self


class PackageMinimumTier(Strict):
    tier_lower_bound: Bound
    per_unit: Amount  # per package, as Orb documents
    minimum_amount: Amount


class TieredPackageWithMinimumConfig(Strict):
    package_size: Size
    tiers: list[PackageMinimumTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> TieredPackageWithMinimumConfig:
        lowers = [t.tier_lower_bound for t in self.tiers]
        _check_lower_bounds(lowers)
        _package_bounds(lowers, self.package_size)
        return self


class PackageTier(Strict):
    tier_lower_bound: Bound
    per_unit: Amount  # per package


class GroupedTieredPackageConfig(Strict):
    grouping_key: PropertyKey
    package_size: Size
    tiers: list[PackageTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> GroupedTieredPackageConfig:
        lowers = [t.tier_lower_bound for t in self.tiers]
        _check_lower_bounds(lowers)
        _package_bounds(lowers, self.package_size)
        return self


class DisplayNameAmount(Strict):
    dimension_value: str
    display_name: str
    unit_amount: Amount


class MatrixWithDisplayNameConfig(Strict):
    dimension: PropertyKey
    unit_amounts: list[DisplayNameAmount] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> MatrixWithDisplayNameConfig:
        values = [u.dimension_value for u in self.unit_amounts]
        if len(set(values)) != len(values):
            raise ValueError("unit_amounts repeat a dimension_value")
        return self


class ScalingFactor(Strict):
    first_dimension_value: str
    second_dimension_value: str | None = None
    scaling_factor: Annotated[DecimalString, Field(ge=0)]


class ScalingMatrix(Strict):
    """The scalable matrices' dimensions and the scaling factor of each listed cell."""

    first_dimension: PropertyKey
    second_dimension: PropertyKey | None = None
    matrix_scaling_factors: list[ScalingFactor]

    @model_validator(mode="after")
    def _cells(self) -> ScalingMatrix:
        seen = set()
        for index, factor in enumerate(self.matrix_scaling_factors):
            if (factor.second_dimension_value is None) != (self.second_dimension is None):
                raise ValueError(
                    f"matrix_scaling_factors[{index}]: give a second_dimension_value exactly "
                    "when the matrix has a second_dimension (a factor for every second value "
                    "is not supported: list each cell)")
            cell = self.cell(factor)
            if cell in seen:
                raise ValueError(f"matrix_scaling_factors[{index}] repeats the cell {cell}")
            seen.add(cell)
        return self

    def keys(self) -> tuple[str, ...]:
        return (self.first_dimension,) + ((self.second_dimension,) if self.second_dimension
                                          else ())

    def cell(self, factor: ScalingFactor) -> tuple[str, ...]:
        return (factor.first_dimension_value,) + (
            (factor.second_dimension_value,) if factor.second_dimension_value is not None else ())


class ScalableMatrixWithUnitPricingConfig(ScalingMatrix):
    unit_price: Amount
    grouping_key: PropertyKey | None = None
    prorate: bool = False


class ScalableMatrixWithTieredPricingConfig(ScalingMatrix):
    tiers: list[LowerBoundTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _tiers(self) -> ScalableMatrixWithTieredPricingConfig:
        self.program_tiers()
        return self

    def program_tiers(self) -> tuple[list[ProgramTier], list[Cell]]:
        """The tiers as given for a cell with no factor, and each listed cell's own, its
        rates scaled by its factor."""
        lowers = [t.tier_lower_bound for t in self.tiers]
        _check_lower_bounds(lowers)
        rates = [t.unit_amount for t in self.tiers]
        tiers = _graduated_tiers(lowers, rates)
        cells: list[Cell] = []
        for index, factor in enumerate(self.matrix_scaling_factors):
            cell = self.cell(factor)
            scaled = [_rate(rate * factor.scaling_factor,
                            f"matrix_scaling_factors[{index}]: unit_amount x scaling_factor")
                      for rate in rates]
            tiers += [ProgramTier(t.lower, t.upper, t.rate, cell=cell)
                      for t in _graduated_tiers(lowers, scaled)]
            cells.append((cell, None))
        return tiers, cells


class GroupedWithMinMaxThresholdsConfig(Strict):
    grouping_key: PropertyKey
    per_unit_rate: Amount
    minimum_charge: Amount
    maximum_charge: Amount

    @model_validator(mode="after")
    def _ordered(self) -> GroupedWithMinMaxThresholdsConfig:
        if self.maximum_charge < self.minimum_charge:
            raise ValueError("maximum_charge must be at least minimum_charge")
        return self


class MaxGroupTieredPackageConfig(Strict):
    grouping_key: PropertyKey
    package_size: Size
    tiers: list[LowerBoundTier] = Field(min_length=1)  # unit_amount per unit

    @model_validator(mode="after")
    def _bounds(self) -> MaxGroupTieredPackageConfig:
        lowers = [t.tier_lower_bound for t in self.tiers]
        _check_lower_bounds(lowers)
        _package_bounds(lowers, self.package_size)
        return self


class CumulativeGroupedAllocationConfig(Strict):
    grouping_key: PropertyKey
    cumulative_allocation: Bound
    group_allocation: Bound
    unit_amount: Amount


class PropertyFilter(Strict):
    property_key: PropertyKey
    property_value: str


class BulkWithFiltersConfig(Strict):
    filters: list[PropertyFilter] = Field(min_length=1)
    tiers: list[BulkLowerBoundTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> BulkWithFiltersConfig:
        keys = [f.property_key for f in self.filters]
        if len(set(keys)) != len(keys):
            raise ValueError("filters repeat a property_key; all filters must match, so a "
                             "property can only have one value")
        _bulk_lowers(self.tiers)
        return self


class EventOutputConfig(Strict):
    unit_rating_key: PropertyKey
    default_unit_rate: Amount | None = None
    grouping_key: PropertyKey | None = None

    @model_validator(mode="after")
    def _keys(self) -> EventOutputConfig:
        if self.grouping_key == self.unit_rating_key:
            raise ValueError("grouping_key must differ from unit_rating_key (usage is grouped "
                             "by its unit rate anyway)")
        return self


def _cell_tiers(default_rate: Decimal, tiers: list[tuple[tuple[str, ...], Decimal, Decimal]]
                ) -> tuple[list[ProgramTier], list[Cell]]:
    """Default tiers (one flat rate) and each cell's own graduated tiers, from
    ``(cell, tier_lower_bound, unit_amount)`` rows; cells in order of first mention."""
    by_cell: dict[tuple[str, ...], list[tuple[Decimal, Decimal]]] = {}
    for cell, lower, rate in tiers:
        by_cell.setdefault(cell, []).append((lower, rate))
    program_tiers = _flat(default_rate)
    for cell, rows in by_cell.items():
        try:
            _check_lower_bounds([lower for lower, _ in rows])
        except ValueError as exc:
            raise ValueError(f"the tiers of {list(cell)}: {exc}") from None
        program_tiers += [
            ProgramTier(tier.lower, tier.upper, tier.rate, cell=cell)
            for tier in _graduated_tiers([lower for lower, _ in rows], [r for _, r in rows])]
    return program_tiers, [(cell, None) for cell in by_cell]


class CellTier(Strict):
    dimension_value: str
    tier_lower_bound: Bound
    unit_amount: Amount


class GroupedTieredMatrixConfig(Strict):
    dimension: PropertyKey
    default_unit_amount: Amount
    tiers: list[CellTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _tiers(self) -> GroupedTieredMatrixConfig:
        self.program_tiers()
        return self

    def program_tiers(self) -> tuple[list[ProgramTier], list[Cell]]:
        return _cell_tiers(self.default_unit_amount, [
            ((t.dimension_value,), t.tier_lower_bound, t.unit_amount) for t in self.tiers])


class MatrixCellTier(Strict):
    dimension_values: list[str] = Field(min_length=1, max_length=2)
    tier_lower_bound: Bound
    unit_amount: Amount


class TieredMatrixWithAllocationConfig(Strict):
    dimensions: list[PropertyKey] = Field(min_length=1, max_length=2)
    default_unit_amount: Amount
    allocation: Bound
    tiers: list[MatrixCellTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _tiers(self) -> TieredMatrixWithAllocationConfig:
        for index, tier in enumerate(self.tiers):
            if len(tier.dimension_values) != len(self.dimensions):
                raise ValueError(f"tiers[{index}]: dimension_values needs one value per "
                                 f"dimension {self.dimensions}")
        self.program_tiers()
        return self

    def program_tiers(self) -> tuple[list[ProgramTier], list[Cell]]:
        return _cell_tiers(self.default_unit_amount, [
            (tuple(t.dimension_values), t.tier_lower_bound, t.unit_amount) for t in self.tiers])


class CumulativeDimensionValue(Strict):
    grouping_key: str  # a value of the group property, as Orb names it
    tier_lower_bound: Bound
    unit_amount: Amount


class CumulativeGroupedBulkConfig(Strict):
    group: PropertyKey
    dimension_values: list[CumulativeDimensionValue] = Field(min_length=1)

    @model_validator(mode="after")
    def _tiers(self) -> CumulativeGroupedBulkConfig:
        bounds: dict[str, list[Decimal]] = {}
        for value in self.dimension_values:
            bounds.setdefault(value.grouping_key, []).append(value.tier_lower_bound)
        if len({tuple(b) for b in bounds.values()}) > 1:
            raise ValueError("every grouping_key value needs the same tier_lower_bound values "
                             "(each tier has a rate for every value)")
        self.program_tiers()
        return self

    def program_tiers(self) -> tuple[list[ProgramTier], list[Cell]]:
        # a value with no rates is not charged
        return _cell_tiers(Decimal(0), [((v.grouping_key,), v.tier_lower_bound, v.unit_amount)
                                        for v in self.dimension_values])


class GroupedWithProratedMinimumConfig(Strict):
    grouping_key: PropertyKey
    minimum: Amount
    unit_rate: Amount


class MeteredAllowanceConfig(Strict):
    grouping_key: PropertyKey
    consumption_grouping_value: str
    allowance_grouping_value: str
    unit_amount: Amount
    consumption_display_name: str | None = None
    allowance_display_name: str | None = None

    @model_validator(mode="after")
    def _distinct(self) -> MeteredAllowanceConfig:
        if self.consumption_grouping_value == self.allowance_grouping_value:
            raise ValueError("consumption_grouping_value and allowance_grouping_value must "
                             "differ")
        return self


def _fraction(value: Decimal) -> Decimal:
    if not 0 <= value <= 1:
        raise ValueError(f"{value} is not a fraction from 0 to 1 (0.1 is 10%, as in Orb's "
                         "percentage discounts)")
    return value


Fraction = Annotated[DecimalString, AfterValidator(_fraction),
                     Field(decimal_places=RATE_PLACES)]


class ThresholdMatrixValue(Strict):
    first_dimension_value: str
    second_dimension_value: str | None = None
    unit_amount: Amount


class ThresholdDiscountGroup(Strict):
    cell_coordinates: str = Field(min_length=1)  # "first,second;first,second"
    threshold_amount: Bound
    below_threshold_discount_percentage: Fraction
    above_threshold_discount_percentage: Fraction
    description: str | None = None


class MatrixWithThresholdDiscountsConfig(Strict):
    first_dimension: PropertyKey
    second_dimension: PropertyKey | None = None
    default_unit_amount: Amount
    matrix_values: list[ThresholdMatrixValue]
    threshold_discount_groups: list[ThresholdDiscountGroup] | None = None

    @model_validator(mode="after")
    def _cells(self) -> MatrixWithThresholdDiscountsConfig:
        self.program_cells()
        return self

    def keys(self) -> tuple[str, ...]:
        return (self.first_dimension,) + ((self.second_dimension,) if self.second_dimension
                                          else ())

    def program_cells(self) -> tuple[list[Cell], list[tuple[tuple[str | None, ...],
                                                             SpendDiscount]]]:
        """Each cell's rate, and the discount group of each cell in one: a cell of a
        group that ``matrix_values`` does not list is charged the default rate."""
        width = len(self.keys())
        rates: dict[tuple[str | None, ...], Decimal] = {}
        for index, value in enumerate(self.matrix_values):
            if (value.second_dimension_value is None) != (width == 1):
                raise ValueError(f"matrix_values[{index}]: give a second_dimension_value "
                                 "exactly when the matrix has a second_dimension")
            cell = (value.first_dimension_value,) + (
                (value.second_dimension_value,) if width == 2 else ())
            if cell in rates:
                raise ValueError(f"matrix_values[{index}] repeats the cell {list(cell)}")
            rates[cell] = value.unit_amount
        members: list[tuple[tuple[str | None, ...], SpendDiscount]] = []
        for index, group in enumerate(self.threshold_discount_groups or []):
            where = f"threshold_discount_groups[{index}].cell_coordinates"
            discount = SpendDiscount(index, group.description or group.cell_coordinates,
                                     group.threshold_amount,
                                     group.below_threshold_discount_percentage,
                                     group.above_threshold_discount_percentage)
            for coordinate in group.cell_coordinates.split(";"):
                cell = tuple(value.strip() for value in coordinate.split(","))
                if len(cell) != width:
                    raise ValueError(f"{where}: {coordinate!r} needs {width} value(s), "
                                     "one per dimension, separated by ','")
                if any(cell == member for member, _ in members):
                    raise ValueError(f"{where}: the cell {coordinate!r} is in two discount "
                                     "groups")
                rate = rates.get(cell, self.default_unit_amount)
                for fraction in (discount.below, discount.above):
                    _rate(rate * fraction, f"{where}: {coordinate!r}: its unit amount x a "
                                           "discount percentage")
                members.append((cell, discount))
        unlisted = [(cell, self.default_unit_amount) for cell, _ in members if cell not in rates]
        return [*rates.items(), *unlisted], members


class DailyCreditAllowanceConfig(MatrixConfig):
    daily_allowance: Bound
    event_day_property: PropertyKey

    @model_validator(mode="after")
    def _day(self) -> DailyCreditAllowanceConfig:
        if len(self.keys()) > 2:
            raise ValueError("a daily credit allowance has one or two dimensions")
        if self.event_day_property in self.keys():
            raise ValueError("event_day_property must differ from the dimensions")
        if self.scaling_factor is not None or any(v.scaling_factor is not None
                                                  for v in self.matrix_values):
            raise ValueError("a daily credit allowance takes no scaling_factor (Orb's has none)")
        return self


class PricingValue(Strict):
    pricing_value: str
    unit_amount: Amount


class ScalingValue(Strict):
    scaling_factor: Annotated[DecimalString, Field(ge=0, decimal_places=RATE_PLACES)]
    scaling_value: str


# A metered minimum's rate is a value's rate times a factor, multiplied in SQL as
# DECIMAL(38, 24): exact when the product has at most 12 decimal places and is below 10^14.
_SCALED_RATE_LIMIT = Decimal(1).scaleb(38 - 2 * RATE_PLACES)


class GroupedWithMeteredMinimumConfig(Strict):
    grouping_key: PropertyKey
    minimum_unit_amount: Amount
    pricing_key: PropertyKey
    scaling_factors: list[ScalingValue]
    scaling_key: PropertyKey
    unit_amounts: list[PricingValue]

    @model_validator(mode="after")
    def _values(self) -> GroupedWithMeteredMinimumConfig:
        if len({self.grouping_key, self.pricing_key, self.scaling_key}) < 3:
            raise ValueError("grouping_key, pricing_key and scaling_key must differ")
        for name, values in (("unit_amounts", [v.pricing_value for v in self.unit_amounts]),
                             ("scaling_factors", [v.scaling_value for v in self.scaling_factors])):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} repeat a value")
        rates = [self.minimum_unit_amount, *(v.unit_amount for v in self.unit_amounts)]
        factors = [("a unit amount", Decimal(1))] + [
            (f"scaling_factors[{index}]: a unit amount x scaling_factor", v.scaling_factor)
            for index, v in enumerate(self.scaling_factors)]
        for what, factor in factors:  # an unlisted scaling value scales by 1
            for rate in rates:
                scaled = _rate(rate * factor, what)
                if scaled >= _SCALED_RATE_LIMIT:
                    raise ValueError(f"{what} is {scaled}, more than this engine rates (below "
                                     f"{_SCALED_RATE_LIMIT:,})")
        return self


class PercentConfig(Strict):
    percent: Annotated[DecimalString, Field(gt=0, le=1)]  # a fraction, as Orb's SDK says
    minimum_amount: Amount | None = None
    maximum_amount: Amount | None = None
    prorated: bool = False  # the minimum only; never the percent nor the maximum

    @model_validator(mode="after")
    def _bounds(self) -> PercentConfig:
        _rate(self.percent, "percent")
        if (self.minimum_amount is not None and self.maximum_amount is not None
                and self.maximum_amount < self.minimum_amount):
            raise ValueError("maximum_amount must be at least minimum_amount")
        return self


class MinimumCompositeConfig(Strict):
    minimum_amount: Amount
    prorated: bool = False


class CompositeFilter(Strict):
    """Orb's ``composite_price_filters``: which of the plan's prices a composite is on."""

    field: Literal["price_id", "price_type"]
    operator: Literal["includes", "excludes"]
    values: list[str] = Field(min_length=1)

    @field_validator("field", mode="before")
    @classmethod
    def _known(cls, value: object) -> object:
        reasons = {"item_id": "this catalog has no items",
                   "pricing_unit_id": "this catalog has no custom pricing units",
                   "currency": "a plan has one currency, so it would select all or none"}
        if value in reasons:
            raise ValueError(f"a composite price cannot filter on {value}: {reasons[value]}; "
                             "filter on price_id or price_type")
        return value


# ---- prices ----------------------------------------------------------------------------


CADENCE_MONTHS = {"monthly": 1, "quarterly": 3, "semi_annual": 6, "annual": 12}


class CycleConfiguration(Strict):
    """Orb's ``billing_cycle_configuration`` / ``invoicing_cycle_configuration``."""

    duration: Annotated[int, Field(ge=1, le=3660)]
    duration_unit: Literal["day", "month"]


def _cycle_of(config: CycleConfiguration) -> Cycle:
    return Cycle(config.duration_unit, config.duration)


class DimensionalPriceConfiguration(Strict):
    """Orb's: the price rates only its group's metric's events whose dimensions (the
    group's event properties, in order) equal ``dimension_values``."""

    dimension_values: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    dimensional_price_group_id: Identifier | None = None
    external_dimensional_price_group_id: Identifier | None = None

    @model_validator(mode="after")
    def _one_group(self) -> DimensionalPriceConfiguration:
        if (self.dimensional_price_group_id is None) == (
                self.external_dimensional_price_group_id is None):
            raise ValueError("give exactly one of dimensional_price_group_id or "
                             "external_dimensional_price_group_id")
        return self

    @property
    def group_ref(self) -> str:
        """The group as named: ``id`` or ``external:<external id>``."""
        if self.dimensional_price_group_id is not None:
            return self.dimensional_price_group_id
        return f"external:{self.external_dimensional_price_group_id}"


class PriceBase(Strict):
    id: Identifier
    name: str
    cadence: Literal["one_time", "monthly", "quarterly", "semi_annual", "annual",
                     "custom"] = "monthly"
    # Orb's: the cycle of a custom cadence, N days or N months (billing/cycles.py)
    billing_cycle_configuration: CycleConfiguration | None = None
    # Orb's: invoices within each billing cycle; only one per cycle is supported
    invoicing_cycle_configuration: CycleConfiguration | None = None
    dimensional_price_configuration: DimensionalPriceConfiguration | None = None
    billable_metric_id: Identifier | None = None
    fixed_price_quantity: Annotated[Quantity, Field(gt=0)] | None = None
    # Orb's default: fixed fees in advance, usage in arrears (usage can only be counted after).
    billed_in_advance: bool | None = None
    # Orb's price filter: a condition on the metric's events, in the metric's SQL and under
    # its rules (pricing_sql/metrics.py checks it), e.g. ``properties.region = 'us'``.
    filter: Annotated[str, Field(min_length=1)] | None = None
    # Orb's: lines of prices with the same key are one section of the invoice
    invoice_grouping_key: Annotated[str, Field(min_length=1)] | None = None
    # Orb's custom pricing units: the price's own unit (credits), and its value in the
    # plan's currency (billing/catalog/conversion.py)
    currency: Identifier | None = None
    conversion_rate: ConversionRate | None = None
    conversion_rate_config: ConversionRateConfig | None = None
    if TYPE_CHECKING:
        # Every price model declares it as its own Literal: the union's discriminator.
        model_type: str
    COMPOSITE: ClassVar[bool] = False

    @model_validator(mode="after")
    def _cycle(self) -> PriceBase:
        given = self.billing_cycle_configuration
        if self.cadence == "custom" and given is None:
            raise ValueError("a custom cadence needs billing_cycle_configuration "
                             "{duration, duration_unit}")
        if self.cadence == "one_time" and given is not None:
            raise ValueError("a one_time price is billed once: it takes no "
                             "billing_cycle_configuration")
        if self.cadence in CADENCE_MONTHS and given is not None and (
                given.duration_unit, given.duration) != ("month", CADENCE_MONTHS[self.cadence]):
            raise ValueError(f"billing_cycle_configuration {given.duration} "
                             f"{given.duration_unit}(s) is not the {self.cadence} cadence; "
                             "use cadence custom for a cycle of its own")
        if self.cadence == "one_time" and self.billable_metric_id is not None:
            raise ValueError("a one_time price is a fixed fee: usage is counted over a "
                             "billing period, and a one-time charge has none")
        invoicing = self.invoicing_cycle_configuration
        if invoicing is not None and self.cycle != _cycle_of(invoicing):
            raise ValueError("invoicing_cycle_configuration other than the billing cycle is "
                             "not supported: each billing cycle is invoiced once, at its "
                             "start (in advance) or end (in arrears)")
        return self

    @model_validator(mode="after")
    def _dimensional(self) -> PriceBase:
        if self.dimensional_price_configuration is not None and self.billable_metric_id is None:
            raise ValueError("a dimensional_price_configuration selects a usage price's "
                             "events: a fixed fee has none")
        return self

    @model_validator(mode="after")
    def _usage_or_fixed(self) -> PriceBase:
        if self.COMPOSITE:
            if (self.billable_metric_id, self.fixed_price_quantity, self.billed_in_advance,
                    self.filter, self.conversion) != (None, None, None, None, None):
                raise ValueError(f"a {self.model_type} price is charged on the plan's other "
                                 "prices: it takes no billable_metric_id, fixed_price_quantity, "
                                 "billed_in_advance, filter or conversion rate")
            return self
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
        if self.filter is not None and self.billable_metric_id is None:
            raise ValueError("a filter selects a usage price's events: a fixed fee has none")
        if self.fixed_price_quantity is not None and any(
                tier.per_unit_maximum is not None for tier in self.program().tiers):
            raise ValueError("per_unit_maximum caps each event's fee: a fixed fee has no events")
        self.invoice_program()  # a conversion that cannot be exact is refused here
        return self

    @property
    def conversion(self) -> Decimal | None:
        """Plan currency per unit of the price's own ``currency``, if it has one."""
        config = self.conversion_rate_config
        rate = config.unit_config.unit_amount if config and config.unit_config else None
        if config is not None and rate is None:
            raise ValueError("conversion_rate_config of type 'unit' needs unit_config")
        if rate is not None and self.conversion_rate is not None \
                and rate != self.conversion_rate:
            raise ValueError(f"conversion_rate {self.conversion_rate} and "
                             f"conversion_rate_config's {rate} differ")
        return self.conversion_rate if self.conversion_rate is not None else rate

    def invoice_program(self) -> Program:
        """``program()`` in the plan's currency: what rating runs."""
        rate = self.conversion
        return self.program() if rate is None else converted(self.program(), rate)

    @property
    def usage_metric_id(self) -> str | None:
        """The usage this price is rated on: its metric's, or with a filter or dimension
        values its own, keyed ``<metric id> WHERE <filter> IN <group> ('us')`` in the
        usage table."""
        if self.billable_metric_id is None:
            return None
        key = self.billable_metric_id
        if self.filter is not None:
            key += f" WHERE {self.filter.strip()}"
        if (dimensional := self.dimensional_price_configuration) is not None:
            values = ", ".join(repr(value) for value in dimensional.dimension_values)
            key += f" IN {dimensional.group_ref} ({values})"
        return key

    @property
    def in_advance(self) -> bool:
        return self.fixed_price_quantity is not None and self.billed_in_advance is not False

    @property
    def cycle(self) -> Cycle:
        """The cycle the price is billed on: its cadence's, or its own."""
        if self.cadence == "one_time":
            return ONE_TIME
        if self.billing_cycle_configuration is not None:
            return _cycle_of(self.billing_cycle_configuration)
        return Cycle("month", CADENCE_MONTHS[self.cadence])

    @property
    def cadence_months(self) -> int:
        """Months per cycle, what revenue divides by to make a month's worth; a day cycle
        and a one-time fee count as one month (docs/pricing.md#billing-cycles)."""
        return self.cycle.duration if self.cycle.unit == "month" else 1

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
        return Program("graduated", _flat(config.rate()), prorate=config.prorated)


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
        return Program("graduated", _flat(config.default_rate()), cells=config.cell_rates(),
                       grouping=config.keys())


class MatrixWithAllocationPrice(PriceBase):
    model_type: Literal["matrix_with_allocation"]
    matrix_with_allocation_config: MatrixWithAllocationConfig

    def program(self) -> Program:
        config = self.matrix_with_allocation_config
        return Program("graduated", _flat(config.default_rate()), cells=config.cell_rates(),
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
        lowers = _package_bounds([t.tier_lower_bound for t in config.tiers], config.package_size)
        return Program("graduated", _graduated_tiers(lowers, [t.per_unit for t in config.tiers]),
                       package_size=config.package_size)


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
        config = self.bps_config
        return Program("graduated", [ProgramTier(Decimal(0), None,
                                                 _rate(config.bps * BASIS_POINT, "bps"),
                                                 per_unit_maximum=config.per_unit_maximum)])


class BulkBpsPrice(PriceBase):
    model_type: Literal["bulk_bps"]
    bulk_bps_config: BulkBpsConfig

    def program(self) -> Program:
        tiers = self.bulk_bps_config.tiers
        volume = _volume_tiers([t.maximum_amount for t in tiers],
                               [_rate(t.bps * BASIS_POINT, "bps") for t in tiers])
        return Program("volume", [replace(tier, per_unit_maximum=t.per_unit_maximum)
                                  for tier, t in zip(volume, tiers, strict=True)])


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
        return Program("graduated", _flat(self.unit_with_proration_config.rate()),
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


class TieredWithProrationPrice(PriceBase):
    model_type: Literal["tiered_with_proration"]
    tiered_with_proration_config: TieredWithProrationConfig

    def program(self) -> Program:
        tiers = self.tiered_with_proration_config.tiers
        return Program("graduated", _graduated_tiers([t.tier_lower_bound for t in tiers],
                                                     [t.unit_amount for t in tiers]),
                       prorate=True)


class BulkWithProrationPrice(PriceBase):
    model_type: Literal["bulk_with_proration"]
    bulk_with_proration_config: BulkWithProrationConfig

    def program(self) -> Program:
        config = self.bulk_with_proration_config
        # each tier up to the next one's (exclusive) lower bound
        return Program("volume", _volume_tiers([*_bulk_lowers(config.tiers)[1:], None],
                                               [t.unit_amount for t in config.tiers]),
                       prorate=True)


class TieredPackageWithMinimumPrice(PriceBase):
    model_type: Literal["tiered_package_with_minimum"]
    tiered_package_with_minimum_config: TieredPackageWithMinimumConfig

    def program(self) -> Program:
        config = self.tiered_package_with_minimum_config
        lowers = _package_bounds([t.tier_lower_bound for t in config.tiers], config.package_size)
        return Program("graduated", _graduated_tiers(
            lowers, [t.per_unit for t in config.tiers],
            [t.minimum_amount for t in config.tiers]), package_size=config.package_size)


class GroupedTieredPackagePrice(PriceBase):
    model_type: Literal["grouped_tiered_package"]
    grouped_tiered_package_config: GroupedTieredPackageConfig

    def program(self) -> Program:
        config = self.grouped_tiered_package_config
        lowers = _package_bounds([t.tier_lower_bound for t in config.tiers], config.package_size)
        return Program("graduated", _graduated_tiers(lowers, [t.per_unit for t in config.tiers]),
                       package_size=config.package_size, grouping=(config.grouping_key,))


class MatrixWithDisplayNamePrice(PriceBase):
    model_type: Literal["matrix_with_display_name"]
    matrix_with_display_name_config: MatrixWithDisplayNameConfig

    def program(self) -> Program:
        config = self.matrix_with_display_name_config
        # A value with no unit amount is not priced (there is no default to price it at).
        cells = [((u.dimension_value,), u.unit_amount) for u in config.unit_amounts]
        return Program("graduated", _flat(Decimal(0)), cells=cells,
                       grouping=(config.dimension,))


class ScalableMatrixWithUnitPricingPrice(PriceBase):
    model_type: Literal["scalable_matrix_with_unit_pricing"]
    scalable_matrix_with_unit_pricing_config: ScalableMatrixWithUnitPricingConfig

    def program(self) -> Program:
        config = self.scalable_matrix_with_unit_pricing_config
        # q x scaling_factor x unit_price per cell; a cell with no factor scales by 1
        cells = [(config.cell(f), _rate(config.unit_price * f.scaling_factor,
                                        "unit_price x scaling_factor"))
                 for f in config.matrix_scaling_factors]
        return Program("graduated", _flat(config.unit_price), cells=cells,
                       grouping=config.keys(), prorate=config.prorate)


class GroupedWithMinMaxThresholdsPrice(PriceBase):
    model_type: Literal["grouped_with_min_max_thresholds"]
    grouped_with_min_max_thresholds_config: GroupedWithMinMaxThresholdsConfig

    def program(self) -> Program:
        config = self.grouped_with_min_max_thresholds_config
        return Program("graduated", [ProgramTier(Decimal(0), None, config.per_unit_rate,
                                                 minimum_amount=config.minimum_charge)],
                       grouping=(config.grouping_key,), group_maximum=config.maximum_charge)


class MaxGroupTieredPackagePrice(PriceBase):
    model_type: Literal["max_group_tiered_package"]
    max_group_tiered_package_config: MaxGroupTieredPackageConfig

    def program(self) -> Program:
        config = self.max_group_tiered_package_config
        lowers = _package_bounds([t.tier_lower_bound for t in config.tiers], config.package_size)
        # the SQL counts packages: a package costs package_size units at the unit amount
        rates = [_rate(t.unit_amount * config.package_size, "unit_amount x package_size")
                 for t in config.tiers]
        return Program("graduated", _graduated_tiers(lowers, rates),
                       package_size=config.package_size, grouping=(config.grouping_key,),
                       max_group=True)


class CumulativeGroupedAllocationPrice(PriceBase):
    model_type: Literal["cumulative_grouped_allocation"]
    cumulative_grouped_allocation_config: CumulativeGroupedAllocationConfig

    def program(self) -> Program:
        config = self.cumulative_grouped_allocation_config
        return Program("graduated", _flat(config.unit_amount), grouping=(config.grouping_key,),
                       matrix_allocation=config.cumulative_allocation,
                       allocation_per_group=config.group_allocation)


class BulkWithFiltersPrice(PriceBase):
    model_type: Literal["bulk_with_filters"]
    bulk_with_filters_config: BulkWithFiltersConfig

    def program(self) -> Program:
        config = self.bulk_with_filters_config
        return Program("volume", _volume_tiers([*_bulk_lowers(config.tiers)[1:], None],
                                               [t.unit_amount for t in config.tiers]),
                       grouping=tuple(f.property_key for f in config.filters),
                       filter_values=tuple(f.property_value for f in config.filters))


class EventOutputPrice(PriceBase):
    model_type: Literal["event_output"]
    event_output_config: EventOutputConfig

    def program(self) -> Program:
        config = self.event_output_config
        keys = (config.unit_rating_key,) + ((config.grouping_key,) if config.grouping_key
                                            else ())
        # without a default, usage with no usable rate is not charged, as Orb ignores it
        return Program("graduated", _flat(config.default_unit_rate or Decimal(0)),
                       grouping=keys, rate_from_group=True)


class GroupedTieredMatrixPrice(PriceBase):
    model_type: Literal["grouped_tiered_matrix"]
    grouped_tiered_matrix_config: GroupedTieredMatrixConfig

    def program(self) -> Program:
        config = self.grouped_tiered_matrix_config
        tiers, cells = config.program_tiers()
        return Program("graduated", tiers, cells=cells, grouping=(config.dimension,))


class TieredMatrixWithAllocationPrice(PriceBase):
    model_type: Literal["tiered_matrix_with_allocation"]
    tiered_matrix_with_allocation_config: TieredMatrixWithAllocationConfig

    def program(self) -> Program:
        config = self.tiered_matrix_with_allocation_config
        tiers, cells = config.program_tiers()
        return Program("graduated", tiers, cells=cells, grouping=tuple(config.dimensions),
                       matrix_allocation=config.allocation)


class CumulativeGroupedBulkPrice(PriceBase):
    model_type: Literal["cumulative_grouped_bulk"]
    cumulative_grouped_bulk_config: CumulativeGroupedBulkConfig

    def program(self) -> Program:
        config = self.cumulative_grouped_bulk_config
        tiers, cells = config.program_tiers()
        return Program("cumulative_volume", tiers, cells=cells, grouping=(config.group,))


class GroupedWithProratedMinimumPrice(PriceBase):
    model_type: Literal["grouped_with_prorated_minimum"]
    grouped_with_prorated_minimum_config: GroupedWithProratedMinimumConfig

    def program(self) -> Program:
        config = self.grouped_with_prorated_minimum_config
        return Program("graduated", _flat(config.unit_rate), grouping=(config.grouping_key,),
                       prorate=True, prorated_group_minimum=config.minimum)


class MeteredAllowancePrice(PriceBase):
    model_type: Literal["metered_allowance"]
    metered_allowance_config: MeteredAllowanceConfig

    def program(self) -> Program:
        config = self.metered_allowance_config
        consumption, allowance = (config.consumption_grouping_value,
                                  config.allowance_grouping_value)
        # the allowance is a credit row at the same unit amount, for at most the consumption
        return Program("graduated", _flat(Decimal(0)), grouping=(config.grouping_key,),
                       cells=[((consumption,), config.unit_amount),
                              ((allowance,), -config.unit_amount)],
                       consumption_value=consumption, allowance_value=allowance)


class CompositePrice(PriceBase):
    """Charged on the amounts of the plan's other (non-composite) prices: all of them, or
    those its ``composite_price_filters`` select (every filter must hold)."""

    COMPOSITE: ClassVar[bool] = True
    composite_price_filters: list[CompositeFilter] = []

    def components(self, plan_prices: Sequence[PriceBase]) -> list[str]:
        def price_type(price: PriceBase) -> str:
            return "fixed_price" if price.fixed_price_quantity is not None else "usage_price"

        def holds(f: CompositeFilter, price: PriceBase) -> bool:
            value = price.id if f.field == "price_id" else price_type(price)
            return (value in f.values) == (f.operator == "includes")

        return [p.id for p in plan_prices if not p.COMPOSITE
                and all(holds(f, p) for f in self.composite_price_filters)]


class PercentPrice(CompositePrice):
    model_type: Literal["percent"]
    percent_config: PercentConfig

    def program(self) -> Program:
        config = self.percent_config
        return Program("graduated", _flat(Decimal(0)), prorate=config.prorated,
                       composite="percent", composite_rate=config.percent,
                       composite_minimum=config.minimum_amount,
                       composite_maximum=config.maximum_amount)


class MinimumCompositePrice(CompositePrice):
    model_type: Literal["minimum_composite"]
    minimum_composite_config: MinimumCompositeConfig

    def program(self) -> Program:
        config = self.minimum_composite_config
        return Program("graduated", _flat(Decimal(0)), prorate=config.prorated,
                       composite="minimum", composite_minimum=config.minimum_amount)


class ScalableMatrixWithTieredPricingPrice(PriceBase):
    model_type: Literal["scalable_matrix_with_tiered_pricing"]
    scalable_matrix_with_tiered_pricing_config: ScalableMatrixWithTieredPricingConfig

    def program(self) -> Program:
        config = self.scalable_matrix_with_tiered_pricing_config
        tiers, cells = config.program_tiers()
        return Program("graduated", tiers, cells=cells, grouping=config.keys())


class MatrixWithThresholdDiscountsPrice(PriceBase):
    model_type: Literal["matrix_with_threshold_discounts"]
    matrix_with_threshold_discounts_config: MatrixWithThresholdDiscountsConfig

    def program(self) -> Program:
        config = self.matrix_with_threshold_discounts_config
        cells, discounts = config.program_cells()
        return Program("graduated", _flat(config.default_unit_amount), cells=cells,
                       grouping=config.keys(), cell_discounts=discounts)


class DailyCreditAllowancePrice(PriceBase):
    model_type: Literal["daily_credit_allowance"]
    daily_credit_allowance_config: DailyCreditAllowanceConfig

    def program(self) -> Program:
        config = self.daily_credit_allowance_config
        cells = [(config.cell(v), v.unit_amount) for v in config.matrix_values]
        # grouped by day first: the allowance is per day, a cell is the values after it
        return Program("graduated", _flat(config.default_unit_amount), cells=cells,
                       grouping=(config.event_day_property, *config.keys()), cell_offset=1,
                       daily_allowance=config.daily_allowance)


class GroupedWithMeteredMinimumPrice(PriceBase):
    model_type: Literal["grouped_with_metered_minimum"]
    grouped_with_metered_minimum_config: GroupedWithMeteredMinimumConfig

    def program(self) -> Program:
        config = self.grouped_with_metered_minimum_config
        rates = [ValueRate(2, v.pricing_value, v.unit_amount) for v in config.unit_amounts] + [
            ValueRate(3, v.scaling_value, v.scaling_factor) for v in config.scaling_factors]
        # an unmatched pricing value is rated at the minimum unit amount
        return Program("graduated", _flat(config.minimum_unit_amount),
                       grouping=(config.grouping_key, config.pricing_key, config.scaling_key),
                       metered_minimum=config.minimum_unit_amount, value_rates=rates)


PRICE_MODELS = (
    UnitPrice, TieredPrice, PackagePrice, MatrixPrice, MatrixWithAllocationPrice, BulkPrice,
    ThresholdTotalAmountPrice, TieredPackagePrice, TieredWithMinimumPrice,
    PackageWithAllocationPrice, UnitWithPercentPrice, BpsPrice, BulkBpsPrice, TieredBpsPrice,
    GroupedTieredPrice, UnitWithProrationPrice, GroupedAllocationPrice, TieredWithProrationPrice,
    BulkWithProrationPrice, TieredPackageWithMinimumPrice, GroupedTieredPackagePrice,
    MatrixWithDisplayNamePrice, ScalableMatrixWithUnitPricingPrice,
    GroupedWithMinMaxThresholdsPrice, MaxGroupTieredPackagePrice,
    CumulativeGroupedAllocationPrice, BulkWithFiltersPrice, EventOutputPrice,
    GroupedTieredMatrixPrice, TieredMatrixWithAllocationPrice, PercentPrice,
    MinimumCompositePrice, MeteredAllowancePrice, GroupedWithProratedMinimumPrice,
    CumulativeGroupedBulkPrice, ScalableMatrixWithTieredPricingPrice,
    MatrixWithThresholdDiscountsPrice, DailyCreditAllowancePrice, GroupedWithMeteredMinimumPrice,
)
Price = Annotated[
    UnitPrice | TieredPrice | PackagePrice | MatrixPrice | MatrixWithAllocationPrice | BulkPrice
    | ThresholdTotalAmountPrice | TieredPackagePrice | TieredWithMinimumPrice
    | PackageWithAllocationPrice | UnitWithPercentPrice | BpsPrice | BulkBpsPrice
    | TieredBpsPrice | GroupedTieredPrice | UnitWithProrationPrice | GroupedAllocationPrice
    | TieredWithProrationPrice | BulkWithProrationPrice | TieredPackageWithMinimumPrice
    | GroupedTieredPackagePrice | MatrixWithDisplayNamePrice | ScalableMatrixWithUnitPricingPrice
    | GroupedWithMinMaxThresholdsPrice | MaxGroupTieredPackagePrice
    | CumulativeGroupedAllocationPrice | BulkWithFiltersPrice | EventOutputPrice
    | GroupedTieredMatrixPrice | TieredMatrixWithAllocationPrice | PercentPrice
    | MinimumCompositePrice | MeteredAllowancePrice | GroupedWithProratedMinimumPrice
    | CumulativeGroupedBulkPrice | ScalableMatrixWithTieredPricingPrice
    | MatrixWithThresholdDiscountsPrice | DailyCreditAllowancePrice
    | GroupedWithMeteredMinimumPrice,
    Field(discriminator="model_type"),
]
