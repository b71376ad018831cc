"""The abstract wrapper every tagged field is, and helpers shared by its kinds.

The base names no kind: each kind (`ep.Param` in `_param`, `ep.Fixed` in
`_fixed`) declares its own traits (`AbstractWrapper`'s abstract class variables
and methods), which is all that this module and `_abstract_prior` ask of it.
"""

import abc
import dataclasses
from typing import Any, ClassVar, TypeVar

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array

from ._format import pdoc, treescope_constructor
from ._pending import PendingShape

__all__ = [
    "HOLDS",
    "AbstractWrapper",
    "DeletedArrayError",
    "abstract_error",
    "build",
    "check_name",
    "deleted_error",
    "fields_of",
    "has_data",
    "is_complete",
    "is_wrapper",
    "shape_str",
    "with_fields",
    "with_prior",
]

_W = TypeVar("_W", bound="AbstractWrapper")


def abstract_error(
    node: "AbstractWrapper", path: str | None = None, caller: str | None = None
) -> ValueError:
    """The one error for using an abstract wrapper: its path and how to fill it."""
    kind = type(node).__name__
    where = f" at `{path}`" if path else ""
    lead = f"`{caller}`: the" if caller else "The"
    if isinstance(fields_of(node).get(node._array_field), PendingShape):
        return ValueError(
            f"{lead} {kind}{where} has a shape that waits for an input "
            f"({shape_str(node.shape)}). Resolve it from one example input first: "
            "`model = ep.infer_shapes(model, x)`, then `ep.normal`/`ep.zeros`."
        )
    return ValueError(
        f"{lead} {kind}{where} is abstract (shape {shape_str(node.shape)}, no value "
        f"yet). {node._fill_hint}"
    )


def build(cls: type[_W], **fields: Any) -> _W:
    """Make a wrapper from already-validated fields, skipping `__init__`.

    This is what `jax.tree.unflatten` does for every `eqx.Module`; the library uses
    it on its fast paths (partition, init, ravel) where the fields are known good.
    """
    obj = object.__new__(cls)
    fields_of(obj).update(fields)
    return obj


def fields_of(node: eqx.Module) -> dict[str, Any]:
    """A module's fields by name, read past `eqx.Module.__getattribute__`.

    For the loops that visit every wrapper of a model on every call: the same
    values as `getattr`, a few times faster.
    """
    return object.__getattribute__(node, "__dict__")


def with_prior(node: "_W", prior: Any) -> "_W":
    """`node` (a Param or Fixed) with its `prior` field replaced, unvalidated."""
    return with_fields(node, prior=prior)


def with_fields(node: "_W", **changes: Any) -> "_W":
    """`node` (a Param or Fixed) with some fields replaced, unvalidated."""
    fields = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
    fields.update(changes)
    return build(type(node), **fields)


def check_name(name: Any, owner: str) -> str | None:
    """A wrapper's `name=`: None or a non-empty string."""
    if name is None or (isinstance(name, str) and name):
        return name
    raise TypeError(
        f"`{owner}(name=...)` must be a non-empty string (or None), got {name!r}."
    )


