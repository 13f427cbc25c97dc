"""Kubernetes resource quantities ("8", "500m", "512Gi", "1e3") as integers.

The scheduler counts in whole bytes and millicores; this converts the API's
int-or-string form once, rounding up as the kubelet does so that a request is
never under-counted.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

# The grammar of k8s.io/apimachinery resource.Quantity without a sign (quantities
# in this API are never negative) and with whole exponents only, as its parser
# requires ("1e1.5" matches upstream's looser pattern but is not a quantity).
NON_NEGATIVE_QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?[0-9]+))?$"
)
_QUANTITY = re.compile(
    r"^(?P<number>\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class QuantityError(ValueError):
    """A value that is not a non-negative Kubernetes quantity."""


def parse_quantity(value: int | str) -> Decimal:
    """The exact value of a non-negative quantity."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise QuantityError(f"quantity must be an integer or a string, not {type(value).__name__}")
    if isinstance(value, int):
        if value < 0:
            raise QuantityError(f"quantity {value} must not be negative")
        return Decimal(value)
    match = _QUANTITY.match(value)
    if match is None:
        raise QuantityError(
            f"quantity {value!r} is not a non-negative Kubernetes quantity "
            "(e.g. '8', '500m', '512Gi', '1e3')"
        )
    suffix = match["suffix"] or ""
    try:
        number = Decimal(match["number"])
        if suffix in _BINARY:
            return number * (Decimal(1024) ** _BINARY[suffix])
        if suffix in _DECIMAL:
            return number.scaleb(_DECIMAL[suffix])
        return number.scaleb(int(suffix[1:]))
    except (InvalidOperation, ValueError, OverflowError) as exc:
        # A huge exponent ("1e99999999999") parses but has no usable value.
        raise QuantityError(f"quantity {value!r} has an unusable exponent") from exc


def to_bytes(value: int | str) -> int:
    """Memory in whole bytes, rounded up."""
    return int(parse_quantity(value).to_integral_value(rounding=ROUND_CEILING))


def to_millicores(value: int | str) -> int:
    """CPU in millicores, rounded up."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding=ROUND_CEILING))
