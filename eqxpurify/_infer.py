"""Shape inference: the sizes a model's Params take from its input.

`ep.infer_shapes(model, x)` runs the model once under `jax.eval_shape` (no
FLOPs, no values). Each `@ep.unwrapped` method that is called sees its
module's Params whose shape holds `ep.INPUT` and gives them the size of the
last axis of its first argument; the model comes back with those Params
abstract (concrete shapes, no values yet), ready for `ep.normal`.
"""

from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._nodes import Nodes
from ._param import Param, with_latent
from ._pending import PendingShape
from ._unwrap import RESOLVERS
from ._wrapper_base import is_wrapper, shape_str

__all__ = ["infer_shapes"]

_M = TypeVar("_M")


def _pending(node: Any) -> bool:
    return isinstance(node, Param) and isinstance(node.latent, PendingShape)


def _own_pending(module: Any) -> list[Param]:
    """The waiting Params of `module` itself, not of its submodules."""

    def stop(node: Any) -> bool:
        return is_wrapper(node) or (isinstance(node, eqx.Module) and node is not module)

    return [x for x in jax.tree.leaves(module, is_leaf=stop) if _pending(x)]


class _Resolver:
    """Resolves sizes while the model runs; `found` maps Param ids to shapes."""

    def __init__(self) -> None:
        self.found: dict[int, tuple[int, ...]] = {}

    def __call__(self, module: Any, args: tuple) -> Any:
        own = _own_pending(module)
        if own:
            x = args[0] if args else None
            dims = getattr(x, "shape", None)
            if dims is None or len(dims) < 1:
                raise ValueError(
                    f"`ep.infer_shapes`: `{type(module).__name__}` holds a Param "
                    "whose shape has `ep.INPUT`, the last axis of its input, but "
                    "its method was called without an array as its first argument "
                    f"(got {type(x).__name__}). Declare that size explicitly."
                )
            size = int(dims[-1])
            for p in own:
                assert isinstance(p.latent, PendingShape)
                shape = p.latent.resolve(size)
                known = self.found.setdefault(id(p), shape)
                if known != shape:
                    raise ValueError(
                        f"`ep.infer_shapes`: a Param of `{type(module).__name__}` "
                        f"gets shape {shape_str(shape)} from one call and "
                        f"{shape_str(known)} from another (inputs of different "
                        "sizes): a shared module must see inputs of one size."
                    )
        nodes = Nodes(module, "ep.infer_shapes")
        filled = []
        for node in nodes.nodes:
            if isinstance(node, Param) and node.is_abstract:
                if not _pending(node):
                    node = with_latent(node, jnp.zeros(node.latent.shape, node.dtype))
                elif id(node) in self.found:
                    shape = node.prior.latent_shape(self.found[id(node)])
                    node = with_latent(node, jnp.zeros(shape, node.dtype))
            filled.append(node)
        return nodes.unflatten(filled)


def infer_shapes(model: _M, *args: Any, **kwargs: Any) -> _M:
    """Resolve every `ep.INPUT` size of a model from one example input.

    Runs `model(*args, **kwargs)` under `jax.eval_shape`: nothing is computed,
    and `args` may be arrays or `jax.ShapeDtypeStruct`s. A Param declared with
    `ep.INPUT` in its shape (`ep.Param(shape=(16, ep.INPUT))`) takes the size of
    the last axis of the first argument of the `@ep.unwrapped` method of the
    module that holds it, so a composite model (serial, parallel, a block
    reused) is written without hand-computed sizes.

    Arguments:
        model: a callable model (usually an `eqx.Module`).
        *args: an example input, as the model is called.
        **kwargs: further keyword arguments of the call.

    Returns:
        The model with those Params abstract (their shapes known, no values):
        initialise it with `ep.normal` or `ep.zeros`.

    Raises:
        ValueError: naming the path of a Param the call did not reach (its
            module's method is not `@ep.unwrapped`, or not called), or a shared
            module called with inputs of different sizes.

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp, eqxpurify as ep
        >>> class Dense(eqx.Module):
        ...     w: ep.Param
        ...     def __init__(self, out):
        ...         self.w = ep.Param(shape=(out, ep.INPUT))
        ...     @ep.unwrapped
        ...     def __call__(self, x):
        ...         return self.w @ x
        >>> model = ep.infer_shapes(Dense(4), jnp.zeros(3))
        >>> model.w
        Param(abstract, shape=(4, 3), prior=Normal(0, 1))
        >>> ep.normal(model, key=jax.random.key(0))(jnp.ones(3)).shape
        (4,)
    """
    resolver = _Resolver()
    RESOLVERS.append(resolver)
    try:
        jax.eval_shape(lambda *a, **k: model(*a, **k), *args, **kwargs)  # type: ignore[operator]
    finally:
        RESOLVERS.remove(resolver)
    nodes = Nodes(model, "ep.infer_shapes")
    out = []
    for k, node in enumerate(nodes.nodes):
        if _pending(node):
            shape = resolver.found.get(id(node))
            if shape is None:
                raise ValueError(
                    f"`ep.infer_shapes`: the Param at `{nodes.paths[k]}` (shape "
                    f"{shape_str(node.shape)}) was not reached: its size comes from "
                    "the input of its module's `@ep.unwrapped` method, and the "
                    "example call did not run one. Decorate the method that reads "
                    "it, or declare the size."
                )
            latent = node.latent
            prior = node.prior if latent.prior_fn is None else latent.prior_fn(shape)
            node = Param(
                shape=shape,
                dtype=latent.dtype,
                prior=prior,
                sharding=latent.sharding,
                name=node.name,
            )
        out.append(node)
    return nodes.unflatten(out)
