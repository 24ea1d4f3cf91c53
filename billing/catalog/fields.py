"""Field types shared by the catalog models."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def decimal_string(value: object) -> object:
    # Floats in YAML or JSON (0.1) are binary approximations; money must be written exactly.
    if isinstance(value, float):
        raise ValueError(f"write decimal amounts as quoted strings (e.g. '{value}'), not numbers")
    if isinstance(value, bool):
        raise ValueError("expected a decimal string, got a boolean")
    return value


DecimalString = Annotated[Decimal, BeforeValidator(decimal_string)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]+$", min_length=1, max_length=128)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
