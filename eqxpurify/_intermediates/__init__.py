"""Taps and harvesting: named values taken out of the middle of a computation.

- `_primitive`: the tap primitive and its rules; the only module of eqxpurify
  that touches JAX internals.
- `_kinds`: which higher-order primitive an equation is, and its parameters.
- `_taps`: `ep.intermediate`, `ep.Intermediate`, `ep.is_intermediate`, and
  naming slots by their path in a model.
- `_harvest`: the jaxpr interpreter that collects tapped values.
- `_sites`: where a jaxpr's taps are (the harvest's memoised search).
- `_batched_map`: a `lax.map` with `batch_size=`, its taps one value per element.
- `_records`: grouping collected values by name.
- `_api`: `ep.intermediates`.
"""

from ._api import intermediates as intermediates
from ._taps import (
    Intermediate as Intermediate,
    intermediate as intermediate,
    is_intermediate as is_intermediate,
)

__all__ = ["Intermediate", "intermediate", "intermediates", "is_intermediate"]
