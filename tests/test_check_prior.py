"""`ep.check_prior`: a correct custom prior passes; planted mistakes are caught."""

import jax
import jax.numpy as jnp
import pytest
from jax.scipy.special import log_ndtr, ndtri

import eqxpurify as ep


def _from_nearer_tail(u):
    """`Phi^-1(sigmoid(u))`, from the nearer tail so float32 keeps both tails."""
    return jnp.where(
        u < 0, ndtri(jax.nn.sigmoid(jnp.minimum(u, 0))), -ndtri(jax.nn.sigmoid(-u))
    )


class Logistic(ep.AbstractPrior):
    """A correct custom prior: `x = loc + scale * logit(Phi(z))`."""

    loc: ep.Fixed | ep.Param
    scale: ep.Fixed | ep.Param

    def __init__(self, loc=0.0, scale=1.0):
        self.loc = loc if ep.is_param(loc) else ep.Fixed(loc)
        self.scale = scale if ep.is_param(scale) else ep.Fixed(scale)

    @ep.unwrapped
    def forward(self, z):
        return self.loc + self.scale * (log_ndtr(z) - log_ndtr(-z))

    @ep.unwrapped
    def inverse(self, x):
        return _from_nearer_tail((x - self.loc) / self.scale)

    @ep.unwrapped
    def log_prob(self, x):
        return jax.scipy.stats.logistic.logpdf(x, self.loc, self.scale)


class BadNormalisation(Logistic):
    @ep.unwrapped
    def log_prob(self, x):  # off by log(2): not normalised
        return jax.scipy.stats.logistic.logpdf(x, self.loc, self.scale) + jnp.log(2.0)


class OtherDistribution(Logistic):
    @ep.unwrapped
    def forward(self, z):  # a normal, not a logistic
        return self.loc + self.scale * 1.7 * z

    @ep.unwrapped
    def inverse(self, x):
        return (x - self.loc) / (self.scale * 1.7)


class BadInverse(Logistic):
    @ep.unwrapped
    def inverse(self, x):  # the inverse of a different scale
        return _from_nearer_tail((x - self.loc) / (1.1 * self.scale))


class InverseWithWrongJacobian(Logistic):
    @ep.unwrapped
    def inverse(self, x):  # right values, but a gradient cut off
        return _from_nearer_tail((jax.lax.stop_gradient(x) - self.loc) / self.scale)


_SLOW = (
    pytest.mark.slow
)  # (each compiles its own quantile; three stay in the default run)


@pytest.mark.slow
@pytest.mark.parametrize(
    "prior",
    [
        Logistic(1.0, 2.0),
        ep.Gamma(2.0, 3.0),
        ep.HalfNormal(jnp.array([0.5, 2.0])),
        pytest.param(ep.Beta(0.5, 2.0), marks=_SLOW),
        pytest.param(ep.StudentT(3.0, -1.0, 0.5), marks=_SLOW),
        pytest.param(ep.HalfStudentT(4.0, 2.0), marks=_SLOW),
        pytest.param(ep.InverseGamma(3.0, 1.0), marks=_SLOW),
    ],
    ids=lambda p: type(p).__name__,
)
def test_correct_priors_pass(prior, getkey):
    report = ep.check_prior(prior, key=getkey())
    assert isinstance(report, ep.PriorCheck)
    assert report.p_value >= 1e-4 and report.n == 20_000
    assert report.jacobian_error < 1e-2 and report.round_trip_error < 1e-2


def test_wrong_normalisation_is_caught(getkey):
    with pytest.raises(
        ValueError,
        match=r"check_prior\(BadNormalisation\)`: the change of variables fails at "
        r"z=.*standard normal log density is .*not normalised",
    ):
        ep.check_prior(BadNormalisation(), key=getkey())


def test_other_distribution_is_caught(getkey):
    with pytest.raises(ValueError, match=r"OtherDistribution\)`: the change of var"):
        ep.check_prior(OtherDistribution(), key=getkey())


def test_bad_inverse_is_caught(getkey):
    with pytest.raises(
        ValueError,
        match=r"BadInverse\)`: `inverse` does not undo `forward` at z=.*"
        r"inverse\(forward\(z\)\) = ",
    ):
        ep.check_prior(BadInverse(), key=getkey())


def test_wrong_inverse_jacobian_is_caught(getkey):
    with pytest.raises(ValueError, match=r"log-Jacobians of `forward` and `inverse`"):
        ep.check_prior(InverseWithWrongJacobian(), key=getkey())


def test_statistical_check_alone_catches_another_distribution(getkey):
    # With the pointwise checks made blind (a huge `atol`), Kuiper's test on the
    # draws still tells a normal forward from a logistic log_prob.
    with pytest.raises(ValueError, match=r"do not follow `exp\(log_prob\)`: Kuiper"):
        ep.check_prior(OtherDistribution(), key=getkey(), atol=1e6)
    # ... and passes the right one with the same blind tolerance.
    assert ep.check_prior(Logistic(), key=getkey(), atol=1e6).p_value >= 1e-4


def test_non_finite_forward_and_non_prior(getkey):
    class Overflows(Logistic):
        @ep.unwrapped
        def forward(self, z):
            return jnp.exp(1e3 * z)

    with pytest.raises(ValueError, match=r"`forward` is not finite at z="):
        ep.check_prior(Overflows(), key=getkey())
    # (Under the test suite's runtime type checking the annotation speaks first.)
    with pytest.raises(TypeError, match=r"prior"):
        ep.check_prior("normal", key=getkey())  # pyright: ignore[reportArgumentType]


def test_hierarchical_prior_is_checked_at_its_current_values(getkey):
    prior = ep.Gamma(ep.Param(2.0, prior=ep.LogNormal(2.0, 0.5)), 1.0)
    assert ep.check_prior(prior, key=getkey()).p_value >= 1e-4
