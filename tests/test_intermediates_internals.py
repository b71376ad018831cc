"""The JAX internals behind taps: quarantined in one module, and loud when missing.

Each internal that `eqxpurify/_intermediates/_primitive.py` looks up is forced
to fail (the attribute deleted, or its module made unimportable), the package
is imported afresh, and a harvest that relies on it must raise our
`JaxInternalsError` naming the internal, not run with a tap missing. The
parameter keys the harvester reads are checked on real traces of the public
functions that emit each higher-order primitive.
"""

import ast
import importlib
import pathlib
import re
import sys
import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import eqxpurify as ep
from eqxpurify._intermediates import _kinds, _primitive

from .conftest import (
    raises_and_keeps,
)

PACKAGE = pathlib.Path(ep.__file__).parent
INTERNAL_PREFIXES = ("jax.interpreters", "jax.extend", "jax._src")


def _fresh(monkeypatch):
    """Import `eqxpurify._intermediates` afresh (restored after the test).

    Without the jaxtyping import hook: its runtime checks resolve annotations
    by qualified name, to the classes of the first import."""
    finders = [f for f in sys.meta_path if "jaxtyping" not in type(f).__module__]
    monkeypatch.setattr(sys, "meta_path", finders)
    for name in list(sys.modules):
        if name.startswith("eqxpurify._intermediates"):
            monkeypatch.delitem(sys.modules, name)
    package = importlib.import_module("eqxpurify._intermediates")
    return package, sys.modules["eqxpurify._intermediates._primitive"]


def _energy_forces(package):
    """`test_grad_inside_model`'s harvest: taps in a scan and a checkpoint,
    under a `jax.grad` inside the harvested function (needs every rule)."""
    tap = package.intermediate

    def energy(x):
        def step(c, xi):
            tap(jnp.sin(xi), name="site")
            return c + jnp.sin(xi) ** 2, None

        e = lax.scan(step, 0.0, x)[0]
        return jax.checkpoint(lambda y: tap(y, name="ckpt") * 1.0)(e)

    def forces(x):
        return -jax.grad(energy)(x)

    return package.intermediates(forces)(np.float32([0, 1, 2]))


def test_fresh_import_harvests():
    # The harness itself: a fresh import with nothing forced works.
    with pytest.MonkeyPatch.context() as mp:
        package, _ = _fresh(mp)
        _, values = _energy_forces(package)
    assert set(values) == {"site", "ckpt"}
    np.testing.assert_allclose(values["site"], np.sin([0, 1, 2]), rtol=1e-6)


@pytest.mark.parametrize(
    "module, attr, need", _primitive.LOOKUPS, ids=lambda x: str(x).rsplit(".")[-1]
)
def test_missing_internal_is_our_error(monkeypatch, module, attr, need):
    monkeypatch.delattr(importlib.import_module(module), attr)
    package, primitive = _fresh(monkeypatch)
    internal = re.escape(f"`{module}.{attr}`")
    match = rf"needs the JAX internal {internal}.*tested with jax \d"
    with pytest.raises(primitive.JaxInternalsError, match=match):
        _energy_forces(package)
    x = jnp.arange(3.0)
    if need == primitive.TAP:
        with pytest.raises(primitive.JaxInternalsError, match=r"A tap needs"):
            package.intermediate(x, name="x")
        with pytest.raises(primitive.JaxInternalsError, match=internal):
            package.Intermediate(name="s")(x)
        return
    # Taps still run when nobody harvests. (Not checked for a `jax._src`
    # internal: deleting it breaks JAX itself.)
    assert package.intermediate(x, name="x") is x
    if not module.startswith("jax._src"):
        f = jax.jit(jax.grad(lambda y: package.intermediate(y**2, name="y").sum()))
        np.testing.assert_array_equal(f(x), 2 * x)


@pytest.mark.parametrize("module", sorted({m for m, _, _ in _primitive.LOOKUPS}))
def test_unimportable_internal_module_is_our_error(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)
    package, primitive = _fresh(monkeypatch)
    first = next(a for m, a, _ in primitive.LOOKUPS if m == module)
    match = rf"needs the JAX internal {re.escape(f'`{module}.{first}`')}"
    with pytest.raises(primitive.JaxInternalsError, match=match):
        _energy_forces(package)


