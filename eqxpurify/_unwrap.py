"""Replace wrappers by plain arrays, so model code computes on values."""

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import jax
import jax.tree_util as jtu

from ._checks import check_model, field_error, inspect_node
from ._fixed import Fixed, check_storage
from ._nodes import is_wrapper_type
from ._param import Param
from ._param_value import value_at
from ._path_names import path_str
from ._pending import PendingShape
from ._sharing import tie_uses
from ._ties import is_shared
from ._wrapper_base import AbstractWrapper, abstract_error, is_wrapper

__all__ = ["unwrap", "unwrapped"]

_M = TypeVar("_M")

# While `ep.infer_shapes` runs, the function that resolves `ep.INPUT` sizes of a
# module from the arguments of its `@ep.unwrapped` method.
RESOLVERS: list[Callable[[Any, tuple], Any]] = []
_P = ParamSpec("_P")
_R = TypeVar("_R")


def unwrap(model: _M) -> _M:
    """The model with every `ep.Param` and `ep.Fixed` replaced by its value.

    Params become `prior.forward(latent)`, Fixed arrays become
    `stop_gradient(array)`; everything else (plain arrays, submodules, static
    fields, `ep.Intermediate` slots) is kept. Call it at the top of a model's
    `__call__` (or decorate the method with `ep.unwrapped`) so the model code
    reads plain arrays. Differentiating through it reaches the latents.

    Arguments:
        model: any pytree (usually an `eqx.Module`) whose wrappers are concrete.

    Returns:
        The same pytree with plain arrays in place of the wrappers.

    Raises:
        ValueError: if a Param or Fixed is still abstract; the message names its
            path in the model and how to initialise it.
        TypeError: if a field declared `ep.Param`/`ep.Fixed` holds something else
            (naming the path).

    Examples:
        >>> import eqxpurify as ep
        >>> model = {"alpha": ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1)),
        ...          "x": ep.Fixed(1.0)}
        >>> plain = ep.unwrap(model)
        >>> round(float(plain["alpha"]), 4), float(plain["x"])
        (2.5, 1.0)
        >>> ep.unwrap({"w": ep.Param(shape=(3,))})
        Traceback (most recent call last):
        ...
        ValueError: `ep.unwrap`: the Param at `['w']` is abstract (shape (3,), ...
    """
    check_model(model)
    problems: list[tuple[Any, str]] = []
    memo: dict[int, bool] = {}  # id of a prior -> whether it holds a shared Param
    shared = []  # non-empty once a shared Param is seen

    def visit(node: Any) -> bool:  # the field checks, in the same walk
        inspect_node(node, problems)
        if is_wrapper_type(type(node)):
            if not shared and is_shared(node, memo):
                shared.append(node)
            return True
        return False

    leaves, treedef = jtu.tree_flatten(model, is_leaf=visit)
    if problems:
        raise field_error(model, problems[0], "ep.unwrap")
    if shared:
        leaves, treedef = jtu.tree_flatten(tie_uses(model), is_leaf=is_wrapper)
    priors: dict[int, Any] = {}
    out = []
    for k, node in enumerate(leaves):
        if RESOLVERS and type(node) is Param and isinstance(node.latent, PendingShape):
            out.append(node)  # resolved by its own module's call
            continue
        if is_wrapper_type(type(node)):
            try:
                node = _plain_array(node, None, priors)
            except (TypeError, ValueError):
                # Again with the path, found only now, in the message.
                flat = jtu.tree_flatten_with_path(model, is_leaf=is_wrapper)[0]
                node = _plain_array(node, path_str(flat[k][0]), priors)
        out.append(node)
    return jax.tree.unflatten(treedef, out)


def _plain_array(
    node: AbstractWrapper, path: str | None, priors: dict[int, Any]
) -> Any:
    """What `ep.unwrap` puts in place of a wrapper: its value, checked."""
    if node.is_abstract:
        raise abstract_error(node, path, "ep.unwrap")
    if isinstance(node, Fixed):
        check_storage(node, path)
    return value_at(node, path or "", "ep.unwrap", priors)


def unwrapped(
    method: Callable[Concatenate[Any, _P], _R],
) -> Callable[Concatenate[Any, _P], _R]:
    """Decorate a module's method so that `self` arrives unwrapped.

    Inside the method every `ep.Param`/`ep.Fixed` field (of the module and its
    submodules) is a plain array, so the model code is written against values.
    Calling a model with abstract Params raises an error naming the path.

    Arguments:
        method: a method of an `eqx.Module` (usually `__call__`), or of a custom
            `ep.AbstractPrior`.

    Returns:
        The method, calling `method(ep.unwrap(self), ...)`.

    Examples:
        >>> import equinox as eqx, jax.numpy as jnp, eqxpurify as ep
        >>> class Line(eqx.Module):
        ...     slope: ep.Param
        ...     x: ep.Fixed
        ...
        ...     @ep.unwrapped
        ...     def __call__(self):
        ...         return self.slope * self.x  # plain arrays here
        >>> Line(ep.Param(2.0), ep.Fixed(jnp.array([0.0, 1.0, 2.0])))()
        Array([0., 2., 4.], dtype=float32)
        >>> Line(ep.Param(shape=()), ep.Fixed(jnp.zeros(3)))()
        Traceback (most recent call last):
        ...
        ValueError: `ep.unwrap`: the Param at `slope` is abstract (shape (), ...
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if RESOLVERS:  # `ep.infer_shapes` is running: sizes come from `args`
            self = RESOLVERS[-1](self, args)
        return method(unwrap(self), *args, **kwargs)

    return wrapper
