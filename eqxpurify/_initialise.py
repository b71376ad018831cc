"""Whole-model operations on Param latents: shapes, initialisation, log densities."""

import functools
import math
from collections import defaultdict
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._abstract_prior import prior_str
from ._centred import ImproperPriorError
from ._nodes import Nodes, map_params
from ._param import Param, with_latent
from ._path_names import listed
from ._plumbing import (
    common_dtype,
    compute_dtype,
    is_traced,
    place,
    spans_devices,
    unstack,
)
from ._priors import standard_normal_logpdf_constant
from ._wrapper_base import abstract_error, fields_of

__all__ = ["log_prior", "log_prob", "normal", "require_concrete", "shapes", "zeros"]

_M = TypeVar("_M")


def require_concrete(nodes: Nodes, caller: str) -> list[Param]:
    """Every Param of `nodes`, or an error naming the path of an abstract one."""
    params = []
    for k in nodes.params():
        node = nodes.nodes[k]
        if node.is_abstract:
            raise abstract_error(node, nodes.paths[k], caller)
        params.append(node)
    return params


def resolved(nodes: Nodes, caller: str) -> Nodes:
    """`nodes`, or an error naming a Param whose shape still waits for an input."""
    if nodes.pending:
        k = nodes.pending[0]
        raise abstract_error(nodes.nodes[k], nodes.paths[k], caller)
    return nodes


def require_priors(nodes: Nodes, caller: str, allow_plain: bool) -> None:
    """Refuse trainable plain arrays (no prior) unless `allow_plain`.

    They train (and `ep.ravel` includes them) but no prior counts them, so a
    density over the model would be improper in them: a sampler would wander.
    """
    if allow_plain:
        return
    plain = [
        nodes.paths[k]
        for k, node in enumerate(nodes.nodes)
        if nodes.depth[k] == 0
        and isinstance(node, jax.Array | np.ndarray | np.generic)
        and jnp.issubdtype(node.dtype, jnp.inexact)
    ]
    if not plain:
        return
    raise ValueError(
        f"`{caller}`: the model has {len(plain)} trainable plain array(s) with no "
        f"prior: {listed(plain, 5)}. They train (and `ep.ravel` includes them), but no "
        "prior counts them, so the density is improper in them and a sampler would "
        "sample nonsense. Give them priors with `ep.wrap(model, ...)` (e.g. "
        "`eqx.tree_at(lambda m: m.net, model, ep.wrap(model.net))`), or keep them "
        "fixed with `ep.wrap(..., fixed=...)`; or pass `allow_plain=True` to count "
        "them with a flat prior on purpose (e.g. for MAP). (The `params` dict of "
        "`ep.partition` is all plain arrays: pass the model, "
        "`ep.combine(params, rest)`.)"
    )


def sharding_of(latent: Any) -> Any:
    """The sharding a latent has or asks for (None: the default device)."""
    sharding = getattr(latent, "sharding", None)
    if isinstance(latent, jax.ShapeDtypeStruct) or sharding is None:
        return sharding
    if is_traced(latent) or not getattr(latent, "committed", True):
        return None  # an array on no particular device stays so
    return sharding


def shapes(model: _M) -> _M:
    """The model with every Param latent replaced by a `jax.ShapeDtypeStruct`.

    Useful to inspect a model's parameter shapes, or to make an abstract copy of a
    fitted model (e.g. as a template for `ep.load`). The shardings of concrete
    latents are kept in the structs. Nothing is computed.

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> ep.shapes({"w": ep.Param(jnp.zeros((2, 3)))})["w"]
        Param(abstract, shape=(2, 3), prior=Normal(0, 1))
    """

    def to_struct(j: int, p: Param) -> Param:
        del j
        latent = p.latent
        sharding = sharding_of(latent)
        struct = jax.ShapeDtypeStruct(latent.shape, p.dtype, sharding=sharding)
        return with_latent(p, struct)

    return map_params(resolved(Nodes(model, "ep.shapes"), "ep.shapes"), to_struct)


def zeros(model: _M) -> _M:
    """The model with every Param latent (abstract or not) set to zeros.

    With zero latents every Param sits at its prior's median (e.g. the mean of an
    `ep.Normal`). Each latent keeps its sharding.

    Examples:
        >>> import eqxpurify as ep
        >>> ep.zeros(ep.Param(prior=ep.Normal(5.0, 2.0)))
        Param(5, prior=Normal(5, 2))
    """
    nodes = resolved(Nodes(model, "ep.zeros"), "ep.zeros")
    params = [nodes.nodes[k] for k in nodes.params()]
    latents: list[Any] = [None] * len(params)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for j, p in enumerate(params):
        sharding = sharding_of(p.latent)
        if sharding is not None:  # created in its shards
            latents[j] = jnp.zeros(p.latent.shape, p.dtype, device=sharding)
        else:  # with the others of its shape: one device call per shape
            groups[(tuple(p.latent.shape), np.dtype(p.dtype))].append(j)
    for (shape, dtype), members in groups.items():
        stacked = jnp.zeros((len(members), *shape), dtype)
        rows = list(stacked) if is_traced(stacked) else unstack(stacked)
        for j, row in zip(members, rows):
            latents[j] = row
    return map_params(nodes, lambda j, p: with_latent(p, latents[j]))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _draw_group(key: Any, indices: Array, shape: tuple, dtype: Any, ct: Any) -> Array:
    def one(i: Array) -> Array:
        return jax.random.normal(jax.random.fold_in(key, i), shape, ct).astype(dtype)

    return jax.vmap(one)(indices)


