"""One 1-d vector of all latents, for samplers, Hessians and scipy."""

import math
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from ._filters import ParamNodes, param_nodes, replace_latents
from ._flat import common_dtype, concat, split
from ._init import require_concrete
from ._wrappers import Param, build

__all__ = ["Unravel", "ravel"]


class Unravel(eqx.Module):
    """Maps a 1-d latent vector back to the full model (returned by `ep.ravel`).

    It is an `eqx.Module` holding the non-trainable part of the model, so it can be
    closed over or passed through `eqx.filter_jit` like any other model.
    """

    rest: list[Any]
    treedef: Any = eqx.field(static=True)
    indices: tuple[int, ...] = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    dtypes: tuple[np.dtype, ...] = eqx.field(static=True)
    size: int = eqx.field(static=True)

    # Identity hashing, so that `jax.jit(unravel)` works like jitting any function
    # (field-wise hashing would fail on the array leaves of `rest`).
    __hash__ = object.__hash__
    __eq__ = object.__eq__

    def __call__(self, flat: Array) -> PyTree:
        shape = tuple(jnp.shape(flat))
        if shape != (self.size,):
            hint = (
                " For a batch of vectors, map over it: `jax.vmap(unravel)(flats)`."
                if len(shape) > 1
                else ""
            )
            raise ValueError(
                f"`unravel` expects a 1-d vector of length {self.size} (the number of "
                f"latent elements in the model), got shape {shape}.{hint}"
            )
        dtype = jnp.result_type(flat)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"`unravel` expects a floating vector, got dtype {dtype}.")
        latents = split(jnp.asarray(flat), self.shapes, self.dtypes)
        return replace_latents(
            ParamNodes(self.rest, self.treedef, list(self.indices)), latents
        )


def ravel(model: PyTree) -> tuple[Float[Array, " n"], Unravel]:
    """Flatten every Param latent into one 1-d vector.

    Arguments:
        model: a model whose Params are all concrete.

    Returns:
        `(flat, unravel)`. `flat` concatenates the raveled latents in path order
        (the order of `jax.tree.leaves`), in the widest latent dtype (at least
        float32). `unravel(flat)` returns the full model: latents restored to their
        shapes and dtypes, Fixed data and static parts kept. Both work under
        `jax.jit`, `jax.grad`, `jax.vmap` and `jax.hessian`; `unravel` raises a
        clear error for a vector of the wrong length or rank.

    Example:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"a": ep.Param(jnp.ones(2)), "b": ep.Param(3.0),
        ...          "x": ep.Fixed(2.0)}
        >>> flat, unravel = ep.ravel(model)
        >>> flat
        Array([1., 1., 3.], dtype=float32)
        >>> def energy(v):
        ...     m = ep.unwrap(unravel(v))
        ...     return m["x"] * jnp.sum(m["a"] ** 2) + m["b"] ** 2
        >>> jax.hessian(energy)(flat)
        Array([[4., 0., 0.],
               [0., 4., 0.],
               [0., 0., 2.]], dtype=float32)
    """
    flat = param_nodes(model)
    require_concrete(model, flat, "ep.ravel")
    params = flat.params
    dtypes = tuple(p.dtype for p in params)
    vector = concat(flat.latents(), common_dtype(dtypes))
    rest = list(flat.nodes)
    for i in flat.indices:
        rest[i] = build(Param, latent=None, prior=rest[i].prior)
    unravel = Unravel(
        rest=rest,
        treedef=flat.treedef,
        indices=tuple(flat.indices),
        shapes=tuple(p.shape for p in params),
        dtypes=dtypes,
        size=sum(math.prod(p.shape) for p in params),
    )
    return vector, unravel