def test_rule_table_that_refuses_a_rule_is_our_error(monkeypatch):
    ad = importlib.import_module("jax.interpreters.ad")
    monkeypatch.setattr(ad, "primitive_jvps", types.MappingProxyType({}))
    package, primitive = _fresh(monkeypatch)
    with pytest.raises(primitive.JaxInternalsError, match="ad.primitive_jvps"):
        package.intermediate(jnp.ones(2), name="x")


def test_renamed_parameter_key_is_our_error(monkeypatch):
    keys = _kinds.PARAM_KEYS["scan"] + ("num_kernels",)
    monkeypatch.setitem(_kinds.PARAM_KEYS, "scan", keys)
    monkeypatch.setattr(_kinds, "_KINDS", {})
    match = (
        r"^`ep.intermediates` needs the JAX internal `parameter `num_kernels` of the "
        r"`scan` primitive`.*tested with jax"
    )
    with pytest.raises(_primitive.JaxInternalsError, match=match):
        ep.intermediates(lambda x: ep.intermediate(x, name="x"))(1.0)


def test_unrecognised_primitive_is_our_error(monkeypatch):
    monkeypatch.setitem(_kinds.SAMPLES, "scan", lambda x: x + 1)
    monkeypatch.setattr(_kinds, "_KINDS", {})
    match = (
        r"^`ep.intermediates` needs the JAX internal `the primitive of `scan``.*"
        r"`scan` traces to 0 higher-order equations"
    )
    with pytest.raises(_primitive.JaxInternalsError, match=match):
        ep.intermediates(lambda x: ep.intermediate(x, name="x"))(1.0)


def test_parameter_missing_at_harvest_is_our_error():
    (eqn,) = jax.make_jaxpr(_kinds.SAMPLES["scan"])(np.float32(1)).eqns
    renamed = types.SimpleNamespace(primitive=eqn.primitive, params={})
    match = r"^`ep.intermediates` needs the JAX internal `parameter `num_carry` of the"
    with pytest.raises(_primitive.JaxInternalsError, match=match):
        _kinds.param(renamed, "num_carry")
    # A key the harvester never declared for that kind is a bug of the library.
    with pytest.raises(AssertionError):
        _kinds.param(eqn, "branches")


# ----------------------------------------------------------------------------
# Parameter keys on real traces
# ----------------------------------------------------------------------------


def _higher_order_eqns(jaxpr):
    for eqn in jaxpr.eqns:
        subs = list(_primitive.sub_jaxprs(eqn))
        if subs:
            yield eqn
        for sub in subs:
            yield from _higher_order_eqns(sub)


@jax.custom_jvp
def _cjvp(x):
    return jnp.sin(ep.intermediate(x, name="j"))


_cjvp.defjvp(lambda p, t: (_cjvp(p[0]), jnp.cos(p[0]) * t[0]))


@jax.custom_vjp
def _cvjp(x):
    return jnp.sin(ep.intermediate(x, name="v"))


_cvjp.defvjp(lambda x: (_cvjp(x), x), lambda x, g: (jnp.cos(x) * g,))


def _scan(x):
    def step(c, xi):
        c = c * jnp.sin(x[0]) + ep.intermediate(xi, name="s")
        return c, 2 * c

    return lax.scan(step, x[0], x, reverse=True, unroll=2)[1].sum()


# Each kind and functions whose trace holds equations of that kind (the same
# public functions users write, with taps inside).
TRACES = {
    "inline": [jax.jit(lambda x: ep.intermediate(x, name="i") * 2)],
    "closed_call": [jax.grad(jax.checkpoint(_scan))],
    "checkpoint": [
        jax.checkpoint(
            lambda x: ep.intermediate(x, name="c").sum(),
            policy=jax.checkpoint_policies.nothing_saveable,
        ),
        jax.grad(jax.checkpoint(lambda x: jnp.sin(x).sum())),
    ],
    "scan": [_scan, jax.grad(_scan), jax.vmap(_scan, in_axes=1)],
    "cond": [
        lambda x: lax.switch(jnp.argmax(x[:, 0]), [lambda y: y, jnp.sin, jnp.cos], x),
        jax.grad(lambda x: lax.cond(x.sum() > 0, jnp.sin, jnp.cos, x).sum()),
    ],
    "while_loop": [lambda x: lax.while_loop(lambda c: c.sum() < 99, jnp.exp, x)],
    "custom_jvp": [lambda x: _cjvp(x).sum(), jax.nn.relu],
    "custom_vjp": [lambda x: _cvjp(x).sum(), jax.vmap(_cvjp)],
}


