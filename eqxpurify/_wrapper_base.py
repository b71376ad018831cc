"""The abstract wrapper every tagged field is, and helpers shared by its kinds."""

import abc
import dataclasses
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._abstract_prior import AbstractPrior
from ._flat import is_traced
from ._format import is_complete, pdoc, treescope_constructor, wrapper_str
from ._pending import PendingShape
from ._storage import storage_dtype

__all__ = [
    "AbstractWrapper",
    "abstract_error",
    "as_array",
    "build",
    "fields_of",
    "check_name",
    "default_float",
    "any_dtype",
    "check_host_data",
    "host_kind_error",
    "is_wrapper",
    "shape_str",
    "static_shape",
    "with_fields",
    "with_prior",
]

_W = TypeVar("_W", bound="AbstractWrapper")


def abstract_error(
    node: "AbstractWrapper", path: str | None = None, caller: str | None = None
) -> ValueError:
    """The one error for using an abstract wrapper: its path and how to fill it."""
    from ._param import Param

    kind = type(node).__name__
    where = f" at `{path}`" if path else ""
    lead = f"`{caller}`: the" if caller else "The"
    if isinstance(node, Param) and isinstance(node.latent, PendingShape):
        return ValueError(
            f"{lead} Param{where} has a shape that waits for an input "
            f"({shape_str(node.shape)}). Resolve it from one example input first: "
            "`model = ep.infer_shapes(model, x)`, then `ep.normal`/`ep.zeros`."
        )
    if isinstance(node, Param):
        fix = (
            "Initialise it first: `model = ep.normal(model, key=key)` or "
            "`model = ep.zeros(model)`."
        )
    else:
        fix = (
            "Fill it first: `ep.set_value(model, where, array)` or "
            "`eqx.tree_at(where, model, ep.Fixed(array))`."
        )
    return ValueError(
        f"{lead} {kind}{where} is abstract (shape {shape_str(node.shape)}, no value "
        f"yet). {fix}"
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


def any_dtype(dtype: Any) -> Any:
    """`np.dtype(dtype)`, or JAX's extended dtype (PRNG keys) as it is."""
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        return dtype
    return np.dtype(dtype)


def default_float() -> np.dtype:
    return jax.dtypes.canonicalize_dtype(float)


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


_KINDS = ("eqxpurify._param", "eqxpurify._fixed")  # the modules of Param and Fixed


class AbstractWrapper(eqx.Module):
    """A tagged field of a model: `ep.Param` or `ep.Fixed`.

    Closed: not for subclassing. `ep.unwrap` replaces each wrapper by its `.value`.
    """

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
    def __repr__(self) -> str:
        return wrapper_str(self)

    __pdoc__ = pdoc

    def __treescope_repr__(self, path: Any, subtree_renderer: Any) -> Any:
        """Render in treescope by physical value, prior, and whether it trains."""
        from ._fixed import Fixed
        from ._param import Param

        if not is_complete(self):  # a gradient or a filtered model: as it is
            name = "latent" if isinstance(self, Param) else "stored"
            attributes = {name: getattr(self, name)}
            if getattr(self, "prior", None) is not None:
                attributes["prior"] = self.prior
            return treescope_constructor(self, attributes, path, subtree_renderer)
        if self.is_abstract:
            value: Any = jax.ShapeDtypeStruct(self.shape, self.dtype)
        elif isinstance(self, Fixed) and self.stored.dtype != storage_dtype(self.kind):
            value = self.stored
        else:
            value = self.value
        attributes = {"value": value}
        prior = getattr(self, "prior", None)
        if prior is not None:
            attributes["prior"] = prior
        attributes["trains"] = isinstance(self, Param)
        return treescope_constructor(self, attributes, path, subtree_renderer)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ not in _KINDS:
            raise TypeError(
                "`ep.AbstractWrapper` is closed: the library's functions know "
                "exactly `ep.Param` and `ep.Fixed`. Put a Param or Fixed in a field "
                "of your own `eqx.Module` instead of subclassing."
            )


def _close_operators() -> None:
    for name in _OPERATORS:
        setattr(AbstractWrapper, name, _not_an_array(name))


_close_operators()


def static_shape(shape: Any, owner: str) -> tuple[int, ...]:
    """Validate a `shape=` argument: static, non-negative Python or NumPy ints.

    NumPy integers (`np.int64(8)`, common with data from pandas) are taken as
    Python ints.
    """
    given: Any = shape
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        given = (shape,)
    try:
        dims = tuple(given)
    except TypeError:
        dims = None
    if dims is None or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims
    ):
        raise TypeError(
            f"`{owner}`: `shape` must be a tuple of static Python ints, got "
            f"{shape!r}. Shapes cannot be traced values: pass them as Python ints "
            "(e.g. mark them static in `jax.jit`)."
        )
    if any(d < 0 for d in dims):
        raise ValueError(
            f"`{owner}`: `shape` must have non-negative dimensions, got {dims}."
        )
    return tuple(int(d) for d in dims)


