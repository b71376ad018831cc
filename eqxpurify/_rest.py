"""`rest`: everything of a model but its trainable arrays, and where each leaf goes.

The second half of `ep.partition`; `ep.combine` puts the trainable arrays back
by its layout. The layout is static: hashed once and pickled by the model's
skeleton.
"""

from typing import Any

import equinox as eqx
import jax
import numpy as np

__all__ = ["Layout", "Rest"]


class Layout:
    """Where each leaf of a model goes.

    Static: hashed once and compared by identity first, so a jitted function
    taking `rest` pays nothing per call for it.
    """

    __slots__ = (
        "aliases",
        "arrays",
        "dtypes",
        "hash",
        "names",
        "probe",
        "shapes",
        "statics",
        "static_pos",
        "train_pos",
        "treedef",
    )

    def __init__(
        self, treedef, names, train_pos, shapes, dtypes, arrays, statics, aliases=()
    ):
        self.treedef = treedef
        # (position, trainable index): a later use of a shared Param takes the
        # first use's array.
        self.aliases: tuple[tuple[int, int], ...] = aliases
        self.names: tuple[str, ...] = names
        self.train_pos: tuple[int, ...] = train_pos
        self.shapes: tuple[tuple[int, ...], ...] = shapes
        self.dtypes: tuple[np.dtype, ...] = dtypes
        self.arrays: tuple[int, ...] = arrays
        self.static_pos, self.statics = statics
        # `(k, shape)`: the shape of `rest.arrays[k]`'s first array at the split
        # (not part of the key). Only an error path reads it (`_fit.mapped_over`).
        self.probe: tuple[int, tuple[int, ...]] | None = None
        self.hash = hash(
            (
                treedef,
                names,
                train_pos,
                shapes,
                dtypes,
                arrays,
                self.static_pos,
                aliases,
            )
        )

    def _key(self) -> tuple:
        return (
            self.treedef,
            self.names,
            self.train_pos,
            self.shapes,
            self.dtypes,
            self.arrays,
            self.static_pos,
            self.statics,
            self.aliases,
        )

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Layout) or self.hash != other.hash:
            return False
        return self._key() == other._key()

    def __repr__(self) -> str:
        return f"<{len(self.names)} trainable>"

    def __reduce__(self) -> tuple:
        # A tree structure does not pickle faithfully (Equinox's modules keep a
        # sentinel in it that unpickles as another object), and hashes of strings
        # differ between processes: pickle the model's skeleton and rebuild both.
        skeleton = jax.tree.unflatten(self.treedef, [_SLOT] * self.treedef.num_leaves)
        fields = (self.names, self.train_pos, self.shapes, self.dtypes, self.arrays)
        return (_unpickle_layout, (skeleton, fields, (self.static_pos, self.statics)))


class _Slot:
    """Stands in for every leaf of a pickled `Layout`'s skeleton."""

    def __reduce__(self) -> str:
        return "_SLOT"


_SLOT = _Slot()


def _unpickle_layout(skeleton: Any, fields: tuple, statics: tuple) -> Layout:
    treedef = jax.tree.structure(skeleton, is_leaf=lambda x: x is _SLOT)
    names, train_pos, shapes, dtypes, arrays = fields
    return Layout(treedef, names, train_pos, shapes, dtypes, arrays, statics)


class Rest(eqx.Module):
    """Everything of a model but its trainable arrays (from `ep.partition`).

    Its only leaves are the model's non-trainable arrays (Fixed data and
    hyperparameters, stored as non-floating arrays; integers; keys), so it can
    be closed over by a jitted step or passed to one as an argument.

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.arange(3.0))}
        >>> params, rest = ep.partition(model)
        >>> rest
        Rest(<1 trainable, 3 other arrays>)
        >>> [x.dtype.name for x in jax.tree.leaves(rest)]  # no floating arrays
        ['uint32', 'uint32', 'uint32']
        >>> @jax.jit
        ... def loss(params):  # `rest` is closed over
        ...     m = ep.unwrap(ep.combine(params, rest))
        ...     return jnp.sum(m["w"]) * jnp.sum(m["t"])
        >>> loss(params)
        Array(6., dtype=float32)
    """

    arrays: list[Any]
    layout: Layout = eqx.field(static=True)

    def __init__(self, arrays: list[Any], layout: Layout):
        # Written out: a generated dataclass `__init__` makes Equinox flatten the
        # arguments on every construction, which costs a whole model's flatten.
        self.arrays = arrays
        self.layout = layout

    def __repr__(self) -> str:
        others = len(jax.tree.leaves(self.arrays))
        return f"Rest(<{len(self.layout.names)} trainable, {others} other arrays>)"
