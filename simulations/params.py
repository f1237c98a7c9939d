"""Scenario parameters: dataclass fields with a unit, a help text and a range.

The command line and the dashboard build their inputs from these fields, so a
parameter is declared once, in its scenario module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from simulations.errors import InvalidParameter


@dataclass(frozen=True)
class Spec:
    """What the inputs show for one parameter, and the range it must lie in."""

    help: str
    minimum: float | None = None
    maximum: float | None = None


def parameter(
    default: int | float,
    help: str,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    """Declare a numeric scenario parameter with its help text and range (both ends included)."""
    return dataclasses.field(
        default=default, metadata={"spec": Spec(help, minimum, maximum)}
    )


def specs(parameters_class: type) -> dict[str, tuple[Spec, int | float]]:
    """Return each parameter's Spec and default, in declaration order."""
    return {
        field.name: (field.metadata["spec"], field.default)
        for field in dataclasses.fields(parameters_class)
    }


def build(parameters_class: type, values: dict[str, Any]) -> Any:
    """Build a parameters dataclass from ``values``, converting and checking each one.

    Raises InvalidParameter for an unknown name, a value of the wrong kind or a
    value out of range; the message names the parameter, the value and the limit.
    """
    known = specs(parameters_class)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidParameter(
            f"unknown parameter(s) {', '.join(unknown)}; this scenario takes "
            f"{', '.join(known)}"
        )

    converted = {}
    for name, value in values.items():
        spec, default = known[name]
        converted[name] = _convert(name, value, type(default))
        _check_range(name, converted[name], spec)
    return parameters_class(**converted)


def as_dict(parameters: Any) -> dict[str, int | float]:
    return dataclasses.asdict(parameters)


def _convert(name: str, value: Any, kind: type) -> int | float:
    if isinstance(value, bool):
        raise InvalidParameter(f"{name} must be a number, got {value!r}")
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise InvalidParameter(f"{name} must be a whole number, got {value!r}")
        return value
    if not isinstance(value, int | float):
        raise InvalidParameter(f"{name} must be a number, got {value!r}")
    return float(value)


def _check_range(name: str, value: int | float, spec: Spec) -> None:
    if spec.minimum is not None and value < spec.minimum:
        raise InvalidParameter(f"{name} must be at least {spec.minimum}, got {value}")
    if spec.maximum is not None and value > spec.maximum:
        raise InvalidParameter(f"{name} must be at most {spec.maximum}, got {value}")
