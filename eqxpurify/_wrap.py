"""`wrap`: the arrays of an existing Equinox module made Params and Fixed.

With its scale-aware default prior (LeCun for weights laid out `(out, in,
*kernel)`, `Normal(0, 1)` otherwise) and abstract modules (from
`eqx.filter_eval_shape`) made abstract Params that keep their shardings.
"""

import math
from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._abstract_prior import AbstractPrior
from ._checked_value import new_param
from ._fixed import Fixed
from ._nodes import Nodes
from ._param import Param
from ._paths import Where, select
from ._priors import Normal, standard_normal
from ._wrapper_base import is_wrapper

__all__ = ["wrap"]

_M = TypeVar("_M")


def _scaled_normal(fan_in: int, cache: dict[int, Normal]) -> Normal:
    if fan_in not in cache:
        cache[fan_in] = Normal(0.0, 1.0 / math.sqrt(fan_in))
    return cache[fan_in]


def _default_prior(x: Any, cache: dict[int, Normal]) -> AbstractPrior:
    """LeCun scale for weights laid out `(out, in, *kernel)`, N(0, 1) otherwise."""
    if x.ndim >= 2:
        fan_in = math.prod(x.shape[1:])
        if fan_in > 0:
            return _scaled_normal(fan_in, cache)
    return standard_normal()


def _abstract_leaf(
    leaf: jax.ShapeDtypeStruct, fixed: bool, prior: Any, cache: dict[int, Normal]
) -> Any:
    """An abstract Param (or Fixed) for a shape of an abstract module.

    The module comes from e.g. `eqx.filter_eval_shape(eqx.nn.MLP, ...)`; the
    Param keeps the shape's sharding, so `ep.normal` fills it in its shards.
    """
    if fixed or not jnp.issubdtype(leaf.dtype, jnp.floating):
        return Fixed(shape=leaf.shape, dtype=leaf.dtype) if fixed else leaf
    if prior is None or not isinstance(prior, AbstractPrior):
        prior = _default_prior(leaf, cache)
    return Param(
        shape=leaf.shape, dtype=leaf.dtype, prior=prior, sharding=leaf.sharding
    )


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _check_prior_argument(prior: Any) -> None:
    """`wrap`'s `prior`: None, a prior, or a function from the array to a prior."""
    if prior is None or isinstance(prior, AbstractPrior):
        return
    if isinstance(prior, type):
        raise TypeError(
            f"`ep.wrap`: `prior` is the class `{prior.__name__}`; pass a prior "
            f"instance (`prior=ep.{prior.__name__}(...)`) or a function from the "
            "array to a prior (`prior=lambda x: ep.Normal(0, 1)`)."
        )
    if not callable(prior):
        raise TypeError(
            f"`ep.wrap`: `prior` must be an `ep.AbstractPrior` such as "
            "`prior=ep.Normal(0, 1)`, or a function from the array to a prior "
            f"(`prior=lambda x: ep.Normal(0, 1)`); got {type(prior).__name__}."
        )


