"""eqxpurify: Equinox models with Param, Fixed and Intermediate fields.

Everything is defined in private modules and re-exported here; `CONTRIBUTING.md`
maps them, in the one direction their imports run.
"""

import importlib.metadata

from ._abstract_prior import AbstractPrior as AbstractPrior
from ._centred import Centred as Centred
from ._check_prior import PriorCheck as PriorCheck, check_prior as check_prior
from ._filters import (
    combine as combine,
    is_trainable as is_trainable,
    partition as partition,
)
from ._fixed import Fixed as Fixed, is_fixed as is_fixed
from ._half_priors import (
    Exponential as Exponential,
    HalfCauchy as HalfCauchy,
    HalfNormal as HalfNormal,
)
from ._improper import Flat as Flat
from ._infer import infer_shapes as infer_shapes
from ._initialise import (
    log_prior as log_prior,
    log_prob as log_prob,
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
from ._mvn import MultivariateNormal as MultivariateNormal
from ._numpyro import Dist as Dist
from ._param import Param as Param, is_param as is_param
from ._pending import INPUT as INPUT
from ._priors import (
    LogNormal as LogNormal,
    Normal as Normal,
    Uniform as Uniform,
)
from ._quantile_priors import (
    Beta as Beta,
    Gamma as Gamma,
    HalfStudentT as HalfStudentT,
    InverseGamma as InverseGamma,
    StudentT as StudentT,
)
from ._ravel import (
    Unflatten as Unflatten,
    Unravel as Unravel,
    draws as draws,
    flatten as flatten,
    ravel as ravel,
)
from ._rest import Rest as Rest
from ._save import load as load, save as save
from ._sharing import share as share
from ._simplex import Dirichlet as Dirichlet, LKJCholesky as LKJCholesky
from ._summary import summary as summary
from ._surgery import (
    freeze as freeze,
    set_value as set_value,
    unfreeze as unfreeze,
)
from ._unwrap import unwrap as unwrap, unwrapped as unwrapped
from ._values import (
    load_values as load_values,
    named_params as named_params,
    values as values,
)
from ._wrap import wrap as wrap
from ._wrapper_base import is_wrapper as is_wrapper

__version__ = importlib.metadata.version("eqxpurify")

__all__ = [
    "INPUT",
    "AbstractPrior",
    "Beta",
    "Centred",
    "Dirichlet",
    "Dist",
    "Exponential",
    "Fixed",
    "Flat",
    "Gamma",
    "HalfCauchy",
    "HalfNormal",
    "HalfStudentT",
    "Intermediate",
    "InverseGamma",
    "LKJCholesky",
    "LogNormal",
    "MultivariateNormal",
    "Normal",
    "Param",
    "PriorCheck",
    "Rest",
    "StudentT",
    "Unflatten",
    "Uniform",
    "Unravel",
    "check_prior",
    "combine",
    "draws",
    "flatten",
    "freeze",
    "infer_shapes",
    "intermediate",
    "intermediates",
    "is_fixed",
    "is_intermediate",
    "is_param",
    "is_trainable",
    "is_wrapper",
    "load",
    "load_values",
    "log_prior",
    "log_prob",
    "named_params",
    "normal",
    "partition",
    "ravel",
    "save",
    "set_value",
    "shapes",
    "share",
    "summary",
    "unfreeze",
    "unwrap",
    "unwrapped",
    "values",
    "wrap",
    "zeros",
]
