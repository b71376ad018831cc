"""`ep.intermediates`: run a function and return the values its taps record."""

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._harvest import Harvester
from ._primitive import HARVEST, require, watch_binds
from ._records import finalize
from ._taps import Naming


class _Intermediates(eqx.Module):
    fn: Callable[..., Any]
    names: tuple[str, ...] | None = eqx.field(static=True)

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[PyTree, dict[str, Array]]:
        require(HARVEST)
        naming = Naming()
        fn = naming.name(self.fn, "`fn`")
        args = tuple(naming.name(a, f"argument {i}") for i, a in enumerate(args))
        kwargs = {k: naming.name(v, f"argument `{k}`") for k, v in kwargs.items()}
        naming.check()

        dynamic, static = eqx.partition((fn, args, kwargs), eqx.is_array)
        flat, treedef = jax.tree_util.tree_flatten(dynamic)
        out_store: list[Any] = []

        def flat_fn(*flat_args):
            fn_, args_, kwargs_ = eqx.combine(
                jax.tree_util.tree_unflatten(treedef, flat_args), static
            )
            out = fn_(*args_, **kwargs_)
            out_dynamic, out_static = eqx.partition(out, eqx.is_array)
            out_flat, out_tree = jax.tree_util.tree_flatten(out_dynamic)
            out_store[:] = [out_tree, out_static]
            return out_flat

        # Every tap bound while tracing (and no enclosing harvest sees them).
        bound: dict[str | None, None] = {}
        with watch_binds(lambda name: bound.setdefault(name)):
            closed = jax.make_jaxpr(flat_fn)(*flat)
        out_tree, out_static = out_store

        names = None if self.names is None else frozenset(self.names)
        harvester = Harvester(names, closed.jaxpr)
        harvester.check_kept(bound)
        if self.names is not None:
            sites = harvester.sites(closed.jaxpr)
            available = {n for n, _ in sites if n is not None}
            unknown = [n for n in self.names if n not in available]
            if unknown:
                unnamed = any(n is None for n, _ in sites)
                hint = (
                    " Some `ep.Intermediate` slots have no name: pass the model to "
                    "`ep.intermediates` itself or as an argument so that they are "
                    "named by their path."
                    if unnamed
                    else ""
                )
                raise ValueError(
                    f"`names` contains `{unknown[0]}`, which no tap or slot records in "
                    f"this call. Recorded names: {sorted(available)}.{hint}"
                )
        outs, records = harvester.run(closed.jaxpr, closed.consts, flat)
        entries = finalize(records)
        values = {name: value for name, (_, value) in entries.items()}
        if self.names is not None:
            values = {name: values[name] for name in self.names}
        outs = [o if isinstance(o, jax.Array) else jnp.asarray(o) for o in outs]
        out = eqx.combine(jax.tree_util.tree_unflatten(out_tree, outs), out_static)
        out = naming.unname(out)
        return out, values


def intermediates(
    fn: Callable[..., Any], *, names: Sequence[str] | None = None
) -> Callable[..., tuple[PyTree, dict[str, Array]]]:
    """Run `fn` and return its output together with the values it taps.

    `ep.intermediates(fn)(*args, **kwargs)` returns `(out, values)`, where `out`
    is `fn(*args, **kwargs)` and `values` maps each name recorded by
    [`eqxpurify.intermediate`][] taps and [`eqxpurify.Intermediate`][] slots to
    its value, in the order they were recorded (outer `jax.jit`, `jax.grad` or
    `jax.vmap` return it with sorted keys, as they do any dict). Slots without
    an explicit name are named by their path in `fn` (when `fn` is a model or a
    bound method of one) or in the argument that holds them, e.g.
    `encoder.layers[0].hidden`; Equinox wrappers such as `eqx.filter_vmap(model)`
    are not part of the path.

    The harvested function can be wrapped in `jax.jit` (`eqx.filter_jit` when
    `fn` is a model holding arrays), `jax.grad` (harvested values carry
    gradients; use `has_aux=True`) and `jax.vmap` (values gain the batch axis).
    Every call traces `fn` again, so wrap it in a jit for repeated use.
    Inside `fn`:

    - a tap inside `lax.scan` is stacked over steps (leading axis, one per
      enclosing scan, outermost first);
    - a tap inside `jax.vmap` gets the vmapped axes leading, after any scan
      axes (outermost vmap first); a value that does not depend on the vmapped
      inputs is not batched and is harvested once, without that axis;
    - a tap inside `lax.cond`/`lax.switch` must be recorded in every branch
      with the same shape and dtype, and gives the taken branch's value (a
      `jax.vmap` inside `fn` turns a cond with a batched predicate into both
      branches plus a select; their taps then need distinct names);
    - taps inside `jax.jit`, `jax.checkpoint`, `jax.custom_jvp` and
      `jax.custom_vjp` functions are harvested as if inlined; those inside a
      custom-derivative function carry no derivative (its custom rule defines
      the derivative of its outputs only);
    - a harvest inside `fn` (`ep.intermediates` called by `fn`) returns its
      values to `fn`, and its taps are recorded for this harvest too;
    - a tap that cannot be harvested raises an error naming it: inside a
      `lax.while_loop`, a primitive such as `shard_map` or `pallas_call`, a
      custom JVP rule or a custom VJP's `fwd`/`bwd` (which JAX runs only when
      it differentiates `fn`; harvest `jax.grad(fn)` to see those), or a tap of
      a tangent under reverse-mode autodiff.

    Each tap name may be recorded once per call; a slot called n > 1 times is
    harvested as its n values stacked along a new leading axis.

    Arguments:
        fn: the function or model to run. Array leaves of `fn` (when it is a
            pytree, such as an Equinox module) and of the arguments are traced;
            other leaves are static.
        names: the names to harvest, in the order to return them. Other taps
            then cost nothing and may sit anywhere (even in a
            `lax.while_loop`). A name that nothing records is an error.
            Defaults to every tap and slot.

    Returns:
        A function with the signature of `fn` that returns `(out, values)`,
        with `values` a `dict[str, Array]`.

    Examples:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import eqxpurify as ep
        >>> def f(x):
        ...     def step(c, xi):
        ...         c = c + xi
        ...         return c, ep.intermediate(c, name="running")
        ...     return jax.lax.scan(step, 0.0, x)[0]
        >>> out, values = jax.jit(ep.intermediates(f))(jnp.arange(4.0))
        >>> values["running"]
        Array([0., 1., 3., 6.], dtype=float32)
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
    if names is not None:
        if isinstance(names, str):
            raise TypeError(
                "`names` must be a sequence of names, not a single string; write "
                f"`names=[{names!r}]`."
            )
        names = tuple(names)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"`names` must contain strings, got {name!r}.")
        if len(set(names)) != len(names):
            raise ValueError(f"`names` contains a name twice: {list(names)}.")
    return _Intermediates(fn, names)
