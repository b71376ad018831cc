"""eqxpurify: Equinox models with Param, Fixed and Intermediate fields."""

import importlib.metadata

from ._filters import combine as combine, partition as partition
from ._init import (
    log_prior as log_prior,
    normal as normal,
    shapes as shapes,
    zeros as zeros,
)
from ._intermediates import (
    Intermediate as Intermediate,
    intermediate as intermediate,
    intermediates as intermediates,
    is_intermediate as is_intermediate,
)
from ._priors import (
    AbstractPrior as AbstractPrior,
    LogNormal as LogNormal,
    Normal as Normal,
    Uniform as Uniform,
)
from ._ravel import Unravel as Unravel, ravel as ravel
from ._unwrap import unwrap as unwrap, unwrapped as unwrapped
from ._wrappers import (
    AbstractWrapper as AbstractWrapper,
    Fixed as Fixed,
    Param as Param,
    is_fixed as is_fixed,
    is_param as is_param,
    is_wrapper as is_wrapper,
)

__version__ = importlib.metadata.version("eqxpurify")

__all__ = [
    "AbstractPrior",
    "AbstractWrapper",
    "Fixed",
    "Intermediate",
    "LogNormal",
    "Normal",
    "Param",
    "Uniform",
    "Unravel",
    "combine",
    "intermediate",
    "intermediates",
    "is_intermediate",
    "is_fixed",
    "is_param",
    "is_wrapper",
    "log_prior",
    "normal",
    "partition",
    "ravel",
    "shapes",
    "unwrap",
    "unwrapped",
    "zeros",
]
