"""The trainable arrays as one vector (`ravel`) or one list (`flatten`), and back."""

import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from ._filters import rebuild, split_model
from ._param import is_param
from ._plumbing import common_dtype, concat, default_device, is_traced, place, to_device
from ._rest import Rest
from ._values import values

__all__ = ["Unflatten", "Unravel", "draws", "flatten", "ravel"]


class Unflatten(eqx.Module):
    """Maps a list of trainable arrays back to the full model (from `ep.flatten`).

    It holds the rest of the model, so it can be closed over by a jitted step (its
    arrays become constants of the compiled program) or passed to one. It hashes
    by identity, so `jax.jit(unflatten)` works like jitting any function.

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"a": ep.Param(jnp.zeros(2)), "b": ep.Param(1.0)}
        >>> latents, unflatten = ep.flatten(model)
        >>> new = jax.jit(unflatten)([z + 1 for z in latents])
        >>> ep.values(new)
        {"['a']": Array([1., 1.], dtype=float32), "['b']": Array(2., dtype=float32)}
        >>> unflatten(latents[:1])
        Traceback (most recent call last):
        ...
        ValueError: `unflatten` expects 2 arrays (one per trainable array ...), got 1.
    """

    rest: Rest

    def __init__(self, rest: Rest):
        self.rest = rest  # (no generated `__init__`: see `Rest.__init__`)

    __hash__ = object.__hash__
    __eq__ = object.__eq__

    def __call__(self, latents: Sequence[Any]) -> PyTree:
        layout = self.rest.layout
        if not isinstance(latents, list | tuple):
            raise TypeError(
                "`unflatten` expects the list of arrays that `ep.flatten` returned "
                f"(or an update of it), got {type(latents).__name__}."
            )
        if len(latents) != len(layout.names):
            raise ValueError(
                f"`unflatten` expects {len(layout.names)} arrays (one per trainable "
                f"array of the model), got {len(latents)}."
            )
        for k, z in enumerate(latents):
            shape, dtype = layout.shapes[k], layout.dtypes[k]
            if tuple(jnp.shape(z)) != shape or jnp.result_type(z) != dtype:
                raise ValueError(
                    f"`unflatten`: array {k} (for `{layout.names[k]}`) must have "
                    f"shape {shape} and dtype {dtype}, got shape "
                    f"{tuple(jnp.shape(z))} and dtype {jnp.result_type(z)}. For a "
                    "batch of lists, map the whole computation over it: "
                    "`jax.vmap(lambda zs: f(unflatten(zs)))`."
                )
        return rebuild(self.rest, list(latents))


class Unravel(eqx.Module):
    """Maps a 1-d vector back to the full model (returned by `ep.ravel`).

    Under a trace the vector is cut with one `split` (whose gradient is one
    concatenation, so a gradient through `unravel` costs the same at any number
    of arrays); eagerly it is cut on the host and each piece placed with the
    sharding its array had.

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"a": ep.Param(jnp.zeros(2)), "b": ep.Param(1.0)}
        >>> flat, unravel = ep.ravel(model)
        >>> ep.values(jax.jit(unravel)(jnp.array([1.0, 2.0, 3.0])))
        {"['a']": Array([1., 2.], dtype=float32), "['b']": Array(3., dtype=float32)}
        >>> unravel(jnp.zeros(4))
        Traceback (most recent call last):
        ...
        ValueError: `unravel` expects a 1-d vector of length 3 (...), got shape (4,).
    """

    rest: Rest
    size: int = eqx.field(static=True)
    shardings: tuple[Any, ...] = eqx.field(static=True)

    def __init__(self, rest: Rest, size: int, shardings: tuple[Any, ...]):
        self.rest = rest  # (no generated `__init__`: see `Rest.__init__`)
        self.size = size
        self.shardings = shardings

    __hash__ = object.__hash__
    __eq__ = object.__eq__

    def __call__(self, flat: Float[Array, " n"]) -> PyTree:
        if not isinstance(flat, jax.Array | np.ndarray):
            raise TypeError(
                "`unravel(flat)`: `flat` must be a 1-d array (the vector "
                f"`ep.ravel` returned, or an update of it), got {type(flat).__name__}"
                ". Convert it first: `unravel(jnp.asarray(flat))`."
            )
        shape = tuple(jnp.shape(flat))
        if shape != (self.size,):
            hint = (
                " For a batch of vectors, map the whole computation over it, "
                "`jax.vmap(lambda v: f(unravel(v)))(flats)`, or name the draws with "
                "`ep.draws(flats, unravel)`."
                if len(shape) > 1
                else ""
            )
            raise ValueError(
                f"`unravel` expects a 1-d vector of length {self.size} (the number of "
                f"trainable elements of the model), got shape {shape}.{hint}"
            )
        dtype = jnp.result_type(flat)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"`unravel` expects a floating vector, got dtype {dtype}.")
        layout = self.rest.layout
        sizes = [math.prod(s) for s in layout.shapes]
        cuts = list(np.cumsum(sizes)[:-1]) if sizes else []
        if is_traced(flat):
            pieces = jnp.split(jnp.asarray(flat), cuts) if sizes else []
            leaves = [
                p.reshape(s).astype(d)
                for p, s, d in zip(pieces, layout.shapes, layout.dtypes)
            ]
        else:
            host = np.asarray(flat)
            leaves = [
                p.reshape(s).astype(d)
                for p, s, d in zip(np.split(host, cuts), layout.shapes, layout.dtypes)
            ]
            leaves = place(to_device(leaves), self.shardings)
        return rebuild(self.rest, leaves)