@pytest.mark.parametrize("kind", list(_kinds.PARAM_KEYS))
def test_parameter_keys_exist_on_real_primitives(kind):
    assert set(TRACES) | {"tap"} == set(_kinds.PARAM_KEYS)
    x = np.float32([0.5, -1.0, 2.0]).reshape(3, 1) * np.ones((1, 2), np.float32)
    if kind == "tap":
        eqns = jax.make_jaxpr(lambda x: ep.intermediate(x, name="t"))(x).eqns
        assert sorted(eqns[0].params) == sorted(_kinds.PARAM_KEYS["tap"])
        return
    for fn in TRACES[kind]:
        found = [
            eqn
            for eqn in _higher_order_eqns(jax.make_jaxpr(fn)(x).jaxpr)
            if _kinds.kind_of(eqn) == kind
        ]
        assert found, f"no `{kind}` equation in the trace of {fn}"
        for eqn in found:
            missing = set(_kinds.PARAM_KEYS[kind]) - set(eqn.params)
            assert not missing, (eqn.primitive.name, missing, sorted(eqn.params))


def test_every_higher_order_primitive_in_traces_is_known():
    # Traces of everyday code hold no higher-order primitive the harvester
    # cannot place (which would make a tap inside it an error).
    x = np.ones((3, 2), np.float32)
    for fns in TRACES.values():
        for fn in fns:
            for eqn in _higher_order_eqns(jax.make_jaxpr(fn)(x).jaxpr):
                assert _kinds.kind_of(eqn) is not None, eqn.primitive.name


# ----------------------------------------------------------------------------
# Quarantine: which modules touch JAX internals, and how
# ----------------------------------------------------------------------------


def _internal_uses(path):
    """(line, text) of each import or use of a JAX-internal module in `path`."""
    tree = ast.parse(path.read_text())
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names = [f"{node.value.id}.{node.attr}"]
        elif isinstance(node, ast.Call):
            names = [
                a.value
                for a in node.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
        else:
            continue
        if any(n.startswith(INTERNAL_PREFIXES) for n in names):
            uses.append((node.lineno, ast.unparse(node)))
    return uses


def test_only_the_primitive_module_touches_jax_internals():
    offenders = {
        str(path.relative_to(PACKAGE)): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_primitive.py" and (uses := _internal_uses(path))
    }
    assert offenders == {}


def test_each_internal_is_one_commented_lookup():
    path = PACKAGE / "_intermediates" / "_primitive.py"
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    assert not [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        if any(
            (
                a.name if isinstance(n, ast.Import) else f"{n.module}.{a.name}"
            ).startswith(INTERNAL_PREFIXES)
            for a in n.names
        )
    ], "import JAX internals through `_internal`, one lookup per line"
    lookups = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "_internal"
        ):
            module, attr = (a.value for a in node.args[:2])
            lookups.append((module, attr))
            above = node.lineno - 2  # (0-based) the line above the lookup
            while above > 0 and lines[above - 1].startswith("#"):
                above -= 1  # the first line of the comment block
            comment = lines[above]
            assert re.match(r"# jax \d+\.\d+\.\d+-\d+\.\d+\.\d+", comment), (
                f"{module}.{attr}: its comment must name the JAX versions it is for"
            )
    assert sorted(lookups) == sorted((m, a) for m, a, _ in _primitive.LOOKUPS)
    assert not _primitive._MISSING  # every internal is present in this JAX


