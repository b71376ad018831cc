"""The interface every prior implements: a bijection from a standard normal."""

import abc
import math
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float

from ._flat import compute_dtype
from ._format import has_data, pdoc, prior_str, treescope_constructor
from ._support import SUPPORTS, bijection_of, no_support

__all__ = ["AbstractPrior", "check_support"]


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
        import dataclasses

        from ._wrappers import is_wrapper

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
        import dataclasses

        from ._wrappers import Fixed

        attributes = {}
        for field in dataclasses.fields(self):
            x = getattr(self, field.name)
            if (
                isinstance(x, Fixed)
                and has_data(x)
                and not x.is_abstract
                and x.prior is None
            ):
                x = x.value
            attributes[field.name] = x
        return treescope_constructor(self, attributes, path, subtree_renderer)

    def __check_init__(self) -> None:
        from ._wrappers import is_wrapper

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
