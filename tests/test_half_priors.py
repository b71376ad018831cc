"""Priors on the half-line: HalfNormal, HalfCauchy and Exponential."""

import numpy as np

import eqxpurify as ep

from .conftest import (
    raises_and_keeps,
)

# Explicit float32: under x64 a Python float would make a float64 hyperparameter.
F32 = np.float32


def test_prior_whose_values_all_overflow():
    # Median log(2) / rate = 6.9e39 > float32 max: every draw is inf.
    raises_and_keeps(
        lambda: ep.Exponential(F32(1e-40)),
        None,
        ValueError,
        match=r"Exponential\(rate=.*float32",
    )