def shape_str(shape: tuple[Any, ...]) -> str:
    return (
        "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    )


_ARRAY_HINT = (
    "An `ep.{kind}` is a wrapper, not an array: read its array with `.value`, or "
    "let model code see plain arrays by decorating the method with `@ep.unwrapped` "
    "(or calling `ep.unwrap(model)` first)."
)


def _not_an_array(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        del args, kwargs
        raise TypeError(
            f"`{name}` is not defined on `ep.{type(self).__name__}`. "
            + _ARRAY_HINT.format(kind=type(self).__name__)
        )

    method.__name__ = name
    return method


_OPERATORS = (
    "__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ "
    "__floordiv__ __rfloordiv__ __mod__ __rmod__ __pow__ __rpow__ __matmul__ "
    "__rmatmul__ __neg__ __pos__ __abs__ __lt__ __le__ __gt__ __ge__ __getitem__ "
    "__array__ __jax_array__ __float__ __int__ __index__"
).split()


class AbstractWrapper(eqx.Module):
    """A tagged field of a model: `ep.Param` or `ep.Fixed`.

    Closed: not for subclassing. `ep.unwrap` replaces each wrapper by its `.value`.
    """

    # What each kind declares about itself (set by `Param` and `Fixed`).
    _array_field: ClassVar[str]  # the field holding its array
    _trains: ClassVar[bool]  # whether that array is trained
    _fill_hint: ClassVar[str]  # how to give an abstract one its values

    @property
    @abc.abstractmethod
    def value(self) -> Array:
        """The plain array that model code computes with."""

    @property
    @abc.abstractmethod
    def is_abstract(self) -> bool:
        """Whether this wrapper holds only a shape and dtype, no values yet."""

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """The shape of `.value`."""

    @property
    @abc.abstractmethod
    def dtype(self) -> Any:
        """The dtype of `.value`."""

    # Plain attribute lookup. `eqx.Module.__getattribute__` is Python code that
    # turns bound methods into pytrees; a wrapper has no methods but properties
    # and dunders (which it leaves alone), so it would change nothing here, yet
    # every flatten of a model runs it twice per wrapper (`obj.__dict__`): a
    # model of many Params flattened about 2-4x slower with it.
    __getattribute__ = object.__getattribute__

    # Readable text: physical values, via `print`/`repr` and Equinox's printer.
    @abc.abstractmethod
    def __repr__(self) -> str:
        """The wrapper by its physical value (its prior's text included)."""

    @property
    @abc.abstractmethod
    def _hyper_text(self) -> str:
        """Its text as a hyperparameter, inside the text of a prior.

        A Param prints whole (a hierarchical prior); a Fixed as its value.
        """

    @property
    @abc.abstractmethod
    def _shown_value(self) -> Any:
        """The value treescope shows for a wrapper that holds its array."""

    __pdoc__ = pdoc

    def __treescope_repr__(self, path: Any, subtree_renderer: Any) -> Any:
        """Render in treescope by physical value, prior, and whether it trains."""
        if not is_complete(self):  # a gradient or a filtered model: as it is
            name = self._array_field
            attributes = {name: getattr(self, name)}
            if getattr(self, "prior", None) is not None:
                attributes["prior"] = self.prior
            return treescope_constructor(self, attributes, path, subtree_renderer)
        if self.is_abstract:
            value: Any = jax.ShapeDtypeStruct(self.shape, self.dtype)
        else:
            value = self._shown_value
        attributes = {"value": value}
        prior = getattr(self, "prior", None)
        if prior is not None:
            attributes["prior"] = prior
        attributes["trains"] = self._trains
        return treescope_constructor(self, attributes, path, subtree_renderer)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__module__.startswith(f"{__package__}."):  # the library's kinds
            raise TypeError(
                "`ep.AbstractWrapper` is closed: the library's functions know "
                "exactly `ep.Param` and `ep.Fixed`. Put a Param or Fixed in a field "
                "of your own `eqx.Module` instead of subclassing."
            )


def _close_operators() -> None:
    for name in _OPERATORS:
        setattr(AbstractWrapper, name, _not_an_array(name))


_close_operators()


def is_wrapper(node: Any) -> bool:
    """Whether `node` is an `ep.Param` or `ep.Fixed`.

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.zeros(3))}
        >>> ep.is_wrapper(model["t"]), ep.is_wrapper(jnp.ones(2))
        (True, False)
        >>> jax.tree.map(lambda x: x.shape, model, is_leaf=ep.is_wrapper)
        {'t': (3,), 'w': (2,)}
    """
    return isinstance(node, AbstractWrapper)


def has_params(tree: Any) -> bool:
    """Whether `tree` (a prior, say) holds an `ep.Param` anywhere.

    An `ep.Param` is a wrapper whose array trains; a prior holding one is
    hierarchical.
    """
    return any(
        getattr(x, "_trains", False) for x in jax.tree.leaves(tree, is_leaf=is_wrapper)
    )


# What a wrapper's array field holds when it holds its array (or its abstract shape).
HOLDS = (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct, PendingShape)


def has_data(node: Any) -> bool:
    """Whether a wrapper holds its array (or its abstract shape).

    Equinox's filters and gradients keep the wrapper nodes of a model but put
    None (or anything else) in the places they leave out: such a wrapper is
    shown by what it holds instead of by its physical value.
    """
    return isinstance(node.__dict__.get(node._array_field), HOLDS)


def is_complete(node: Any) -> bool:
    """Whether a wrapper and every wrapper in its prior hold their arrays."""
    if not has_data(node):
        return False
    prior = node.__dict__.get("prior")
    return all(
        is_complete(x)
        for x in jax.tree.leaves(prior, is_leaf=is_wrapper)
        if is_wrapper(x)
    )


class DeletedArrayError(ValueError):
    """An array of the model was deleted (donated to a jitted function)."""


def deleted_error(path: str | None, what: str = "array") -> DeletedArrayError:
    """The error for an array that was deleted (donated to a jitted function)."""
    where = f" at `{path}`" if path else ""
    return DeletedArrayError(
        f"The {what}{where} has been deleted: its buffer was donated to a jitted "
        "function (`eqx.filter_jit(..., donate=...)`, `jax.jit(..., "
        "donate_argnums=...)`), and every model holding that same array lost it. "
        "A class default (`t: ep.Fixed = ep.Fixed(jnp.linspace(...))` in the class "
        "body) is one array shared by every instance of the class, so donating one "
        "model deletes it in all of them. Give each instance its own array: "
        "`t: ep.Fixed = eqx.field(default_factory=lambda: ep.Fixed(...))`, or set "
        "it in `__init__`; or do not donate a model that shares arrays."
    )