def test_interpreter_reads_parameters_only_through_param():
    for name in (
        "_harvest.py",
        "_api.py",
        "_records.py",
        "_taps.py",
        "_batched_map.py",
    ):
        tree = ast.parse((PACKAGE / "_intermediates" / name).read_text())
        reads = [
            ast.unparse(n)
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and n.attr == "params"
        ]
        assert reads == [], name


def test_unharvested_tap_under_transformations_is_free():
    # With every internal present, the tap's rules leave nothing behind.
    def f(x):
        return jnp.sum(ep.intermediate(jnp.sin(x), name="h") ** 2)

    x = jnp.arange(6.0).reshape(2, 3)
    for g in (f, jax.grad(f), jax.vmap(f), eqx.filter_jit(jax.grad(f))):
        text = jax.jit(g).lower(x).as_text()
        assert "intermediate" not in text and "custom_call" not in text


def _internals_message(user, internal, problem):
    """The key phrases: who needs which internal, why it failed, and the fix."""
    return (
        f"{user} needs the JAX internal `{internal}`",
        f"which this JAX ({jax.__version__}) does not provide ({problem}).",
        f"eqxpurify's taps are tested with {_primitive.TESTED_JAX}",
        "install a JAX in that range, or an eqxpurify release that supports this JAX.",
    )


def test_missing_internal_message(monkeypatch):

    ad = importlib.import_module("jax.interpreters.ad")
    monkeypatch.delattr(ad, "primitive_jvps")
    package, primitive = _fresh(monkeypatch)
    assert [m[1] for m in primitive._MISSING] == ["jax.interpreters.ad.primitive_jvps"]
    msg = _internals_message(
        "A tap",
        "jax.interpreters.ad.primitive_jvps",
        "AttributeError: module 'jax.interpreters.ad' has no attribute "
        "'primitive_jvps'",
    )
    raises_and_keeps(
        lambda: package.intermediate(jnp.ones(2), name="x"),
        None,
        primitive.JaxInternalsError,
        *msg,
    )


def test_rule_table_refusing_a_rule_message(monkeypatch):

    batching = importlib.import_module("jax.interpreters.batching")
    monkeypatch.setattr(batching, "primitive_batchers", types.MappingProxyType({}))
    package, primitive = _fresh(monkeypatch)
    assert len(primitive._MISSING) == 1
    msg = _internals_message(
        "A tap",
        "jax.interpreters.batching.primitive_batchers",
        "TypeError: 'mappingproxy' object does not support item assignment",
    )
    raises_and_keeps(
        lambda: package.intermediate(jnp.ones(2), name="x"),
        None,
        primitive.JaxInternalsError,
        *msg,
    )


def test_changed_tracers_and_equations_are_our_error():
    # What a JAX whose partial-evaluation tracers or jaxpr equations lost an
    # attribute would hand the rules: the error names the internal.

    def message(user, internal, problem):
        return _internals_message(user, internal, f"AttributeError: {problem}")

    no_pval = "'object' object has no attribute 'pval'"
    raises_and_keeps(
        lambda: _primitive._partial_eval(None, object(), name="x", kind="tap", axes=()),
        None,
        _primitive.JaxInternalsError,
        *message("A tap", "partial evaluation tracers", no_pval),
    )
    eqn = types.SimpleNamespace(params={})
    no_primitive = "'types.SimpleNamespace' object has no attribute 'primitive'"
    raises_and_keeps(
        lambda: _primitive.bind_eqn(eqn, []),
        None,
        _primitive.JaxInternalsError,
        *message("`ep.intermediates`", "jaxpr equations", no_primitive),
    )


def test_missing_harvest_internal_message(monkeypatch):

    pe = importlib.import_module("jax.interpreters.partial_eval")
    monkeypatch.delattr(pe, "dce_rules")
    package, primitive = _fresh(monkeypatch)
    msg = _internals_message(
        "`ep.intermediates`",
        "jax.interpreters.partial_eval.dce_rules",
        "AttributeError: module 'jax.interpreters.partial_eval' has no attribute "
        "'dce_rules'",
    )
    f = package.intermediates(lambda x: package.intermediate(x * 2, name="y"))
    raises_and_keeps(lambda: f(jnp.ones(2)), None, primitive.JaxInternalsError, *msg)
