"""Sharing: one parameter used in several places of a model.

A model is a pytree, and a pytree is a tree: JAX copies whatever sits in two
places. So a shared Param is declared by a `name` (a static field, kept by
every JAX transformation): every Param of one name is one parameter, held by
its first use in path order. `Nodes` (paths, values, initialisation, surgery)
puts later uses back from the first, `ep.partition`/`ep.ravel` train the first
use's latent for all of them, and `ep.unwrap` computes every use from the first,
so gradients are summed over uses in every training idiom.
"""

from typing import Any, TypeVar

from jax import lax

from ._fixed import Fixed
from ._nodes import Nodes
from ._param import Param, with_latent
from ._path_names import ROOT
from ._wrapper_base import check_name, with_fields

__all__ = ["share", "tie_uses"]

_T = TypeVar("_T")


def share(tree: _T, name: str) -> _T:
    """Name every Param of `tree`, so that `tree` can be used in several places.

    Each Param (Params in priors and frozen Params included) that has no name
    yet is named `name` followed by its path in `tree` (just `name` for a
    Param), so a module placed in two fields of a model (a layer applied twice,
    an encoder and decoder sharing weights) stays one set of parameters: one
    latent each, trained once, gradients summed over the uses.

    Arguments:
        tree: a Param, or a module (any pytree) holding Params.
        name: the prefix of the names, a non-empty string unique in the model.

    Returns:
        `tree` with its Params named.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, eqxpurify as ep
        >>> layer = ep.share({"w": ep.Param(jnp.ones(2))}, "layer")
        >>> layer["w"].name
        "layer['w']"
        >>> model = ep.normal({"first": layer, "second": layer}, key=jax.random.key(0))
        >>> list(ep.values(model))  # one parameter, named by its first use
        ["['first']['w']"]
        >>> bool(jnp.all(model["first"]["w"].latent == model["second"]["w"].latent))
        True
    """
    check_name(name, "ep.share")
    nodes = Nodes(tree, "ep.share")
    out = []
    for k, node in enumerate(nodes.nodes):
        is_entry = isinstance(node, Param) or (
            isinstance(node, Fixed) and node.prior is not None
        )
        if is_entry and node.name is None:
            path = nodes.paths[k]
            full = name if path == ROOT else name + ("" if path[0] == "[" else ".")
            node = with_fields(node, name=full + ("" if path == ROOT else path))
        out.append(node)
    return nodes.unflatten(out)


def tie_uses(model: Any) -> Any:
    """`model` with every use of a shared Param computing from one latent.

    Each use reads the first use's value; where the uses hold distinct latent
    arrays (the stock Equinox loop differentiates each leaf of the model apart),
    each of them gets the gradient of all the uses, so an optimiser moves the
    copies alike and the parameter stays one. Where they hold one array (the
    model came from `ep.combine`), that array gets the summed gradient once.
    """
    nodes = Nodes(model, "ep.unwrap")
    out = list(nodes.nodes)
    for k, later in nodes.later.items():
        first = out[k]
        if not isinstance(first, Param) or first.is_abstract:
            continue
        latents: list[Any] = []
        for use in (first, *later):
            if not any(use.latent is z for z in latents):
                latents.append(use.latent)
        if len(latents) > 1:
            tied = lax.stop_gradient(first.latent)
            for z in latents:
                tied = tied + (z - lax.stop_gradient(z))
            out[k] = with_latent(first, tied)
    return nodes.unflatten(out)