def _sharding(x: Any, default: Any) -> Any:
    """The placement `unravel` restores (None: wherever new arrays go).

    A committed array's sharding, unless it is just the `default` device.
    """
    sharding = getattr(x, "sharding", None)
    if sharding is None or is_traced(x) or not getattr(x, "committed", False):
        return None
    if sharding.device_set == {default}:
        return None
    return sharding


def flatten(model: PyTree) -> tuple[list[Any], Unflatten]:
    """The list of every trainable array, and the function that puts them back.

    The same arrays as `ep.partition`'s `params` (Param latents and plain floating
    arrays), as a list in path order. Optimizers that act per tensor (masks,
    LARS/LAMB, adafactor) see each Param as its own tensor.

    Arguments:
        model: a model whose Params are all concrete.

    Returns:
        `(latents, unflatten)`: `latents` is a list of arrays, and
        `unflatten(latents)` returns the full model (Fixed data, priors and static
        parts kept). `unflatten` checks the number, shapes and dtypes.

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(3)), "x": ep.Fixed(jnp.arange(3.0))}
        >>> latents, unflatten = ep.flatten(model)
        >>> [z.shape for z in latents]
        [(3,)]
        >>> ep.unwrap(unflatten([2 * z for z in latents]))["w"]
        Array([2., 2., 2.], dtype=float32)
    """
    trainables, rest = split_model(model, "ep.flatten")
    return trainables, Unflatten(rest)


def ravel(model: PyTree) -> tuple[Float[Array, " n"], Unravel]:
    """Flatten every trainable array into one 1-d vector.

    This is the representation for samplers, Hessians (Laplace approximations)
    and scipy.

    Arguments:
        model: a model whose Params are all concrete.

    Returns:
        `(flat, unravel)`. `flat` concatenates the raveled trainable arrays in path
        order, in the widest of their dtypes (at least float32). `unravel(flat)`
        returns the full model: arrays restored to their shapes, dtypes and
        shardings, Fixed data and static parts kept. Both work under `jax.jit`,
        `jax.grad`, `jax.vmap` and `jax.hessian`; `unravel` raises a clear error
        for a vector of the wrong length or rank.

    Examples:
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
    trainables, rest = split_model(model, "ep.ravel")
    vector = concat(trainables, common_dtype(rest.layout.dtypes))
    size = sum(math.prod(s) for s in rest.layout.shapes)
    if jax.device_count() > 1:
        default = default_device()
        shardings = tuple(_sharding(x, default) for x in trainables)
    else:  # nothing can be sharded
        shardings = (None,) * len(trainables)
    return vector, Unravel(rest, size, shardings)


def draws(
    samples: Float[Array, "*batch n"],
    unravel: Callable[[Array], Any],
    filter_spec: Callable[[Any], bool] = is_param,
) -> dict[str, Array]:
    """Physical values by path for a batch of latent vectors (posterior draws).

    Arguments:
        samples: latent vectors as `ep.ravel` makes them, with any leading batch
            axes: `(draws, n)`, or `(chains, draws, n)` from a multi-chain sampler.
        unravel: the function returned by `ep.ravel(model)`.
        filter_spec: which wrappers to include, as for `ep.values`.

    Returns:
        A dict from path to an array of shape `(*batch, *value_shape)`: the
        physical value of each Param (hierarchical ones included) in every draw.
        `arviz.from_dict(posterior=ep.draws(samples, unravel))` takes it as it
        is when `samples` has axes `(chains, draws, n)`.

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> model = {"scale": ep.Param(1.0, prior=ep.LogNormal(1.0, 0.5))}
        >>> flat, unravel = ep.ravel(model)
        >>> samples = jnp.zeros((2, 3, 1))  # 2 chains, 3 draws
        >>> ep.draws(samples, unravel)["['scale']"].shape
        (2, 3)
    """
    samples = jnp.asarray(samples)
    if samples.ndim < 1:
        raise ValueError("`ep.draws`: `samples` must have a last axis of latents.")
    batch = samples.shape[:-1]
    flat = samples.reshape(-1, samples.shape[-1])
    out = _draws(flat, unravel, filter_spec)
    return {k: v.reshape(*batch, *v.shape[1:]) for k, v in out.items()}


@eqx.filter_jit
def _draws(flat: Array, unravel: Any, filter_spec: Any) -> dict[str, Array]:
    return jax.vmap(lambda v: values(unravel(v), filter_spec))(flat)
