"""Split a model into its trainable arrays and the rest, and combine them back.

Trainable means exactly Equinox's `eqx.is_inexact_array`: Param latents (also
those of Params nested in priors) and plain floating arrays outside wrappers.
Fixed data and constant hyperparameters are stored so that they are not
floating arrays (see `_storage`), so every tool agrees with this definition.
"""

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from ._abstract_prior import AbstractPrior
from ._fit import cast_leaf, leaf_error, mapped_over, probe
from ._fixed import Fixed
from ._nodes import Nodes, check_fields, path_str, wrapper_fields
from ._pending import PendingShape
from ._storage import is_array
from ._ties import shared_positions
from ._wrappers import (
    Param,
    abstract_error,
    check_model,
    latent_dtype_error,
    shape_str,
)

__all__ = ["Rest", "combine", "is_trainable", "partition", "split_model"]


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


_LATENT = jtu.GetAttrKey("latent")


class _Layout:
    """Where each leaf of a model goes.

    Static: hashed once and compared by identity first, so a jitted function
    taking `rest` pays nothing per call for it.
    """

    __slots__ = (
        "aliases",
        "arrays",
        "dtypes",
        "hash",
        "names",
        "probe",
        "shapes",
        "statics",
        "static_pos",
        "train_pos",
        "treedef",
    )

    def __init__(
        self, treedef, names, train_pos, shapes, dtypes, arrays, statics, aliases=()
    ):
        self.treedef = treedef
        # (position, trainable index): a later use of a shared Param takes the
        # first use's array.
        self.aliases: tuple[tuple[int, int], ...] = aliases
        self.names: tuple[str, ...] = names
        self.train_pos: tuple[int, ...] = train_pos
        self.shapes: tuple[tuple[int, ...], ...] = shapes
        self.dtypes: tuple[np.dtype, ...] = dtypes
        self.arrays: tuple[int, ...] = arrays
        self.static_pos, self.statics = statics
        # `(k, shape)`: the shape of `rest.arrays[k]`'s first array at the split
        # (not part of the key). Only an error path reads it (`_fit.mapped_over`).
        self.probe: tuple[int, tuple[int, ...]] | None = None
        self.hash = hash(
            (
                treedef,
                names,
                train_pos,
                shapes,
                dtypes,
                arrays,
                self.static_pos,
                aliases,
            )
        )

    def _key(self) -> tuple:
        return (
            self.treedef,
            self.names,
            self.train_pos,
            self.shapes,
            self.dtypes,
            self.arrays,
            self.static_pos,
            self.statics,
            self.aliases,
        )

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, _Layout) or self.hash != other.hash:
            return False
        return self._key() == other._key()

    def __repr__(self) -> str:
        return f"<{len(self.names)} trainable>"

    def __reduce__(self) -> tuple:
        # A tree structure does not pickle faithfully (Equinox's modules keep a
        # sentinel in it that unpickles as another object), and hashes of strings
        # differ between processes: pickle the model's skeleton and rebuild both.
        skeleton = jax.tree.unflatten(self.treedef, [_SLOT] * self.treedef.num_leaves)
        fields = (self.names, self.train_pos, self.shapes, self.dtypes, self.arrays)
        return (_unpickle_layout, (skeleton, fields, (self.static_pos, self.statics)))


class _Slot:
    """Stands in for every leaf of a pickled `_Layout`'s skeleton."""

    def __reduce__(self) -> str:
        return "_SLOT"


_SLOT = _Slot()


def _unpickle_layout(skeleton: Any, fields: tuple, statics: tuple) -> _Layout:
    treedef = jax.tree.structure(skeleton, is_leaf=lambda x: x is _SLOT)
    names, train_pos, shapes, dtypes, arrays = fields
    return _Layout(treedef, names, train_pos, shapes, dtypes, arrays, statics)


