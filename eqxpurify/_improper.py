"""`ep.Flat`: an improper prior flat in the value, always centred.

A flat density has no transform from a standard normal: a Param with it stores
its latent through the bijection onto the support (`ep.Centred`).
"""

from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._abstract_prior import AbstractPrior
from ._hyper import Hyper, broadcastable, compute, to_hyper, value_in
from ._hyper_checks import finite
from ._plumbing import is_traced
from ._support import Bijection

__all__ = ["Flat"]


class Flat(AbstractPrior):
    """An improper prior flat in the value: the real line, a half-line, an interval.

    `ep.Flat()` is flat on the real line, `ep.Flat(low=0.0)` on `(0, inf)`,
    `ep.Flat(high=1.0)` on `(-inf, 1)` and `ep.Flat(low, high)` on an interval.
    There is no transform from a standard normal to a flat density, so a Param
    with a flat prior is always centred: `ep.Param(prior=ep.Flat(...))` wraps
    it into `ep.Centred` (and `whiten=True` is an error). Its latent's log
    density is `log|J|` of the bijection (0 on the real line), so the density
    is flat in the value. `log_prob` is 0 inside the support (unnormalised) and
    -inf outside. An improper prior cannot be drawn from, so `ep.normal`
    refuses a model with one: initialise it with `ep.zeros`, `ep.set_value` or
    a value (`ep.Param(1.0, prior=ep.Flat(low=0.0))`).

    Arguments:
        low: the lower bound, or None (unbounded below).
        high: the upper bound, or None (unbounded above); `high > low`.

    Examples:
        >>> import eqxpurify as ep
        >>> ep.Param(2.0, prior=ep.Flat(low=0.0))
        Param(2, prior=Centred(Flat(low=0)))
    """

    low: Hyper | None
    high: Hyper | None

    def __init__(
        self,
        low: ArrayLike | Hyper | None = None,
        high: ArrayLike | Hyper | None = None,
    ):
        self.low = (
            None if low is None else finite(to_hyper(low, "low", "Flat"), "low", "Flat")
        )
        self.high = (
            None
            if high is None
            else finite(to_hyper(high, "high", "Flat"), "high", "Flat")
        )
        if self.low is not None and self.high is not None:
            broadcastable("Flat", low=self.low, high=self.high)
            lo, hi = self.low.value, self.high.value
            if not is_traced(lo, hi):
                if not np.all(np.asarray(hi) > np.asarray(lo)):
                    lo, hi = np.asarray(lo).tolist(), np.asarray(hi).tolist()
                    raise ValueError(
                        f"`Flat(low, high)` needs low < high; got low={lo}, high={hi}."
                    )

    @property
    def is_whitened(self) -> bool:
        return False

    def repr_parts(self) -> tuple[str, list[tuple[str | None, Any]]]:
        items = [(k, getattr(self, k)) for k in ("low", "high")]
        return "Flat", [(k, v) for k, v in items if v is not None]

    def bijector(self, dtype: Any = np.float32) -> Any:
        dtype = np.dtype(dtype)
        if self.low is None and self.high is None:
            return Bijection("real")
        if self.high is None:
            return _Shifted(value_in(self.low, dtype), 1.0)  # type: ignore[arg-type]
        if self.low is None:
            return _Shifted(value_in(self.high, dtype), -1.0)
        return Bijection(
            "interval", value_in(self.low, dtype), value_in(self.high, dtype)
        )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        raise TypeError(_NO_WHITENING)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        raise TypeError(_NO_WHITENING)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        inside = jnp.ones(xc.shape, bool)
        if self.low is not None:
            inside = inside & (xc >= value_in(self.low, ct))
        if self.high is not None:
            inside = inside & (xc <= value_in(self.high, ct))
        return jnp.where(inside, jnp.zeros((), ct), -jnp.inf)


_NO_WHITENING = (
    "`ep.Flat` has no transform from a standard normal (a flat density is "
    "improper): it is used centred, `ep.Centred(ep.Flat(...))`, which "
    "`ep.Param(prior=ep.Flat(...))` builds for you."
)


class _Shifted:
    """`x = bound + sign * exp(u)`: onto a half-line.

    As numpyro's `biject_to` of `greater_than` / `less_than`.
    """

    def __init__(self, bound: Array, sign: float):
        self.bound, self.sign = bound, sign

    def __call__(self, u: Array) -> Array:
        return self.bound + self.sign * jnp.exp(u)

    def inv(self, x: Array) -> Array:
        return jnp.log(self.sign * (x - self.bound))

    def log_abs_det_jacobian(self, u: Array, x: Array) -> Array:
        del x
        return u
