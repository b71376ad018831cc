"""Split a model into its trainable latents and everything else, and back."""

from typing import Any, NamedTuple, cast

import equinox as eqx
import jax
from jaxtyping import Array, PyTree

from ._paths import find_path
from ._wrappers import Param, build, check_model, is_param

__all__ = ["ParamNodes", "combine", "param_nodes", "partition", "replace_latents"]


class ParamNodes(NamedTuple):
    """A model flattened down to its Param nodes (everything else kept whole)."""

    nodes: list[Any]
    treedef: Any
    indices: list[int]  # positions in `nodes` that hold a Param

    @property
    def params(self) -> list[Param]:
        return [self.nodes[i] for i in self.indices]

    def latents(self) -> list[Array]:
        """The latents, for callers that have checked every Param is concrete."""
        return [cast(Array, self.nodes[i].latent) for i in self.indices]

    def path(self, model: Any, k: int) -> str:
        """The path, in `model`, of the `k`-th Param."""
        return find_path(model, self.indices[k], is_param)


def param_nodes(model: Any) -> ParamNodes:
    """Flatten `model` with Params as leaves, in deterministic path order."""
    check_model(model)
    nodes, treedef = jax.tree.flatten(model, is_leaf=is_param)
    indices = [i for i, node in enumerate(nodes) if isinstance(node, Param)]
    return ParamNodes(nodes, treedef, indices)


def replace_latents(flat: ParamNodes, latents: list[Any]) -> Any:
    """Rebuild the model of `flat` with each Param's latent replaced, in order."""
    nodes = list(flat.nodes)
    for i, latent in zip(flat.indices, latents, strict=True):
        nodes[i] = build(Param, latent=latent, prior=nodes[i].prior)
    return jax.tree.unflatten(flat.treedef, nodes)


def partition(model: PyTree) -> tuple[PyTree, PyTree]:
    """Split a model into its trainable latents and everything else.

    Arguments:
        model: any pytree (usually an `eqx.Module`) containing `ep.Param`s.

    Returns:
        `(params, rest)`. `params` has the model's structure with every Param
        latent kept and `None` everywhere else (Fixed data, plain arrays, and each
        Param's `prior`); `rest` is the complement (its Params have
        `latent=None`). `ep.combine(params, rest)` rebuilds the model. Pass
        `params` to `eqx.filter_grad`, `optax` and `eqx.apply_updates`: nothing
        in `rest`, Fixed data included, is ever differentiated or updated.
        Keeping `params` this small keeps the per-call cost of a jitted step low.

    Example:
        >>> import equinox as eqx, jax, jax.numpy as jnp
        >>> import eqxpurify as ep
        >>> model = {"rate": ep.Param(0.5, prior=ep.LogNormal(1.0, 0.5)),
        ...          "t": ep.Fixed(jnp.linspace(0.0, 1.0, 4))}
        >>> params, rest = ep.partition(model)
        >>> params["t"].array is None, rest["rate"].latent is None
        (True, True)
        >>> def loss(p):
        ...     m = ep.unwrap(ep.combine(p, rest))
        ...     return jnp.sum(jnp.exp(-m["rate"] * m["t"]))
        >>> grads = eqx.filter_grad(loss)(params)
        >>> grads["t"].array is None  # Fixed data gets no gradient at all
        True
    """
    flat = param_nodes(model)
    params_nodes: list[Any] = [None] * len(flat.nodes)
    rest_nodes = list(flat.nodes)
    for i in flat.indices:
        node = flat.nodes[i]
        params_nodes[i] = build(Param, latent=node.latent, prior=None)
        rest_nodes[i] = build(Param, latent=None, prior=node.prior)
    return (
        jax.tree.unflatten(flat.treedef, params_nodes),
        jax.tree.unflatten(flat.treedef, rest_nodes),
    )


def combine(params: PyTree, rest: PyTree) -> PyTree:
    """Rebuild a model from the two halves returned by `ep.partition`.

    Arguments:
        params: the trainable half (possibly updated by an optimizer).
        rest: the other half.

    Returns:
        The model, with each Param's latent taken from `params`.

    Example:
        >>> import equinox as eqx, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"a": ep.Param(1.0), "b": ep.Fixed(jnp.array([1.0, 2.0]))}
        >>> bool(eqx.tree_equal(ep.combine(*ep.partition(model)), model))
        True
    """
    try:
        return eqx.combine(params, rest)
    except ValueError as e:
        raise ValueError(
            "`ep.combine(params, rest)` got two trees of different structure. Both "
            "must come from the same `ep.partition(model)` call (an optimizer update "
            "keeps the structure of `params`)."
        ) from e