class Rest(eqx.Module):
    """Everything of a model but its trainable arrays (from `ep.partition`).

    Its only leaves are the model's non-trainable arrays (Fixed data and
    hyperparameters, stored as non-floating arrays; integers; keys), so it can
    be closed over by a jitted step or passed to one as an argument.

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.arange(3.0))}
        >>> params, rest = ep.partition(model)
        >>> rest
        Rest(<1 trainable, 3 other arrays>)
        >>> [x.dtype.name for x in jax.tree.leaves(rest)]  # no floating arrays
        ['uint32', 'uint32', 'uint32']
        >>> @jax.jit
        ... def loss(params):  # `rest` is closed over
        ...     m = ep.unwrap(ep.combine(params, rest))
        ...     return jnp.sum(m["w"]) * jnp.sum(m["t"])
        >>> loss(params)
        Array(6., dtype=float32)
    """

    arrays: list[Any]
    layout: _Layout = eqx.field(static=True)

    def __init__(self, arrays: list[Any], layout: _Layout):
        # Written out: a generated dataclass `__init__` makes Equinox flatten the
        # arguments on every construction, which costs a whole model's flatten.
        self.arrays = arrays
        self.layout = layout

    def __repr__(self) -> str:
        others = len(jax.tree.leaves(self.arrays))
        return f"Rest(<{len(self.layout.names)} trainable, {others} other arrays>)"