def wrap(
    module: _M,
    fixed: Where | None = None,
    *,
    prior: AbstractPrior | Callable[[Array], AbstractPrior] | None = None,
) -> _M:
    """Turn the arrays of an existing Equinox module into `ep.Param`s and `ep.Fixed`s.

    Every floating array of `module` (`eqx.nn.Linear`, `eqx.nn.MLP`,
    `eqx.nn.LSTMCell`, your own modules) becomes an `ep.Param` that keeps its
    current value, and the arrays selected by `fixed` become `ep.Fixed` instead.
    Integer, boolean and PRNG-key arrays not selected by `fixed` stay plain arrays
    (they are never trained anyway), and existing wrappers are kept, so `wrap` is
    idempotent. `ep.unwrap(ep.wrap(module))` gives back `module`'s arrays (to a
    rounding of the prior's inverse), so the wrapped module runs as
    `ep.unwrap(wrapped)(x)`.

    The default prior is scale-aware, so that `ep.normal(wrapped, key=key)`
    re-initialises a network sensibly and the optimizer sees latents of order 1:
    an array with two or more dimensions is taken to be a weight laid out
    `(out, in, *kernel)`, as in `eqx.nn`, and gets the LeCun prior
    `ep.Normal(0, 1 / sqrt(fan_in))` with `fan_in = prod(shape[1:])`; any other
    array (biases, scalars, vectors) gets `ep.Normal(0, 1)`, the default of
    `ep.Param`. Pass `prior=ep.Normal(0, 1)` to make latents equal the weights.

    Arguments:
        module: any pytree, usually an `eqx.Module`.
        fixed: which arrays become `ep.Fixed` rather than `ep.Param` (any numeric
            dtype): a path, a sequence of paths, or an `eqx.tree_at`-style
            callable (`lambda m: m.layers[-1]`). Default: none.
        prior: the prior of every new Param, or a function from the array to its
            prior. Default: the scale-aware rule above.

    Returns:
        `module` with its arrays wrapped.

    Raises:
        ValueError: for an unknown path in `fixed`, a `fixed` that selects no array,
            or a value outside the chosen prior's support (naming the path).
        TypeError: for a complex array not selected by `fixed` (a Param must be
            real), or a `prior` function that returns no prior (naming the path).

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp, eqxpurify as ep
        >>> mlp = eqx.nn.MLP(2, 1, 4, 1, key=jax.random.key(0))
        >>> model = ep.wrap(mlp, fixed=lambda m: m.layers[0])  # first layer frozen
        >>> list(ep.partition(model)[0])
        ['layers[1].weight', 'layers[1].bias']
        >>> model.layers[1].weight.prior  # LeCun: fan_in = 4
        Normal(0, 0.5)
        >>> x = jnp.array([0.5, -1.0])
        >>> bool(jnp.allclose(ep.unwrap(model)(x), mlp(x)))
        True
    """
    _check_prior_argument(prior)
    nodes = Nodes(module, "ep.wrap")
    fixed_idx: set[int] = set()
    if fixed is not None:
        fixed_idx = set(select(nodes, fixed, "ep.wrap"))
        if not any(
            eqx.is_array(nodes.nodes[i]) and not is_wrapper(nodes.nodes[i])
            for i in fixed_idx
        ):
            raise ValueError(
                "`ep.wrap`: `fixed` selects no plain array of the module. Select "
                "arrays or submodules holding them, e.g. `lambda m: m.layers[0]`."
            )
    cache: dict[int, Normal] = {}
    out = list(nodes.nodes)
    for i, leaf in enumerate(nodes.nodes):
        if isinstance(leaf, jax.ShapeDtypeStruct):  # an abstract module
            out[i] = _abstract_leaf(leaf, i in fixed_idx, prior, cache)
            continue
        if is_wrapper(leaf) or not eqx.is_array(leaf) or _is_key(leaf):
            continue
        path = nodes.paths[i]
        if i in fixed_idx:
            out[i] = Fixed(leaf)
            continue
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            continue
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"`ep.wrap`: the array at `{path}` has dtype {leaf.dtype}; a Param "
                "must be real floating. Select it in `fixed=` to keep it as data."
            )
        arr = jnp.asarray(leaf) if isinstance(leaf, np.ndarray) else leaf
        if prior is None:
            p = _default_prior(arr, cache)
        elif isinstance(prior, AbstractPrior):
            p = prior
        else:
            p = prior(arr)
            if not isinstance(p, AbstractPrior):
                raise TypeError(
                    f"`ep.wrap`: `prior` returned a {type(p).__name__} for the array "
                    f"at `{path}`; it must return an `ep.AbstractPrior`."
                )
        out[i] = new_param(arr, arr.shape, arr.dtype, p, path, "ep.wrap")
    return nodes.unflatten(out)
