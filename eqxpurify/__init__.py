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
from ._paths import (
    load_values as load_values,
    named_params as named_params,
    values as values,
)
from ._priors import (
    AbstractPrior as AbstractPrior,
    LogNormal as LogNormal,
    Normal as Normal,
    Uniform as Uniform,
)
from ._ravel import (
    AbstractRebuild as AbstractRebuild,
    Unflatten as Unflatten,
    Unravel as Unravel,
    flatten as flatten,
    ravel as ravel,
)
from ._summary import summary as summary
from ._surgery import (
    freeze as freeze,
    set_value as set_value,
    unfreeze as unfreeze,
    wrap as wrap,
)
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
    "AbstractRebuild",
    "AbstractWrapper",
    "Fixed",
    "Intermediate",
    "LogNormal",
    "Normal",
    "Param",
    "Unflatten",
    "Uniform",
    "Unravel",
    "combine",
    "flatten",
    "freeze",
    "intermediate",
    "intermediates",
    "is_fixed",
    "is_intermediate",
    "is_param",
    "is_wrapper",
    "load_values",
    "log_prior",
    "named_params",
    "normal",
    "partition",
    "ravel",
    "set_value",
    "shapes",
    "summary",
    "unfreeze",
    "unwrap",
    "unwrapped",
    "values",
    "wrap",
    "zeros",
]