def split_model(model: Any, caller: str) -> tuple[list[Any], Rest]:
    """The trainable leaves of `model` in order, and the `Rest` that rebuilds it."""
    check_model(model)
    opaque, params = _constant_test()
    leaves, treedef = jtu.tree_flatten(model, is_leaf=opaque)
    if _unnamed_twice(params):  # one Param object in two places: refused, with paths
        Nodes(model, caller)
    keypaths, leaf_names, latent_pos, shared = _structure(model, treedef, opaque)
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
            _check_plain_array(model, keypaths[pos], names[k], caller)
    _check_structure(model, treedef, caller)
    suspicious = int | float | complex | jax.ShapeDtypeStruct | PendingShape
    if any(isinstance(x, suspicious) for x in statics):
        # A number where a wrapper was declared, or an abstract Param: find it.
        check_fields(model, caller)
        for pos in sorted(latent_pos):
            leaf = leaves[pos]
            if isinstance(leaf, jax.ShapeDtypeStruct | PendingShape):
                abstract = Param(shape=leaf.shape, dtype=leaf.dtype)
                raise abstract_error(abstract, leaf_names[pos], caller)
    layout = _Layout(
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


class _Bounded:
    """A dict of at most `size` entries, the oldest dropped first; thread-safe.

    Reads take no lock (a dict lookup is atomic); writes take one, so threads
    partitioning models of many structures at once never drop the same entry
    twice.
    """

    __slots__ = ("data", "lock", "size")

    def __init__(self, size: int):
        self.data: dict[Any, Any] = {}
        self.lock = threading.Lock()
        self.size = size

    def get(self, key: Any) -> Any:
        return self.data.get(key)

    def __contains__(self, key: Any) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    def put(self, key: Any, value: Any) -> None:
        with self.lock:
            while len(self.data) >= self.size:
                self.data.pop(next(iter(self.data)), None)
            self.data[key] = value


_STRUCTURES = _Bounded(64)  # key paths, names and shared uses of each structure


def _constant_test() -> tuple[Callable[[Any], bool], list[Any]]:
    """An `is_leaf` for the subtrees a split keeps whole: constant Fixed and priors.

    A Fixed (not frozen from a Param) and a prior whose leaves are all stored,
    non-trainable arrays hold nothing to train or check, so `split_model` and
    `rebuild` move them as one piece instead of flattening and rebuilding each of
    their nodes (the bulk of the Python-side cost of a model of many Params).
    Priors are usually shared between Params, so each is examined once per call.

    The list it comes with collects the Params it meets, for `_unnamed_twice`.
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


def _unnamed_twice(params: list[Any]) -> bool:
    """Whether one unnamed Param object is among `params` twice (`Nodes` names it).

    A named one may be: its uses are one parameter.
    """
    if len(set(map(id, params))) == len(params):
        return False
    seen: set[int] = set()
    for p in params:
        if p.name is None:
            if id(p) in seen:
                return True
            seen.add(id(p))
    return False


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


def _structure(
    model: Any, treedef: Any, is_leaf: Callable[[Any], bool]
) -> tuple[tuple[Any, ...], tuple[str, ...], frozenset[int], dict[int, int]]:
    """Per structure: key paths, training names, latents and shared uses.

    All depend on the tree structure only (a Param's `name` is static), so they
    are computed once for each (flattening with paths costs several times a
    plain flatten). A Param's latent is named by the Param's own path; any other
    leaf by its full path, so a field of a user's module that happens to be
    called `latent` keeps its name. The third is the set of leaf positions that
    are the latent of a Param; the last maps each leaf under a later use of a
    shared Param to the position of the same leaf under its first use.
    """
    cached = _STRUCTURES.get(treedef)
    if cached is not None:
        return cached
    flat = jtu.tree_flatten_with_path(model, is_leaf=is_leaf)[0]
    keypaths = tuple(k for k, _ in flat)
    owners = _latent_owners(model, is_leaf)
    latent_pos = frozenset(
        pos
        for pos, k in enumerate(keypaths)
        if k and k[-1] == _LATENT and tuple(k[:-1]) in owners
    )
    names = tuple(
        path_str(k[:-1] if pos in latent_pos else k) for pos, k in enumerate(keypaths)
    )
    shared = shared_positions(model, keypaths)
    _STRUCTURES.put(treedef, (keypaths, names, latent_pos, shared))
    return keypaths, names, latent_pos, shared


def _latent_owners(model: Any, is_leaf: Callable[[Any], bool]) -> set[tuple[Any, ...]]:
    """The key paths of the Params of `model` (those in priors included)."""
    owners: set[tuple[Any, ...]] = set()

    def stop(node: Any) -> bool:
        return isinstance(node, Param) or is_leaf(node)

    for keypath, node in jtu.tree_flatten_with_path(model, is_leaf=stop)[0]:
        if isinstance(node, Param):
            owners.add(tuple(keypath))
            prefix = (*keypath, jtu.GetAttrKey("prior"))
            owners.update((*prefix, *k) for k in _latent_owners(node.prior, is_leaf))
    return owners


_CHECKED = _Bounded(64)  # model structures whose wrappers hold arrays


def _check_structure(model: Any, treedef: Any, caller: str) -> None:
    """`check_fields` once per model structure.

    A latent or Fixed storage set to None (by `eqx.tree_at`) leaves no leaf to
    find: it changes the structure, so each new structure is checked once.
    Numbers in their place are leaves, found by `split_model` itself. The walk
    of `Nodes` refuses an unnamed Param object used twice and two different
    Params of one name; a model rebuilt by JAX holds no shared objects, so
    once per structure finds what a user built.
    """
    if treedef in _CHECKED:
        return
    check_fields(model, caller)
    Nodes(model, caller)  # a Param object in two places, a name used twice
    _CHECKED.put(treedef, None)


def _check_plain_array(model: Any, keypath: Any, path: str, caller: str) -> None:
    """Raise if a plain floating array sits in a field declared a wrapper.

    E.g. `eqx.tree_at(lambda m: m.t, model, jnp.arange(5.0))` on a field declared
    `ep.Fixed`: the array would train as an ordinary Equinox array, though the
    field says otherwise.
    """
    if not keypath or not isinstance(keypath[-1], jtu.GetAttrKey):
        return
    parent = model
    for key in keypath[:-1]:
        if isinstance(key, jtu.GetAttrKey):
            parent = getattr(parent, key.name)
        elif isinstance(key, jtu.SequenceKey):
            parent = parent[key.idx]
        elif isinstance(key, jtu.DictKey):
            parent = parent[key.key]
        else:
            return  # a custom node: nothing to check against
    name = keypath[-1].name
    if isinstance(parent, AbstractPrior):  # e.g. put there by `eqx.tree_at`
        raise TypeError(
            f"`{caller}`: the prior hyperparameter `{path}` is a plain floating "
            "array, which every optimiser would train. Put a wrapper there: "
            f"`ep.Fixed(value)` for a constant (an `ep.Param` for a hierarchical "
            "prior), or replace the whole prior (`eqx.tree_at(lambda m: ...prior, "
            "model, ep.Normal(...))`), which checks its hyperparameters."
        )
    declared = dict(wrapper_fields(type(parent))).get(name)
    if declared is None:
        return
    kinds = " | ".join(t.__name__ for t in declared)
    raise TypeError(
        f"`{caller}`: the field `{path}` is declared `{kinds}` but holds a plain "
        "floating array, which would train as an ordinary Equinox array. Wrap it: "
        f"`eqx.tree_at(where, model, ep.Fixed(array))` for data, `ep.Param(value, "
        "prior=...)` for a parameter, or set a value with `ep.set_value`."
    )


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
