"""Split a model into its trainable arrays and the rest, and combine them back.

Trainable means exactly Equinox's `eqx.is_inexact_array`: Param latents (also
those of Params nested in priors) and plain floating arrays outside wrappers.
Fixed data and constant hyperparameters are stored so that they are not
floating arrays (see `_storage`), so every tool agrees with this definition.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from ._abstract_prior import AbstractPrior
from ._checks import check_fields, check_model, check_plain_array
from ._fit import cast_leaf, leaf_error, mapped_over, probe
from ._fixed import Fixed
from ._latent import latent_dtype_error
from ._nodes import Nodes
from ._param import Param
from ._pending import PendingShape
from ._rest import Layout, Rest
from ._storage import is_array
from ._structure import check_structure, structure
from ._ties import unnamed_twice
from ._wrapper_base import abstract_error, shape_str

__all__ = ["combine", "is_trainable", "partition", "rebuild", "split_model"]


def is_trainable(leaf: Any) -> bool:
    """Whether a leaf of a model trains: a floating (or complex) array.

    Exactly `eqx.is_inexact_array`, with the dtype test cached (it runs on every
    leaf of a model).

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp, eqxpurify as ep
        >>> ep.is_trainable(jnp.ones(2)), ep.is_trainable(jnp.arange(2))
        (True, False)
        >>> model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.zeros(3))}
        >>> [ep.is_trainable(x) for x in jax.tree.leaves(model["t"])]  # stored bits
        [False]
        >>> eqx.filter(model, ep.is_trainable)["w"].latent
        Array([1., 1.], dtype=float32)
    """
    if not isinstance(leaf, jax.Array | np.ndarray | np.generic):
        return False
    return _inexact(leaf.dtype)


@functools.cache
def _inexact(dtype: Any) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.inexact))


def split_model(model: Any, caller: str) -> tuple[list[Any], Rest]:
    """The trainable leaves of `model` in order, and the `Rest` that rebuilds it."""
    check_model(model)
    opaque, params = _constant_test()
    leaves, treedef = jtu.tree_flatten(model, is_leaf=opaque)
    if unnamed_twice(params) is not None:  # refused by `Nodes`, with the paths
        Nodes(model, caller)
    keypaths, leaf_names, latent_pos, shared = structure(model, treedef, opaque)
    names, train_pos, shapes, dtypes, trainables = [], [], [], [], []
    array_pos, arrays, static_pos, statics = [], [], [], []
    aliases, trained = [], {}
    for pos, leaf in enumerate(leaves):
        if _KINDS.get(type(leaf)) in (1, 2):  # a constant Fixed or prior, kept whole
            array_pos.append(pos)
            arrays.append(leaf)
        elif shared and pos in shared and shared[pos] in trained:
            aliases.append((pos, trained[shared[pos]]))  # a later use: the first's
        elif is_trainable(leaf):
            trained[pos] = len(train_pos)
            names.append(leaf_names[pos])
            train_pos.append(pos)
            shapes.append(tuple(leaf.shape))
            dtypes.append(leaf.dtype)
            trainables.append(leaf)
        elif is_array(leaf):
            if pos in latent_pos:  # e.g. integers put there with `eqx.tree_at`
                raise latent_dtype_error(leaf_names[pos], leaf.dtype, caller)
            array_pos.append(pos)
            arrays.append(leaf)
        else:
            static_pos.append(pos)
            statics.append(leaf)
    for k, pos in enumerate(train_pos):
        if pos not in latent_pos:
            check_plain_array(model, keypaths[pos], names[k], caller)
    check_structure(model, treedef, caller)
    suspicious = int | float | complex | jax.ShapeDtypeStruct | PendingShape
    if any(isinstance(x, suspicious) for x in statics):
        # A number where a wrapper was declared, or an abstract Param: find it.
        check_fields(model, caller)
        for pos in sorted(latent_pos):
            leaf = leaves[pos]
            if isinstance(leaf, jax.ShapeDtypeStruct | PendingShape):
                abstract = Param(shape=leaf.shape, dtype=leaf.dtype)
                raise abstract_error(abstract, leaf_names[pos], caller)
    layout = Layout(
        treedef,
        tuple(names),
        tuple(train_pos),
        tuple(shapes),
        tuple(dtypes),
        tuple(array_pos),
        (tuple(static_pos), tuple(statics)),
        tuple(aliases),
    )
    layout.probe = probe(arrays)
    return trainables, Rest(arrays, layout)


def _constant_test() -> tuple[Callable[[Any], bool], list[Any]]:
    """An `is_leaf` for the subtrees a split keeps whole: constant Fixed and priors.

    A Fixed (not frozen from a Param) and a prior whose leaves are all stored,
    non-trainable arrays hold nothing to train or check, so `split_model` and
    `rebuild` move them as one piece instead of flattening and rebuilding each of
    their nodes (the bulk of the Python-side cost of a model of many Params).
    Priors are usually shared between Params, so each is examined once per call.

    The list it comes with collects the Params it meets, for `unnamed_twice`.
    """
    seen: dict[int, bool] = {}
    params: list[Any] = []

    def constant(node: Any) -> bool:
        kind = _KINDS.get(type(node))
        if kind is None:
            kind = _kind(type(node))
        if kind == 3:
            params.append(node)
            return False
        if kind == 0:
            return False
        if kind == 1:
            return _constant_fixed(node)
        known = seen.get(id(node))
        if known is None:
            known = seen[id(node)] = all(
                _constant_fixed(v) if _KINDS.get(type(v)) == 1 else _constant_tree(v)
                for v in object.__getattribute__(node, "__dict__").values()
            )
        return known

    return constant, params


_KINDS: dict[type, int] = {}  # 0: other, 1: Fixed, 2: a prior, 3: Param


def _kind(cls: type) -> int:
    kind = 1 if issubclass(cls, Fixed) else 2 if issubclass(cls, AbstractPrior) else 0
    kind = 3 if cls is Param else kind
    _KINDS[cls] = kind
    return kind


def _constant_fixed(node: Any) -> bool:
    fields = object.__getattribute__(node, "__dict__")
    return fields["prior"] is None and is_array(fields["stored"])


def _constant_tree(tree: Any) -> bool:
    return all(is_array(x) and not is_trainable(x) for x in jax.tree.leaves(tree))


def rebuild(rest: Rest, trainables: list[Any], caller: str = "ep.combine") -> Any:
    """The model of `rest` with these trainable leaves (in order).

    Each leaf must have the shape of the array it replaces and a floating dtype
    (cast to the array's own). Shapes and dtypes are static, so under a trace
    this costs nothing at run time.
    """
    layout = rest.layout
    leaves: list[Any] = [None] * (
        len(layout.train_pos)
        + len(layout.arrays)
        + len(layout.static_pos)
        + len(layout.aliases)
    )
    for pos, leaf, shape, dtype in zip(
        layout.train_pos, trainables, layout.shapes, layout.dtypes
    ):
        if isinstance(leaf, jax.Array):
            # One attribute for both (`.dtype` and `.shape` are each as slow): this
            # loop runs on every leaf of every eager `ep.combine`.
            aval = leaf.aval
            if aval.dtype != dtype:  # an update computed in another dtype
                leaf = cast_leaf(rest, pos, leaf, caller)
            got = aval.shape
        elif not isinstance(leaf, jax.ShapeDtypeStruct):  # (kept: a placeholder)
            leaf = cast_leaf(rest, pos, leaf, caller)  # a number or a numpy array
            got = leaf.shape
        else:
            got = leaf.shape
        if got != shape and not mapped_over(rest, got, shape):
            raise leaf_error(rest, pos, caller, f"has shape {shape_str(got)}")
        leaves[pos] = leaf
    for pos, leaf in zip(layout.arrays, rest.arrays):
        leaves[pos] = leaf
    for pos, leaf in zip(layout.static_pos, layout.statics):
        leaves[pos] = leaf
    for pos, k in layout.aliases:  # a later use of a shared Param
        leaves[pos] = leaves[layout.train_pos[k]]
    return jax.tree.unflatten(layout.treedef, leaves)


def partition(model: PyTree) -> tuple[dict[str, Any], Rest]:
    """Split a model into its trainable arrays, by path, and everything else.

    Trainable means what Equinox means (`eqx.is_inexact_array`): every Param
    latent (Params nested in priors included) and every plain floating array
    outside the wrappers, e.g. the weights of an `eqx.nn.MLP` beside your
    physics. Fixed data, constant prior hyperparameters, integers, keys and
    static fields never train.

    Arguments:
        model: any pytree (usually an `eqx.Module`) whose Params are concrete.

    Returns:
        `(params, rest)`. `params` is a plain dict from path
        (`"encoder.layers[0].weight"`; a Param is named by its own path) to array,
        so JAX flattens it in C++ and optax masks and labels can name entries.
        `rest` holds everything else; `ep.combine(params, rest)` rebuilds the
        model exactly. Pass `params` to `jax.grad`/`eqx.filter_grad`, optax and
        `eqx.apply_updates`; close over `rest` (or pass it) in a jitted step.

    Raises:
        ValueError: if a Param is abstract (naming its path).
        TypeError: if a field declared `ep.Param`/`ep.Fixed` holds something else
            (e.g. a number put there by `eqx.tree_at`), naming its path.

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"rate": ep.Param(0.5, prior=ep.LogNormal(1.0, 0.5)),
        ...          "t": ep.Fixed(jnp.linspace(0.0, 1.0, 4))}
        >>> params, rest = ep.partition(model)
        >>> list(params)
        ["['rate']"]
        >>> def loss(params):
        ...     m = ep.unwrap(ep.combine(params, rest))
        ...     return jnp.sum(jnp.exp(-m["rate"] * m["t"]))
        >>> grads = jax.grad(loss)(params)  # only the latent has a gradient
        >>> list(grads)
        ["['rate']"]
    """
    trainables, rest = split_model(model, "ep.partition")
    return dict(zip(rest.layout.names, trainables)), rest


def combine(params: Mapping[str, Any], rest: Rest) -> PyTree:
    """Rebuild a model from the two halves returned by `ep.partition`.

    Arguments:
        params: the trainable arrays by path (possibly updated by an optimizer;
            each is cast back to its Param's dtype if an update changed it).
        rest: the other half.

    Returns:
        The model.

    Examples:
        >>> import equinox as eqx, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"a": ep.Param(1.0), "b": ep.Fixed(jnp.array([1.0, 2.0]))}
        >>> params, rest = ep.partition(model)
        >>> bool(eqx.tree_equal(ep.combine(params, rest), model))
        True
        >>> ep.combine({"['a']": params["['a']"] + 1.0}, rest)["a"]  # an update
        Param(2, prior=Normal(0, 1))
    """
    if not isinstance(rest, Rest):
        raise TypeError(
            "`ep.combine(params, rest)`: `rest` must be the second result of "
            f"`ep.partition(model)`, got {type(rest).__name__}."
        )
    if not isinstance(params, Mapping):
        raise TypeError(
            "`ep.combine(params, rest)`: `params` must be the dict returned by "
            f"`ep.partition(model)` (or an update of it), got {type(params).__name__}."
        )
    names = rest.layout.names
    try:
        trainables = [params[name] for name in names]
    except KeyError:
        trainables = None
    if trainables is None or len(params) != len(names):
        missing = [n for n in names if n not in params]
        extra = [n for n in params if n not in set(names)]
        parts = []
        if missing:
            parts.append("missing " + ", ".join(f"`{n}`" for n in missing[:5]))
        if extra:
            parts.append("unknown " + ", ".join(f"`{n}`" for n in extra[:5]))
        raise ValueError(
            "`ep.combine(params, rest)`: `params` does not match `rest` ("
            + "; ".join(parts)
            + "). Both must come from the same `ep.partition(model)` call (an "
            "optimizer update keeps the keys of `params`)."
        )
    return rebuild(rest, trainables)
