"""Where a jaxpr's taps are: a memoised search for their names and kinds.

The harvest asks it, for each higher-order equation, whether a wanted tap is
inside (and so whether to re-issue it), and whether a custom VJP is (whose
`bwd` it must watch).
"""

from typing import Any

from ._kinds import kind_of, param
from ._primitive import sub_jaxprs

__all__ = ["Sites"]


class Sites:
    """Memoised search of a jaxpr for its taps' (name, kind) and custom VJPs."""

    def __init__(self):
        self._cache: dict[int, tuple[Any, list[tuple[str | None, str]], bool]] = {}

    def _scan(self, jaxpr: Any) -> tuple[list[tuple[str | None, str]], bool]:
        hit = self._cache.get(id(jaxpr))
        if hit is not None and hit[0] is jaxpr:
            return hit[1], hit[2]
        sites, has_vjp = [], False
        for eqn in jaxpr.eqns:
            kind = kind_of(eqn)
            if kind == "tap":
                sites.append((param(eqn, "name"), param(eqn, "kind")))
                continue
            has_vjp = has_vjp or kind == "custom_vjp"
            for sub in sub_jaxprs(eqn):
                sub_sites, sub_vjp = self._scan(sub)
                sites.extend(sub_sites)
                has_vjp = has_vjp or sub_vjp
        self._cache[id(jaxpr)] = (jaxpr, sites, has_vjp)
        return sites, has_vjp

    def __call__(self, jaxpr: Any) -> list[tuple[str | None, str]]:
        return self._scan(jaxpr)[0]

    def has_custom_vjp(self, jaxpr: Any) -> bool:
        return self._scan(jaxpr)[1]
