"""Compare compiled programs: optimized HLO text, canonicalised, and op counts."""

import collections
import re
from collections.abc import Callable
from typing import Any

_METADATA = re.compile(r",?\s*metadata=\{[^}]*\}")
_NAME = re.compile(r"%[\w.\-]+")
_INSTR = re.compile(r"^\s*(ROOT\s+)?%[\w.\-]+\s*=\s*(.+?)\s+([a-z][\w\-]*)\(")
_TABLES = {"FileNames", "FunctionNames", "FileLocations", "StackFrames"}
_FRAME = re.compile(r",?\s*stack_frame_id=\d+")
_PARAM_NAME = re.compile(r"[\w.\-]+: ")
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


def compare(a: str, b: str) -> dict[str, Any]:
    """Whether two optimized HLO texts are the same program, and if not, how not."""
    ca, cb = canonical(a), canonical(b)
    oa, ob = op_counts(a), op_counts(b)
    only_a = oa - ob
    only_b = ob - oa
    fmt = lambda c: {f"{op} {shape}": n for (op, shape), n in sorted(c.items())}  # noqa: E731
    return {
        "identical_text": ca == cb,
        "same_op_counts": oa == ob,
        "ops_a": sum(oa.values()),
        "ops_b": sum(ob.values()),
        "only_in_a": fmt(only_a),
        "only_in_b": fmt(only_b),
    }
