"""The interface every prior implements: a bijection from a standard normal."""

import abc
import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float

from ._format import pdoc, treescope_constructor, value_str
from ._plumbing import compute_dtype
from ._support import SUPPORTS, bijection_of, no_support
from ._wrapper_base import has_data, is_wrapper

__all__ = ["AbstractPrior", "check_support", "prior_str"]


class AbstractPrior(eqx.Module):
    """A bijection from a standard-normal latent `z` to a physical value `x`.

    Subclass it to define your own prior: implement `forward` (z -> x), `inverse`
    (x -> z) and `log_prob` (the density of `x`) as methods. Store each
    hyperparameter as an `ep.Fixed` (a constant: never trained) or an `ep.Param`
    (a hierarchical prior), and decorate the methods with `@ep.unwrapped` so they
    read plain arrays. A plain floating array field is refused, since every
    optimiser would train it. Methods live on the class, so rebuilding a model
    with an equal prior never recompiles (unlike a lambda stored per instance).

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> class MyExponential(ep.AbstractPrior):
        ...     rate: ep.Fixed | ep.Param
        ...
        ...     def __init__(self, rate):
        ...         self.rate = rate if ep.is_param(rate) else ep.Fixed(rate)
        ...
        ...     @ep.unwrapped
        ...     def forward(self, z):
        ...         return -jax.scipy.special.log_ndtr(-z) / self.rate
        ...
        ...     @ep.unwrapped
        ...     def inverse(self, x):
        ...         return -jax.scipy.special.ndtri(jnp.exp(-self.rate * x))
        ...
        ...     @ep.unwrapped
        ...     def log_prob(self, x):
        ...         return jnp.log(self.rate) - self.rate * x
        >>> p = ep.Param(0.5, prior=MyExponential(2.0))
        >>> round(float(p.value), 4)
        0.5
        >>> p
        Param(0.5, prior=MyExponential(2))
    """

    @abc.abstractmethod
    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        """Map a standard-normal latent to the physical value."""

    @abc.abstractmethod
    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """Map a physical value back to its standard-normal latent."""

    @abc.abstractmethod
    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """The log density of the physical value `x`, elementwise."""

    @property
    def is_whitened(self) -> bool:
        """Whether the latent is standard normal (`forward` is the exact transform).

        False for a centred prior (`ep.Centred`), whose latent lives on the real
        line through its support's bijection, and for priors with no transform
        from a standard normal (`ep.Flat`).
        """
        return True

    def latent_log_prob(self, latent: Float[Array, "..."]) -> Float[Array, "..."]:
        """The log density of the latent, elementwise: standard normal here.

        `ep.log_prior` sums it over every Param. A centred prior overrides it
        with `log_prob(value) + log|J|`.
        """
        ct = compute_dtype(latent.dtype)
        z = latent.astype(ct)
        return -0.5 * jnp.square(z) - 0.5 * math.log(2 * math.pi)

    def latent_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the latent of a value of `shape`: the same shape here.

        An event-shaped prior whose latent is smaller than its value overrides
        it, with `value_shape`: a Dirichlet on `K` categories has `K - 1`
        latents, an LKJ Cholesky factor of dimension `d` has `d (d - 1) / 2`.
        `ep.zeros`, `ep.shapes` and abstract Params make latents of this shape.
        """
        return shape

    def value_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the value of a latent of `shape` (inverse of `latent_shape`).

        `Param.shape` is the value's shape, so this is the same shape here.
        """
        return shape

    def bijector(self, dtype: Any = np.float32) -> Any:
        """The bijection from the real line onto this prior's support.

        What `ep.Param(prior=..., whiten=False)` stores its latent through: a
        callable `u -> x` with `inv` and `log_abs_det_jacobian(u, x)` (numpyro's
        transform interface). Built from the class attribute `support`
        (`"real"`, `"positive"` or `"interval"`); override it for another one.
        """
        return bijection_of(self, dtype)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The broadcast shape of this prior's hyperparameters.

        Those are its fields that hold an `ep.Fixed`, an `ep.Param` or an array
        directly; arrays inside a submodule (an all-Fixed network, say) are not
        hyperparameters of the Param's shape.
        """
        shapes: list[tuple[int, ...]] = []
        for field in dataclasses.fields(self):
            if field.metadata.get("static", False):
                continue
            x: Any = getattr(self, field.name, None)
            if is_wrapper(x):
                shapes.append(tuple(x.shape))
            elif eqx.is_array(x):
                shapes.append(tuple(np.shape(x)))
        return tuple(int(d) for d in np.broadcast_shapes(*shapes)) if shapes else ()

    # Readable text: physical values, via `print`/`repr` and Equinox's printer.
    def __repr__(self) -> str:
        return prior_str(self)

    __pdoc__ = pdoc

    def __treescope_repr__(self, path: Any, subtree_renderer: Any) -> Any:
        """Render in treescope with constant hyperparameters as their values."""
        attributes = {}
        for field in dataclasses.fields(self):
            x = getattr(self, field.name)
            if (
                is_wrapper(x)
                and not x._trains  # a constant (an `ep.Fixed`)
                and has_data(x)
                and not x.is_abstract
                and x.prior is None
            ):
                x = x.value
            attributes[field.name] = x
        return treescope_constructor(self, attributes, path, subtree_renderer)

    def __check_init__(self) -> None:
        for keypath, leaf in jtu.tree_flatten_with_path(self, is_leaf=is_wrapper)[0]:
            if eqx.is_inexact_array(leaf):
                where = jtu.keystr(keypath).lstrip(".")
                raise TypeError(
                    f"`{type(self).__name__}.{where}` is a plain floating array, "
                    "which every optimiser would train. Store a constant "
                    f"hyperparameter as `ep.Fixed(...)` (e.g. `self.{where} = "
                    "ep.Fixed(value)`), or an `ep.Param` for a hierarchical prior, "
                    "and read it in methods decorated with `@ep.unwrapped`."
                )


def check_support(prior: Any) -> None:
    """Raise unless `prior` has a bijection: a declared support or its own method.

    Reads no hyperparameter values, so abstract hyperparameters are fine.
    """
    own = type(prior).bijector is not AbstractPrior.bijector
    if not own and getattr(prior, "support", None) not in SUPPORTS:
        raise TypeError(no_support(prior))


def _hyper_str(x: Any) -> str:
    if is_wrapper(x):  # a Param as it prints, a constant (Fixed) by its value
        return x._hyper_text
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        return value_str(x)
    if hasattr(x, "latent_log_prob"):  # a prior, e.g. inside `ep.Centred`
        return prior_str(x)
    if x is None or isinstance(x, bool | int | float | complex | str):
        return repr(x)
    # Anything else (a function, a submodule) by its name: one line, always.
    name = getattr(x, "__name__", None)
    return name if isinstance(name, str) else type(x).__name__


def prior_str(prior: Any) -> str:
    """A prior with its hyperparameter values.

    For example `LogNormal(mean=3, sd=0.1)` or
    `Normal(Param(0.5, prior=Normal(0, 5)), 1)`.
    """
    parts = getattr(prior, "repr_parts", None)
    if parts is not None:  # a prior that names its arguments
        name, items = parts()
        args = ", ".join(
            _hyper_str(v) if k is None else f"{k}={_hyper_str(v)}" for k, v in items
        )
        return f"{name}({args})"
    try:
        fields = dataclasses.fields(prior)
    except TypeError:
        return repr(prior)
    args = ", ".join(_hyper_str(getattr(prior, f.name)) for f in fields)
    return f"{type(prior).__name__}({args})"
