"""The latents as one 1-d vector (`ravel`) or one list (`flatten`), and back."""

import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from ._filters import ParamNodes, param_nodes, replace_latents
from ._flat import common_dtype, concat, split
from ._init import require_concrete
from ._paths import find_path
from ._wrappers import Param, build, is_param

__all__ = ["AbstractRebuild", "Unflatten", "Unravel", "flatten", "ravel"]


class AbstractRebuild(eqx.Module):
    """Rebuilds a model from its latents (the base of `Unravel` and `Unflatten`).

    An `eqx.Module` holding the non-trainable part of the model, so it can be
    closed over (its arrays become constants of the compiled program) or passed
    through `eqx.filter_jit` as an argument. It hashes by identity, so that
    `jax.jit(unravel)` works like jitting any function.
    """

    rest: list[Any]
    treedef: Any = eqx.field(static=True)
    indices: tuple[int, ...] = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    dtypes: tuple[np.dtype, ...] = eqx.field(static=True)

    __hash__ = object.__hash__
    __eq__ = object.__eq__

    def rebuild(self, latents: list[Any]) -> PyTree:
        """The model with these latents (already of the right shapes and dtypes)."""
        flat = ParamNodes(self.rest, self.treedef, list(self.indices))
        return replace_latents(flat, latents)


class Unravel(AbstractRebuild):
    """Maps a 1-d latent vector back to the full model (returned by `ep.ravel`)."""

    size: int = eqx.field(static=True)

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
        return self.rebuild(split(jnp.asarray(flat), self.shapes, self.dtypes))


class Unflatten(AbstractRebuild):
    """Maps a list of latents back to the full model (returned by `ep.flatten`)."""

    def __call__(self, latents: Sequence[Array]) -> PyTree:
        if not isinstance(latents, (list, tuple)):
            raise TypeError(
                "`unflatten` expects the list of latents that `ep.flatten` returned "
                f"(or an update of it), got {type(latents).__name__}."
            )
        if len(latents) != len(self.shapes):
            raise ValueError(
                f"`unflatten` expects {len(self.shapes)} latents (one per Param), got "
                f"{len(latents)}."
            )
        for k, (z, shape, dtype) in enumerate(
            zip(latents, self.shapes, self.dtypes, strict=True)
        ):
            if tuple(jnp.shape(z)) != shape or jnp.result_type(z) != dtype:
                path = find_path(self.rebuild(list(latents)), self.indices[k], is_param)
                raise ValueError(
                    f"`unflatten`: latent {k} (the Param at `{path}`) must have shape "
                    f"{shape} and dtype {dtype}, got shape {tuple(jnp.shape(z))} and "
                    f"dtype {jnp.result_type(z)}. For a batch of latent lists, map "
                    "over it with `jax.vmap(unflatten)`."
                )
        return self.rebuild(list(latents))


def _rebuild_fields(flat: ParamNodes) -> dict[str, Any]:
    rest = list(flat.nodes)
    for i in flat.indices:
        rest[i] = build(Param, latent=None, prior=rest[i].prior)
    return dict(
        rest=rest,
        treedef=flat.treedef,
        indices=tuple(flat.indices),
        shapes=tuple(p.shape for p in flat.params),
        dtypes=tuple(p.dtype for p in flat.params),
    )


def flatten(model: PyTree) -> tuple[list[Array], Unflatten]:
    """The list of every Param latent, and the function that puts them back.

    Like `ep.ravel` without the concatenation: one array per Param, in path order
    (the order of `ep.named_params`). A jitted training step over this list is
    the program you would write by hand over a dict of arrays, and dispatches as
    fast, since JAX flattens a list of arrays in C++; optimizers that act per
    tensor (masks, LARS/LAMB, adafactor) see each Param as its own tensor.

    Arguments:
        model: a model whose Params are all concrete.

    Returns:
        `(latents, unflatten)`: `latents` is a list of arrays, and
        `unflatten(latents)` returns the full model (Fixed data, priors and static
        parts kept). `unflatten` checks the number, shapes and dtypes of the
        latents.

    Example:
        >>> import jax, jax.numpy as jnp, optax, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(3)), "x": ep.Fixed(jnp.arange(3.0))}
        >>> latents, unflatten = ep.flatten(model)
        >>> [z.shape for z in latents]
        [(3,)]
        >>> def loss(latents):
        ...     m = ep.unwrap(unflatten(latents))
        ...     return jnp.sum((m["w"] - m["x"]) ** 2)
        >>> optim = optax.sgd(0.25)
        >>> @jax.jit
        ... def step(latents, opt_state):
        ...     grads = jax.grad(loss)(latents)
        ...     updates, opt_state = optim.update(grads, opt_state)
        ...     return optax.apply_updates(latents, updates), opt_state
        >>> latents, opt_state = step(latents, optim.init(latents))
        >>> ep.unwrap(unflatten(latents))["w"]
        Array([0.5, 1. , 1.5], dtype=float32)
    """
    flat = param_nodes(model)
    require_concrete(model, flat, "ep.flatten")
    return flat.latents(), Unflatten(**_rebuild_fields(flat))


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
    size = sum(math.prod(p.shape) for p in params)
    return vector, Unravel(**_rebuild_fields(flat), size=size)
