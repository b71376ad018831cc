"""Compare compiled programs: optimized HLO text, canonicalised, and op counts."""

import collections
import hashlib
import re
from collections.abc import Callable
from typing import Any

_METADATA = re.compile(r",?\s*metadata=\{[^}]*\}")
_NAME = re.compile(r"%[\w.\-]+")
_INSTR = re.compile(r"^\s*(ROOT\s+)?%[\w.\-]+\s*=\s*(.+?)\s+([a-z][\w\-]*)\(")
_TABLES = {"FileNames", "FunctionNames", "FileLocations", "StackFrames"}
_FRAME = re.compile(r",?\s*stack_frame_id=\d+")
_PARAM_NAME = re.compile(r"[\w.\-]+: ")
_DEF = re.compile(r"^(ROOT\s+)?(%[\w.\-]+)\s*=\s*(.*)$")
_ATTRS = re.compile(r",?\s*(frontend_attributes|origin|backend_config)=\{[^}]*\}")


def optimized_hlo(jitted: Callable, args: tuple) -> str:
    """The optimized HLO module XLA produces for `jitted(*args)`."""
    return jitted.lower(*args).compile().as_text()


def canonical(text: str) -> list[str]:
    """HLO text with metadata, names and module headers removed.

    Instruction and computation names are replaced by their order of first
    appearance, so two programs that differ only in naming compare equal.
    """
    out = []
    names: dict[str, str] = {}

    def rename(m: re.Match) -> str:
        return names.setdefault(m.group(0), f"%v{len(names)}")

    in_table = False
    for line in text.splitlines():
        line = line.strip()
        if line in _TABLES:  # source-location tables, not the program
            in_table = True
            continue
        if in_table:
            in_table = bool(line)
            continue
        if not line or line.startswith("HloModule"):
            continue
        line = _ATTRS.sub("", _METADATA.sub("", line))
        line = _FRAME.sub("", line)
        if line.endswith("{") and "=" not in line.split("(")[0]:  # a header
            line = _PARAM_NAME.sub("", line)
        line = _NAME.sub(rename, line)
        # computation names that are not %-prefixed (e.g. `calls=fused_computation`)
        line = re.sub(r"(calls|to_apply|condition|body)=[\w.\-]+", r"\1=_", line)
        line = re.sub(r"^[\w.\-]+ (\{|\()", r"_ \1", line)
        out.append(line)
    return out


def op_counts(text: str) -> collections.Counter:
    """How many instructions of each (opcode, result shape) the program has,
    parameters excluded (an argument's layout in the signature is not work)."""
    counts: collections.Counter = collections.Counter()
    for line in text.splitlines():
        m = _INSTR.match(line)
        if m and m.group(3) != "parameter":
            counts[(m.group(3), m.group(2).split("{")[0])] += 1
    return counts


def _structure_hash(lines: list[str]) -> str:
    """A hash of the ENTRY computation's dataflow graph: every instruction hashed
    with its operands (and called computations) replaced by their own hashes, and
    every computation hashed as the sorted multiset of its instructions' hashes
    plus its root's. Equal hashes mean the same instructions computing the same
    values from the same parameters, whatever order they are declared in."""
    hashes: dict[str, str] = {}
    digest = lambda text: hashlib.sha1(text.encode()).hexdigest()  # noqa: E731
    sub = lambda text: _NAME.sub(lambda m: hashes.get(m.group(0), "?"), text)  # noqa: E731
    name, is_entry, body, root, entry = None, False, [], "", ""
    for line in lines:
        m = _DEF.match(line)
        if m:
            h = digest(sub(m.group(3)))
            hashes[m.group(2)] = h
            body.append(h)
            if m.group(1):
                root = h
        elif line.endswith("{"):  # a computation's header
            head = line.split("(")[0].split()
            name, is_entry, body, root = head[-1], head[0] == "ENTRY", [], ""
        elif line == "}" and name is not None:
            hashes[name] = digest(root + "|" + ",".join(sorted(body)))
            if is_entry:
                entry = hashes[name]
            name = None
    return entry


def same_up_to_order(ca: list[str], cb: list[str]) -> bool:
    """Whether two canonical texts are the same dataflow graph, declared perhaps
    in another order (which renumbers every name after the first difference)."""
    return _structure_hash(ca) == _structure_hash(cb) != ""


def compare(a: str, b: str) -> dict[str, Any]:
    """Whether two optimized HLO texts are the same program, and if not, how not."""
    ca, cb = canonical(a), canonical(b)
    oa, ob = op_counts(a), op_counts(b)
    only_a = oa - ob
    only_b = ob - oa
    fmt = lambda c: {f"{op} {shape}": n for (op, shape), n in sorted(c.items())}  # noqa: E731
    return {
        "identical_text": ca == cb,
        "same_up_to_order": same_up_to_order(ca, cb),
        "same_op_counts": oa == ob,
        "ops_a": sum(oa.values()),
        "ops_b": sum(ob.values()),
        "only_in_a": fmt(only_a),
        "only_in_b": fmt(only_b),
    }
