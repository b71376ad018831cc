"""Recorded tap values: grouping them by name, and checking cond branches agree."""

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

from ._batched_map import REMAINDER_HINT
from ._primitive import is_pass_through


class Record:
    """A recorded value. `axes`: its number of `jax.vmap` axes (None: unknown).

    `mapped`: stacked over the batches of a `lax.map(..., batch_size=)`.
    """

    __slots__ = ("name", "kind", "value", "axes", "mapped")

    def __init__(
        self,
        name: str,
        kind: str,
        value: Any,
        axes: int | None = None,
        mapped: bool = False,
    ):
        self.name, self.kind, self.value = name, kind, value
        self.axes, self.mapped = axes, mapped


def finalize(records: Sequence[Record]) -> dict[str, tuple[str, Any]]:
    """Group records by name: one per tap, slots called n > 1 times stacked."""
    grouped: dict[str, list[Record]] = {}
    for record in records:
        grouped.setdefault(record.name, []).append(record)
    out = {}
    for name, group in grouped.items():
        kinds = {r.kind for r in group}
        if len(kinds) > 1:
            raise ValueError(
                f"The name `{name}` is used both by an `ep.intermediate` tap and by "
                "an `ep.Intermediate` slot; rename the tap."
            )
        (kind,) = kinds
        if len(group) == 1:
            out[name] = (kind, group[0].value)
        elif kind == "tap":
            raise ValueError(
                f"The tap `{name}` was recorded {len(group)} times in one call. A "
                "name may be recorded once per call: give each `ep.intermediate` "
                "its own `name` (for a function called several times, pass the "
                "name in as an argument). Inside `jax.vmap`, a `lax.cond` with a "
                "batched predicate runs every branch, recording taps in each."
                + (REMAINDER_HINT if any(r.mapped for r in group) else "")
            )
        else:
            types = [(jnp.shape(r.value), jnp.result_type(r.value)) for r in group]
            if len(set(types)) > 1:
                raise ValueError(
                    f"The `ep.Intermediate` slot `{name}` was called {len(group)} "
                    f"times with values of different shapes or dtypes {types}, so "
                    "they cannot be stacked; use a separate slot for each call."
                )
            out[name] = (kind, jnp.stack([r.value for r in group]))
    return out


def check_branches(metas, shapes, branches) -> None:
    names0 = set(metas[0])
    for i, meta in enumerate(metas[1:], start=1):
        if set(meta) != names0:
            name = sorted(names0 ^ set(meta))[0]
            without = branches[i if name in names0 else 0]
            if is_pass_through(without):
                raise ValueError(
                    f"Cannot harvest `{name}`: it is recorded in only one branch of "
                    "a `lax.cond` whose other branch computes nothing from its "
                    "inputs. That is how a bounded `while_loop` runs its steps "
                    "(`equinox.internal.while_loop`, as used by diffrax and "
                    "optimistix), whose number of steps is not known when tracing, "
                    "so its values cannot be stacked. Move the tap out of the loop "
                    "(or record it in every branch of the cond), or leave it out of "
                    "the harvest with `names=`."
                )
            raise ValueError(
                f"Cannot harvest `{name}`: it is recorded in some branches of "
                f"a `lax.cond`/`lax.switch` but not in others (branches 0 and {i} "
                "differ). Record it in every branch, or move it out of the cond, or "
                "leave it out of the harvest with `names=`."
            )
        for name in meta:
            if meta[name] != metas[0][name] or shapes[i][name] != shapes[0][name]:
                raise ValueError(
                    f"Cannot harvest `{name}`: the branches of a `lax.cond`/"
                    "`lax.switch` record it with different shapes, dtypes or kinds "
                    f"({metas[0][name]} of {shapes[0][name]} in branch 0, "
                    f"{meta[name]} of {shapes[i][name]} in branch {i}). Record "
                    "values of one shape and dtype, the same way, in every branch."
                )