@functools.cache
def _sharded_draw(shape: tuple, dtype: Any, sharding: Any) -> Any:
    """One compiled draw per (shape, dtype, sharding), created in its shards."""

    def one(key: Any, i: Any) -> Array:
        draw = jax.random.normal(
            jax.random.fold_in(key, i), shape, compute_dtype(dtype)
        )
        return draw.astype(dtype)

    return jax.jit(one, out_shardings=sharding)


def _draw_one(key: Any, index: Any, shape: tuple, dtype: Any, sharding: Any) -> Array:
    """One latent, created directly in its shards."""
    return _sharded_draw(shape, dtype, sharding)(key, index)


def _draws(key: Any, params: list[Param]) -> list[Array]:
    """Latent j is `normal(fold_in(key, j), shape)`: one stream per Param.

    The numbers are the same whatever the route (eager, traced, grouped, sharded).
    """
    out: list[Any] = [None] * len(params)
    groups: dict[tuple, list[int]] = defaultdict(list)
    shardings = []
    for j, p in enumerate(params):
        latent = p.latent
        sharding = sharding_of(latent)
        shardings.append(sharding)
        shape, dtype = tuple(latent.shape), np.dtype(latent.dtype)
        if spans_devices(sharding) and not is_traced(key):
            out[j] = _draw_one(key, np.uint32(j), shape, dtype, sharding)
        else:
            groups[(shape, dtype)].append(j)
    for (shape, dtype), members in groups.items():
        indices = jnp.asarray(np.asarray(members, np.uint32))
        stacked = _draw_group(key, indices, shape, dtype, compute_dtype(dtype))
        if is_traced(stacked):
            for row, j in enumerate(members):
                out[j] = stacked[row]
            continue
        placed = place(unstack(stacked), [shardings[j] for j in members])
        for j, arr in zip(members, placed):
            out[j] = arr
    return out


def normal(model: _M, *, key: PRNGKeyArray) -> _M:
    """The model with every Param latent (abstract or not) drawn from its prior.

    A whitened latent is drawn from N(0, 1); a centred one (`whiten=False`) is
    the unconstrained image of a draw of its value (an improper `ep.Flat` prior
    is an error naming the path). Each physical value is then a draw from its
    prior, so a prior such as
    `ep.Normal(0, 1 / sqrt(fan_in))` makes this a LeCun initialisation.

    One key serves the whole model: the j-th Param (in path order, a Param before
    the Params of its prior) gets `jax.random.normal(jax.random.fold_in(key, j))`,
    so the result is deterministic given the key and the model's structure and
    every Param has its own stream. Params of equal shape are drawn together,
    so the cost grows with the number of distinct shapes, not of Params. Works
    under `jax.jit` and `eqx.filter_vmap` (one member of a vmapped ensemble
    equals the unbatched call with the same key). A latent with a sharding (a
    sharded array, or an abstract Param declared with `sharding=`) is created
    directly in its shards, never on one device, with the same numbers.

    Arguments:
        model: the model (Params may be abstract).
        key: a JAX PRNG key (keyword-only).

    Returns:
        The model with new latents; everything that is not a Param latent (Fixed
        data, plain arrays, integer arrays, keys, constant hyperparameters) is
        untouched.

    Examples:
        >>> import jax, eqxpurify as ep
        >>> model = {"w": ep.Param(shape=(3, 2)),
        ...          "alpha": ep.Param(prior=ep.LogNormal(3.0, 0.1))}
        >>> model = ep.normal(model, key=jax.random.key(0))
        >>> model["w"].latent.shape, bool(model["alpha"].value > 0)
        ((3, 2), True)
    """
    _check_key(key)
    nodes = resolved(Nodes(model, "ep.normal"), "ep.normal")
    params = [nodes.nodes[k] for k in nodes.params()]
    latents = _draws(key, params)
    where = nodes.params()

    whitened: dict[int, bool] = {}  # by prior (many Params share one)

    def draw(j: int, p: Param) -> Param:
        latent = latents[j]
        prior = fields_of(p)["prior"]
        if id(prior) not in whitened:
            whitened[id(prior)] = prior.is_whitened
        if not whitened[id(prior)]:  # centred: its prior's hyperparameters drawn
            latent = _centred_draw(p, latent, key, j, nodes.paths[where[j]])
        return with_latent(p, latent)

    return map_params(nodes, draw)