def as_array(value: Any, dtype: Any, owner: str) -> Array:
    """`value` as an array (of `dtype` if given), refusing non-array objects.

    A finite number that becomes inf in the array's dtype is an error.
    """
    if value is None or isinstance(value, str | bytes | AbstractPrior):
        raise TypeError(
            f"`{owner}` needs an array or a number, got {type(value).__name__}."
        )
    if _on_host(value):
        check_host_data(value, dtype, owner)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            if dtype is None:
                if isinstance(value, jax.Array):
                    return value
                arr = jnp.asarray(value)
            else:
                arr = jnp.asarray(value, dtype)
    except OverflowError as e:  # a Python int too large for JAX's default int
        raise ValueError(
            f"`{owner}` got {e}. Pass an array of an explicit dtype (e.g. "
            "`np.int64`, with `jax_enable_x64`) or a float."
        ) from e
    except TypeError as e:
        raise TypeError(
            f"`{owner}` needs an array or a number, got {type(value).__name__}."
        ) from e
    message = (
        f"`{owner}`: the value overflows {arr.dtype} (it becomes inf). Pass a value "
        f"within {arr.dtype}'s range, or a wider `dtype=`."
    )
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        return arr
    if is_traced(value, arr):
        overflowed = jnp.isfinite(value) & ~jnp.isfinite(arr)
        return eqx.error_if(arr, jnp.any(overflowed), message)
    if _overflowed(value, arr):
        raise ValueError(message)
    return arr


def _on_host(value: Any) -> bool:
    return isinstance(value, np.ndarray | np.generic | list | tuple)


def host_kind_error(dtype: np.dtype, owner: str) -> TypeError | None:
    """The error for host data of a dtype JAX cannot hold, or None.

    Numbers (booleans, integers, floats, complex) are fine; dates, times,
    strings and Python objects are refused with how to convert them.
    """
    if dtype.kind in "biufc" or dtype.kind == "V":  # V: bfloat16, float8
        return None
    if dtype.kind in "mM":
        fix = (
            "JAX arrays hold numbers, not dates or times: convert them first, e.g. "
            "to seconds since a reference, `(t - t0) / np.timedelta64(1, 's')`."
        )
    elif dtype.kind in "USa":
        fix = (
            "JAX arrays hold numbers, not strings: encode them first, e.g. as "
            "category codes (`np.unique(x, return_inverse=True)[1]`)."
        )
    else:
        fix = (
            "JAX arrays hold numbers: convert it to a numeric dtype first, e.g. "
            "`np.asarray(x, dtype=float)` (a pandas column: `.to_numpy(float)`)."
        )
    return TypeError(f"`{owner}` got an array of dtype {dtype}. {fix}")


def check_host_data(value: Any, dtype: Any, owner: str) -> None:
    """Refuse host data that JAX would change: non-numbers, integers that wrap.

    Without `jax_enable_x64`, JAX stores 64-bit integers in 32 bits; a value
    outside that range would wrap around (`1.7e18 -> 908722176`), so it is an
    error, as a float overflowing its dtype is. Values that fit are kept.
    """
    try:
        host = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        return  # not host data JAX could take either: `jnp.asarray` says why
    error = host_kind_error(host.dtype, owner)
    if error is not None:
        raise error
    if host.dtype.kind not in "iu" or host.size == 0:
        return
    target = np.dtype(
        jax.dtypes.canonicalize_dtype(host.dtype if dtype is None else dtype)
    )
    if target.kind not in "iu":
        return
    info = np.iinfo(target)
    low, high = host.min(), host.max()
    if low >= info.min and high <= info.max:
        return
    bad = high if high > info.max else low
    if dtype is None:
        fix = (
            f"JAX stores {host.dtype} as {target} unless 64-bit mode is on. Enable "
            'it (`jax.config.update("jax_enable_x64", True)` at start-up), or '
            "pass a float `dtype=`."
        )
    else:
        fix = "Pass a wider integer `dtype=` (with `jax_enable_x64` for 64 bits)."
    raise ValueError(
        f"`{owner}` got {host.dtype} data with the value {bad}, outside the range "
        f"of {target} ([{info.min}, {info.max}]): it would wrap around. {fix}"
    )


def _overflowed(value: Any, arr: Array) -> bool:
    """Whether a concrete `value` has a finite number that is inf in `arr`."""
    source = getattr(value, "dtype", None)
    source = np.asarray(value).dtype if source is None else np.dtype(source)
    if source == arr.dtype or source.kind not in "fciubV":  # V: bfloat16, float8
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        given = np.isfinite(np.asarray(value))
        got = np.isfinite(np.asarray(arr))
    return bool(np.any(given & ~got))


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
