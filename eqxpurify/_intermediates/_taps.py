"""Taps and slots: `ep.intermediate`, `ep.Intermediate`, and naming slots by path."""

import inspect
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._path_names import path_str
from ._primitive import bind_tap


def _check_array(x: Any, what: str) -> None:
    if not isinstance(
        x, (jax.Array, np.ndarray, np.generic, bool, int, float, complex)
    ):
        raise TypeError(
            f"{what} takes a single array, but got a {type(x).__name__}. To tap a "
            "pytree, tap each of its arrays with its own name."
        )


def intermediate(x: ArrayLike, *, name: str) -> Array:
    """Tap a value: return `x` unchanged, and let `ep.intermediates` harvest it.

    A tap adds no operation to the compiled program, so it costs nothing unless
    the function is run through [`eqxpurify.intermediates`][]. It works inside
    `jax.jit`, `jax.vmap`, `lax.scan`, `lax.cond`, `jax.checkpoint` and
    custom-derivative functions.

    Arguments:
        x: the array to record.
        name: the name it is harvested under. Each name may be recorded at most
            once per call of the harvested function.

    Returns:
        `x`, as a JAX array.

    Examples:
        >>> import jax.numpy as jnp
        >>> import eqxpurify as ep
        >>> def f(x):
        ...     h = ep.intermediate(jnp.sin(x), name="h")
        ...     return 2 * h
        >>> out, values = ep.intermediates(f)(jnp.array(0.5))
        >>> bool(values["h"] == jnp.sin(0.5))
        True
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty string, got {name!r}.")
    _check_array(x, "`ep.intermediate`")
    x = jnp.asarray(x)
    bind_tap(x, name=name, kind="tap", axes=())
    return x


class Intermediate(eqx.Module):
    """A named slot for an internal value of a module's computation.

    Declare it as a field and call it on the value to record; it returns the
    value unchanged. [`eqxpurify.intermediates`][] names each slot by its path
    in the model (e.g. `encoder.layers[0].hidden`) unless it has an explicit
    `name`. A slot has no array leaves, so it never becomes a parameter.

    A slot that is called several times in one call (a block applied in a
    Python loop) is harvested as the stack of its values along a new leading
    axis, in call order.

    Attributes:
        name: an explicit name, or `None` (the default) to use the slot's path.

    Examples:
        >>> import equinox as eqx
        >>> import jax.numpy as jnp
        >>> import eqxpurify as ep
        >>> class Block(eqx.Module):
        ...     hidden: ep.Intermediate = ep.Intermediate()
        ...     def __call__(self, x):
        ...         return jnp.tanh(self.hidden(2 * x))
        >>> class Model(eqx.Module):
        ...     block: Block = Block()
        ...     def __call__(self, x):
        ...         return self.block(x)
        >>> out, values = ep.intermediates(Model())(jnp.ones(3))
        >>> list(values)
        ['block.hidden']
    """

    name: str | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise TypeError(
                f"`name` must be a non-empty string or None, got {self.name!r}."
            )

    def __call__(self, x: ArrayLike) -> Array:
        """Record `x` in this slot and return it unchanged."""
        _check_array(x, "An `ep.Intermediate` slot")
        x = jnp.asarray(x)
        bind_tap(x, name=self.name, kind="slot", axes=())
        return x


def is_intermediate(x: Any) -> bool:
    """Whether `x` is an [`eqxpurify.Intermediate`][] slot.

    Usable as `is_leaf` with `jax.tree_util` and as a filter with Equinox.

    Examples:
        >>> import eqxpurify as ep
        >>> ep.is_intermediate(ep.Intermediate()), ep.is_intermediate(1.0)
        (True, False)
    """
    return isinstance(x, Intermediate)


# ----------------------------------------------------------------------------
# Naming slots by path
# ----------------------------------------------------------------------------

# The class `eqx.filter_jit` returns. It keeps a model's slots in its static
# part, out of reach of paths; tracing the wrapped function directly is the
# same computation, so the harvest unwraps it.
_JIT_WRAPPER: type = type(eqx.filter_jit(is_intermediate))


def _is_wrapper(x: Any) -> bool:
    """Whether `x` is an Equinox wrapper, e.g. `eqx.filter_vmap(model)`.

    Also `eqx.filter_grad(f)`, a bound method of a module, ... (Equinox's
    protocol: a module with a `__wrapped__` property). Its own fields are not
    part of the wrapped model's paths.
    """
    return isinstance(x, eqx.Module) and isinstance(
        getattr(type(x), "__wrapped__", None), property
    )


def _is_module_method(x: Any) -> bool:
    """A plain bound method of a module (`model.__call__`), which is no pytree."""
    return inspect.ismethod(x) and isinstance(x.__self__, eqx.Module)


def _has_slots(tree: Any) -> bool:
    leaves = jax.tree_util.tree_leaves(tree, is_leaf=is_intermediate)
    return any(is_intermediate(leaf) for leaf in leaves)


class Naming:
    """Names unnamed slots by their path; remembers which names it gave."""

    def __init__(self):
        self.given: dict[str, str] = {}  # name -> the root it was found in
        self.explicit: set[str] = set()

    def name(self, tree: Any, root: str) -> Any:
        """`tree` with each unnamed slot named by its path in `tree`."""
        return self._walk(tree, (), root)

    def _walk(self, tree: Any, prefix: tuple[Any, ...], root: str) -> Any:
        if is_intermediate(tree):
            return self._slot(tree, prefix, root)
        if isinstance(tree, _JIT_WRAPPER):
            wrapped = tree.__wrapped__
            return self._walk(wrapped, prefix, root) if _has_slots(wrapped) else tree
        if _is_module_method(tree):
            # A pytree instead, so that the model's arrays are traced and its
            # slots named by their paths in the model.
            owner = self._walk(tree.__self__, prefix, root)
            return eqx.Partial(tree.__func__, owner)
        if _is_wrapper(tree):
            # Keep the wrapper, but name the slots inside by the paths they
            # have in the wrapped model (`block.hidden`, not `_fun.block.hidden`).
            children, treedef = jax.tree_util.tree_flatten_with_path(
                tree, is_leaf=lambda x: x is not tree
            )
            new = [self._walk(child, prefix, root) for _, child in children]
            if all(n is c for n, (_, c) in zip(new, children, strict=True)):
                return tree
            return jax.tree_util.tree_unflatten(treedef, new)

        def is_leaf(x):
            return x is not tree and (
                is_intermediate(x)
                or isinstance(x, _JIT_WRAPPER)
                or _is_module_method(x)
                or _is_wrapper(x)
            )

        leaves, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
        new = [
            self._walk(leaf, prefix + tuple(path), root) if is_leaf(leaf) else leaf
            for path, leaf in leaves
        ]
        if all(n is leaf for n, (_, leaf) in zip(new, leaves, strict=True)):
            return tree
        return jax.tree_util.tree_unflatten(treedef, new)

    def _slot(self, slot: "Intermediate", path: tuple[Any, ...], root: str) -> Any:
        if slot.name is not None:
            self.explicit.add(slot.name)
            return slot
        if not path:
            raise ValueError(
                f"An `ep.Intermediate` slot is passed directly as {root}, so it has "
                "no path to be named by; give it a `name=`."
            )
        name = path_str(path)
        if self.given.get(name, root) != root:
            raise ValueError(
                f"Two `ep.Intermediate` slots would both be named `{name}` (one in "
                f"{self.given[name]}, one in {root}); give one of them an explicit "
                "`name=`."
            )
        self.given[name] = root
        return Intermediate(name=name)

    def check(self) -> None:
        clash = sorted(set(self.given) & self.explicit)
        if clash:
            raise ValueError(
                f"The `ep.Intermediate` slot at path `{clash[0]}` in "
                f"{self.given[clash[0]]} would be named `{clash[0]}`, which another "
                "slot already has as its explicit `name`; rename that slot."
            )

    def unname(self, tree: Any) -> Any:
        """Undo `name` on the slots of an output (e.g. a returned model)."""
        if not self.given:
            return tree

        def restore(leaf):
            if is_intermediate(leaf) and leaf.name in self.given:
                return Intermediate()
            return leaf

        return jax.tree_util.tree_map(restore, tree, is_leaf=is_intermediate)