def _check_key(key: Any) -> None:
    """Refuse a `key` that is not one PRNG key (checked on its static type)."""
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
    elif dtype == np.uint32 and shape is not None and len(shape) == 1:
        return  # a raw key, `jax.random.PRNGKey(0)`
    got = type(key).__name__
    if shape is not None:
        got += f" of shape {tuple(shape)} and dtype {dtype}"
    raise TypeError(
        f"`ep.normal(model, *, key)`: `key` must be one JAX PRNG key, e.g. "
        f"`key=jax.random.key(0)`; got {got}. For an ensemble of models, map "
        "over keys: `eqx.filter_vmap(lambda k: ep.normal(model, key=k))("
        "jax.random.split(key, n))`."
    )


def _centred_draw(p: Param, z: Array, key: Any, j: int, path: str) -> Array:
    """The latent of a centred Param whose value is a draw from its prior.

    From the Param's standard-normal draw `z` where the prior has a whitened
    transform, else sampled with its own key.
    """
    draw_latent = getattr(p.prior, "draw_latent", None)
    try:
        if draw_latent is None:
            raise ImproperPriorError("it has no `draw_latent`")
        return draw_latent(z, jax.random.fold_in(jax.random.fold_in(key, j), 1))
    except ImproperPriorError:
        raise ImproperPriorError(
            f"`ep.normal`: the Param at `{path}` has an improper prior "
            f"({prior_str(p.prior)}), which cannot be drawn from. Initialise it "
            "otherwise: `ep.zeros(model)`, `ep.set_value(model, where, value)`, or "
            "a value in the model, e.g. `ep.Param(1.0, prior=ep.Flat(low=0.0))`."
        ) from None


def log_prior(model: object, *, allow_plain: bool = False) -> Float[Array, ""]:
    """The log prior density of every Param latent: the space samplers work in.

    For a whitened Param (the default) the latent's density is standard normal;
    for a centred one (`whiten=False`, `ep.Centred`, `ep.Flat`) it is
    `prior.log_prob(value) + log|J|` of the bijection onto the prior's support.
    With whitened Params only, this is the sum of standard-normal log densities
    of the latents, exactly as before centred Params existed. This is the log
    prior density of the model in latent space (the space `ep.ravel`,
    optimisers and samplers work in). The result has the widest latent dtype (at
    least float32). For the density of the physical values, see `ep.log_prob`.
    A pytree without Params or trainable arrays has log prior 0.

    Trainable plain arrays (an `eqx.nn` network beside the physics) have no
    prior, so the density is improper in them: they are refused, naming their
    paths, unless `allow_plain=True` counts them with a flat prior on purpose.
    The `params` dict of `ep.partition` is all plain arrays: pass the model,
    e.g. `ep.log_prior(ep.combine(params, rest))`.

    Arguments:
        model: the model.
        allow_plain: accept trainable plain arrays (flat, improper prior).

    Examples:
        >>> import eqxpurify as ep
        >>> round(float(ep.log_prior(ep.zeros({"z": ep.Param(shape=(2,))}))), 4)
        -1.8379
    """
    nodes = Nodes(model, "ep.log_prior")
    require_priors(nodes, "ep.log_prior", allow_plain)
    everything = require_concrete(nodes, "ep.log_prior")
    dtype = common_dtype([p.dtype for p in everything])
    params = [p for p in everything if p.prior.is_whitened]
    others = [p for p in everything if not p.prior.is_whitened]
    if params:
        count = sum(math.prod(p.latent.shape) for p in params)
        total = sum(
            jnp.sum(jnp.square(jnp.asarray(p.latent).astype(dtype))) for p in params
        )
        const = jnp.asarray(count * standard_normal_logpdf_constant(), dtype)
        out = -0.5 * total + const
    else:
        out = jnp.zeros((), dtype)
    for p in others:  # centred: log p(value) + log|J|, from the prior
        lp = p.prior.latent_log_prob(jnp.asarray(p.latent))
        out = out + jnp.sum(lp).astype(dtype)
    return out


def log_prob(model: object, *, allow_plain: bool = False) -> Float[Array, ""]:
    """The log prior density of the model's physical values.

    This is the sum over Params of `prior.log_prob(value)`. For a hierarchical
    model each Param's density is conditional on the current values of its
    prior's Params, so the sum is the joint density. It equals
    `ep.log_prior(model)` minus the log-Jacobian of the map from latents to
    values. Use it to compare with densities written in physical space (numpyro,
    `jax.scipy.stats`); optimise and sample with `ep.log_prior`. Trainable
    plain arrays are refused unless `allow_plain=True`, as for `ep.log_prior`.

    Examples:
        >>> import eqxpurify as ep
        >>> round(float(ep.log_prob({"x": ep.Param(0.0, prior=ep.Normal(0, 2))})), 4)
        -1.6121
    """
    nodes = Nodes(model, "ep.log_prob")
    require_priors(nodes, "ep.log_prob", allow_plain)
    params = require_concrete(nodes, "ep.log_prob")
    dtype = common_dtype([p.dtype for p in params])
    total = jnp.zeros((), dtype)
    for p in params:
        total = total + jnp.sum(p.prior.log_prob(p.value)).astype(dtype)
    return total
