"""Mutation-test one eqxpurify module with mutmut, using that module's own tests.

Usage:
    python tools/mutate.py MODULE [TEST_FILES...] [options]

    python tools/mutate.py _priors
    python tools/mutate.py _filters --covered-only
    python tools/mutate.py _intermediates/_primitive --only '*batch*'
    python tools/mutate.py _ravel --keep /tmp/mut-ravel      # keep the copy
    python tools/mutate.py _ravel --dir /tmp/mut-ravel --only 'eqxpurify._ravel.*'

MODULE is a module of the package: `_priors`, `eqxpurify/_priors.py` or
`_intermediates/_harvest`. Without TEST_FILES the runner is the module's own
test files, found by name (`tests_for`: `tests/test_<module>.py` and
`tests/test_<module>_*.py`, else the files whose name shares a word with the
module's); `--list MODULE` (or `--list all`) prints them.

What it does:
1. Makes a throwaway copy of the repository: `git archive HEAD` (committed code)
   or, with `--worktree`, the working tree's tracked and untracked-not-ignored
   files (to try tests that are not committed yet).
2. Writes a `[tool.mutmut]` section into the copy's `pyproject.toml` that mutates
   ONLY `eqxpurify/<MODULE>.py` and runs only the given test files, with
   `-x -q -p no:cacheprovider -m "not slow"`.
3. Runs `mutmut run` in the copy (each mutant's tests in a fresh process forked
   from a JAX-free fork server: see `--isolation`), then prints the counts per
   status, the mutation score and the diff of every mutant that was not killed.

The copy is deleted afterwards unless `--keep DIR` is given; `--dir DIR` reuses a
kept copy (mutmut keeps its results there, so `--only NAME` re-runs just those
mutants, e.g. after writing a test that should kill them; use `--worktree` with
`--dir` to refresh the copy's tests from the working tree first).

Exit status: 0 when the score is at least `--fail-under` (default 0), else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "eqxpurify"
RECORD = REPO / "docs" / "mutation_record.json"


def _words(name: str) -> list[str]:
    """`_half_priors` -> ["half", "prior"]: a name's words, plural `s` dropped."""
    words = [w for w in re.split(r"[_/]+", name) if w]
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words]


def tests_for(key: str) -> list[str]:
    """A module's test files, found by their names (no table to keep).

    For `_save_header` (`key` as `module_key` gives it):
    1. the files named after the module: `test_save_header.py` and
       `test_save_header_*.py`; for a module of a subpackage also the
       subpackage's files (`_intermediates/_taps` -> `test_intermediates*.py`);
    2. if there are none, the files whose name shares a word with the module's,
       plurals aside (`_save_header` -> `test_save.py`, `_wrapper_base` ->
       `test_wrappers.py`).
    """
    files = sorted((REPO / "tests").glob("test_*.py"))
    stems = {f.stem.removeprefix("test_"): f for f in files}
    parts = [p.strip("_") for p in key.split("/")]
    prefixes = [parts[-1]] + parts[:-1]
    found = [
        f
        for stem, f in stems.items()
        if any(stem == p or stem.startswith(p + "_") for p in prefixes)
    ]
    if not found:
        own = set(_words(parts[-1]))
        found = [f for stem, f in stems.items() if own & set(_words(stem))]
    return [f"tests/{f.name}" for f in found]


# Imported once by mutmut's fork server. None of them starts a JAX backend; not
# eqxpurify (the test run's jaxtyping import hook must see it being imported) nor
# the test modules (collecting them builds arrays, which starts JAX).
PRELOAD = [
    "numpy",
    "scipy.special",
    "scipy.stats",
    "mpmath",
    "jax",
    "jax.numpy",
    "jax.scipy.special",
    "jax.scipy.stats",
    "equinox",
    "optax",
    "jaxtyping",
    "beartype",
    "hypothesis",
    "pytest",
]
PRELOAD_FILE = "mutmut_preload.txt"
SOURCE_FILE = "mutate_source.txt"  # what the copy was made from

PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", "-n", "0"]

# mutmut's exit-code -> status table (mutmut/stats.py), as the groups we report.
COLLECTION_ERROR = "killed at collection"
KILLED = {"killed", "timeout", "caught by type check", "segfault", COLLECTION_ERROR}


def module_path(module: str) -> str:
    """`_priors`, `eqxpurify/_priors.py` or `eqxpurify._priors` as a file path."""
    name = module.removesuffix(".py").replace(".", "/")
    name = name.removeprefix("eqxpurify/")
    return f"eqxpurify/{name}.py"


def list_tests(module: str) -> int:
    """Print each module's test files (`--list`); 1 if a module has none."""
    if module == "all":
        paths = sorted(p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("_*.py"))
        paths = [p for p in paths if not p.endswith("__init__.py")]
    else:
        paths = [module_path(module)]
    missing = 0
    for path in paths:
        tests = tests_for(module_key(path))
        missing += not tests
        print(f"{module_key(path)}: {' '.join(tests) or '(none)'}")
    return 1 if missing else 0


def module_key(path: str) -> str:
    """`eqxpurify/_intermediates/_harvest.py` -> `_intermediates/_harvest`."""
    return path.removeprefix("eqxpurify/").removesuffix(".py")


def head_commit() -> str:
    """The short hash of the checkout's HEAD."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()


def copy_repo(dest: Path, worktree: bool) -> None:
    """Copy the committed tree (or the working tree) of the repository to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    head = head_commit()
    what = "the working tree on commit" if worktree else "commit"
    (dest / SOURCE_FILE).write_text(f"{what} {head}\n")
    if not worktree:
        archive = subprocess.run(
            ["git", "archive", "HEAD"], cwd=REPO, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "x", "-C", str(dest)], input=archive, check=True)
        return
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if not src.is_file():  # deleted in the working tree but still tracked
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def toml_list(items: list[str]) -> str:
    """A TOML array of strings."""
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def write_config(dest: Path, args: argparse.Namespace, path: str, tests: list[str]):
    """Append the `[tool.mutmut]` table to the copy's pyproject.toml."""
    # Preloaded pytest plugins (hypothesis, jaxtyping via equinox) cannot be
    # assertion-rewritten; pytest warns, and the suite makes warnings errors.
    pytest_args = [*PYTEST_ARGS, "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    for nodeid in args.deselect:
        pytest_args += ["--deselect", nodeid]
    pyproject = dest / "pyproject.toml"
    text = pyproject.read_text()
    marker = "\n# --- tools/mutate.py ---\n"
    text = text.split(marker)[0]
    config = {
        "source_paths": toml_list(["eqxpurify"]),
        "only_mutate": toml_list([path]),
        "also_copy": toml_list(["tests"]),
        "pytest_add_cli_args": toml_list(pytest_args),
        "pytest_add_cli_args_test_selection": toml_list(tests),
        "mutate_only_covered_lines": "true" if args.covered_only else "false",
        "do_not_mutate_patterns": toml_list(
            [r"^\s*raise\b"] if args.no_messages else []
        ),
        "process_isolation": json.dumps(args.isolation),
        # The fork server imports the heavy libraries once (JAX is imported but
        # not started: XLA's thread pools would not survive a fork) and forks one
        # process per mutant, which imports eqxpurify and the tests itself.
        "forkserver_warmup": json.dumps("import"),
        "preload_modules_file": json.dumps(PRELOAD_FILE),
        # Every mutant's process imports JAX and collects its tests (seconds on a
        # busy machine) before the timed tests run: a constant margin for that.
        "timeout_constant": str(args.timeout_constant),
        "timeout_multiplier": str(args.timeout_multiplier),
        "debug": "true" if args.debug else "false",
    }
    (dest / PRELOAD_FILE).write_text("\n".join(PRELOAD) + "\n")
    table = "\n".join(f"{k} = {v}" for k, v in config.items())
    pyproject.write_text(text + marker + "[tool.mutmut]\n" + table + "\n")


def run_mutmut_cli(argv: list[str]) -> None:
    """The mutmut command line, with each mutant's tests run fastest first.

    mutmut's fork-server runner passes a mutant's tests in no particular order
    (its fork runner sorts them); with `-x`, the fastest test that fails a
    mutant ends its run.
    """
    from mutmut.__main__ import cli
    from mutmut.state import state
    from mutmut.workers.isolation import ForkServerRunner

    submit = ForkServerRunner.submit

    def submit_fastest_first(self, mutant_name, tests, *rest):
        durations = state().duration_by_test
        tests = sorted(tests, key=lambda t: durations.get(t, 0.0))
        return submit(self, mutant_name, tests, *rest)

    ForkServerRunner.submit = submit_fastest_first
    sys.argv = ["mutmut", *argv]
    cli()


def mutmut(dest: Path, *argv: str, capture: bool = False, nice: int = 0):
    """Run the mutmut command line in the copy `dest`."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--as-mutmut", *argv]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    # JAX's persistent compilation cache, kept in the copy: a mutant whose
    # programs are unchanged (most survivors) reuses the clean run's compilations.
    env = dict(
        os.environ,
        PYTHONDONTWRITEBYTECODE="1",
        JAX_COMPILATION_CACHE_DIR=str(dest / ".jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )
    env.pop("MUTANT_UNDER_TEST", None)
    return subprocess.run(
        cmd, cwd=dest, env=env, text=True, capture_output=capture, check=False
    )


def read_results(dest: Path, path: str) -> dict[str, int | None]:
    """Mutant name -> exit code of its test run (None: not run), from mutmut's meta."""
    meta = dest / "mutants" / (path + ".meta")
    with open(meta) as f:
        return json.load(f)["exit_code_by_key"]


def keep_verdicts(meta: Path, before: dict[str, int | None]) -> None:
    """Put back the verdicts of the mutants that an `--only` re-run did not run.

    mutmut forgets every verdict when the test selection changes (e.g. a test
    file is added), but more tests can only kill more mutants: a verdict kept
    from the earlier run still holds for its mutant.
    """
    with open(meta) as f:
        data = json.load(f)
    codes = data["exit_code_by_key"]
    for name, code in before.items():
        if codes.get(name) is None and code is not None:
            codes[name] = code
    with open(meta, "w") as f:
        json.dump(data, f, indent=4)


def status_of(code: int | None) -> str:
    """The mutmut name of an exit code ("killed", "survived", "timeout", ...).

    pytest's exit code 2 (mutmut: "check was interrupted by user") is, in these
    unattended runs, a kill of one of two kinds: a collection error (the mutant
    breaks building the test module's cases, e.g. a prior constructed in a
    `parametrize` list raises), or a failing test after which `-x` stops the
    pytest-xdist workers, which xdist reports as an interruption. Reported as
    "killed at collection".
    """
    from mutmut.stats import status_by_exit_code

    return COLLECTION_ERROR if code == 2 else status_by_exit_code[code]


def report(dest: Path, path: str, show: bool, elapsed: float) -> dict[str, Any]:
    """Print the counts, the score and the survivors' diffs; return the counts.

    The score is over the mutants that were checked: with `--only`, the others
    are listed as "not checked" and left out.
    """
    results = read_results(dest, path)
    by_status: dict[str, list[str]] = {}
    for name, code in sorted(results.items()):
        by_status.setdefault(status_of(code), []).append(name)
    checked = len(results) - len(by_status.get("not checked", []))
    detected = sum(len(v) for k, v in by_status.items() if k in KILLED)
    score = detected / checked if checked else 1.0
    print()
    print(f"== {path}: {len(results)} mutants, run for {elapsed / 60:.1f} min ==")
    for status in sorted(by_status):
        print(f"  {status:>22}: {len(by_status[status])}")
    print(f"  {'score':>22}: {detected}/{checked} = {100 * score:.1f}% killed")
    if show:
        for status, names in sorted(by_status.items()):
            if status not in KILLED and status != "not checked":
                print_diffs(dest, path, status, names)
    return {
        "mutants": len(results),
        "checked": checked,
        "killed": detected,
        "score": 100 * score,
        "minutes": round(elapsed / 60, 1),
        "not killed": {
            k: v for k, v in by_status.items() if k not in KILLED | {"not checked"}
        },
    }


RUNS_FILE = "mutate-runs.json"


def kept_runs(dest: Path) -> dict[str, float]:
    """The runs made in a kept copy: what each ran on, and its minutes."""
    runs = dest / RUNS_FILE
    return json.loads(runs.read_text()) if runs.is_file() else {}


def note_run(dest: Path, made_from: str, only: list[str], elapsed: float) -> None:
    """Add a run to the kept copy's list (a full run, or a re-run of some mutants).

    A re-run with `--worktree` ran the working tree's test files on the copy's
    library code; it is listed by the commit its tests came from.
    """
    runs = kept_runs(dest)
    if only:
        what = f"survivors re-run with the tests of commit {head_commit()}"
    else:
        what = f"full run on {made_from}"
    runs[what] = round(runs.get(what, 0.0) + elapsed / 60, 1)
    (dest / RUNS_FILE).write_text(json.dumps(runs, indent=1) + "\n")


def made_from_runs(runs: dict[str, float]) -> str:
    """What a kept copy's results were made from: its runs, oldest first."""
    if not runs:
        raise SystemExit("no run is noted in this copy: run it again to record it")
    return "; ".join(runs)


def record(path: str, tests: list[str], made_from: str, counts: dict) -> None:
    """Keep a run's counts in `RECORD`, keyed by module and test files.

    One entry per module, replaced by the module's next full run: what the score
    was measured on (the commit, the runner's test files), its counts and the
    names of the mutants not killed (say why each is equivalent, or that it is
    left, in docs/mutation.md).
    """
    data = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    counts = dict(counts, score=round(counts["score"], 1))
    data[module_key(path)] = {"made from": made_from, "tests": tests, **counts}
    RECORD.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")
    print(f"recorded in {RECORD.relative_to(REPO)}")


DOC = REPO / "docs" / "mutation.md"
# A line of docs/mutation.md that explains an equivalent mutant: "- `NAME`: why".
_EQUIVALENT = re.compile(r"^- `(eqxpurify\.[^`]+)`: ", re.MULTILINE)


def scores_table() -> str:
    """The scores table of docs/mutation.md, from the record and the doc's lines.

    A survivor is equivalent when docs/mutation.md has a line for it; the score
    is killed / (checked - equivalent), as the project counts it.
    """
    data = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    explained = set(_EQUIVALENT.findall(DOC.read_text()))
    rows = [
        "| module | test files | mutants | killed | equivalent | left | score "
        "| minutes | measured on |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for module, entry in data.items():
        names = [n for group in entry["not killed"].values() for n in group]
        equivalent = sum(n in explained for n in names)
        left = len(names) - equivalent
        counted = entry["checked"] - equivalent
        score = 100 * entry["killed"] / counted if counted else 100.0
        tests = ", ".join(f"`{Path(t).name}`" for t in entry["tests"])
        rows.append(
            f"| `{module}` | {tests} | {entry['mutants']} | {entry['killed']} "
            f"| {equivalent} | {left} | {score:.1f}% | {entry['minutes']} "
            f"| {entry['made from']} |"
        )
    return "\n".join(rows)


_DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
path, status, names = json.loads(sys.argv[1])
for name in names:
    print(f"\\n# {name}: {status}")
    print(get_diff_for_mutant(name, path=path))
"""


def print_diffs(dest: Path, path: str, status: str, names: list[str]) -> None:
    """Print each mutant's diff (what `mutmut show NAME` prints), in one process."""
    cmd = [sys.executable, "-c", _DIFFS, json.dumps([path, status, names])]
    out = subprocess.run(cmd, cwd=dest, text=True, capture_output=True, check=False)
    print(out.stdout.rstrip() or out.stderr.rstrip())


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("module", help="e.g. _priors or _intermediates/_harvest")
    parser.add_argument("tests", nargs="*", help="test files (default: the module's)")
    parser.add_argument(
        "--table",
        action="store_true",
        help="print the scores table of docs/mutation.md from the record and stop",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="print the test files found for MODULE ('all': every module) and stop",
    )
    parser.add_argument(
        "--worktree",
        action="store_true",
        help="copy the working tree instead of `git archive HEAD`",
    )
    parser.add_argument("--keep", metavar="DIR", help="make the copy here and keep it")
    parser.add_argument(
        "--dir", metavar="DIR", help="reuse a copy kept with --keep (and its results)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="NAME",
        help="mutant names or globs to (re)run, e.g. 'eqxpurify._priors.x_*'",
    )
    parser.add_argument(
        "--covered-only",
        action="store_true",
        help="mutmut's mutate_only_covered_lines (skip lines no test runs)",
    )
    parser.add_argument(
        "--no-messages",
        action="store_true",
        help="leave `raise` statements (error messages) unmutated",
    )
    parser.add_argument(
        "--isolation",
        default="forkserver",
        choices=["forkserver", "fork"],
        help="mutmut process_isolation (fork reuses a process that has run JAX)",
    )
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--timeout-constant", type=float, default=20.0)
    parser.add_argument("--timeout-multiplier", type=float, default=10.0)
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--fail-under", type=float, default=0.0, metavar="PERCENT")
    parser.add_argument(
        "--deselect",
        action="append",
        default=[],
        metavar="NODEID",
        help="pytest --deselect (a test that fails on unmutated code), repeatable",
    )
    parser.add_argument("--no-show", action="store_true", help="no survivor diffs")
    parser.add_argument(
        "--record",
        action="store_true",
        help=f"keep the counts in {RECORD.name} (keyed by module and test files)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="with --dir: only print the results kept there (run nothing)",
    )
    parser.add_argument("--debug", action="store_true", help="mutmut debug output")
    args = parser.parse_args(argv)

    if args.table:
        print(scores_table())
        return 0
    if args.list:
        return list_tests(args.module)
    path = module_path(args.module)
    if not (REPO / path).is_file():
        parser.error(f"no module {path}")
    tests = list(args.tests) or tests_for(module_key(path))
    if not tests:
        parser.error(f"no test file is named after {path}: give TEST_FILES")

    if args.report:
        if not args.dir:
            parser.error("--report needs --dir")
        dest = Path(args.dir).resolve()
        if not (dest / "mutants" / (path + ".meta")).is_file():
            parser.error(f"no results for {path} in {dest}")
        runs = kept_runs(dest)
        counts = report(dest, path, not args.no_show, 60 * sum(runs.values()))
        if args.record:
            record(path, tests, made_from_runs(runs), counts)
        return 0 if counts["score"] >= args.fail_under else 1

    if args.dir:
        dest = Path(args.dir).resolve()
        if not (dest / "mutants").is_dir():
            parser.error(f"{dest} is not a copy kept by --keep")
        if args.worktree:  # refresh the tests (and the rest of the package)
            if (REPO / path).read_text() != (dest / path).read_text():
                parser.error(
                    f"{path} changed since the copy in {dest} was made: its mutants "
                    "are of the old code; run the module afresh (without --dir)"
                )
            changed = tests + [
                str(f.relative_to(REPO))
                for f in sorted(PACKAGE.rglob("*.py"))
                if str(f.relative_to(REPO)) != path
            ]
            for name in changed:
                for root in (dest, dest / "mutants"):
                    (root / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / name, root / name)
        cleanup = False
    else:
        if args.keep:
            dest = Path(args.keep).resolve()
            if dest.exists() and any(dest.iterdir()):
                parser.error(f"{dest} is not empty")
        else:
            dest = Path(tempfile.mkdtemp(prefix="eqxpurify-mutate-"))
        copy_repo(dest, args.worktree)
        cleanup = not args.keep
    tests = [t for t in tests if (dest / t).is_file()]
    write_config(dest, args, path, tests)
    made_from = (dest / SOURCE_FILE).read_text().strip()
    print(f"mutating {path} in {dest} ({made_from})")
    print(f"runner: pytest {' '.join(PYTEST_ARGS)} {' '.join(tests)}", flush=True)

    meta = dest / "mutants" / (path + ".meta")
    before = read_results(dest, path) if meta.is_file() else {}
    start = time.monotonic()
    try:
        run_args = ["run", "--max-children", str(args.max_children), *args.only]
        proc = mutmut(dest, *run_args, nice=args.nice)
        elapsed = time.monotonic() - start
        if args.only and meta.is_file():
            keep_verdicts(meta, before)
        if proc.returncode != 0:
            print(f"mutmut run exited with {proc.returncode}", file=sys.stderr)
            if not meta.is_file() or args.only:  # nothing new: record nothing
                return proc.returncode or 1
        note_run(dest, made_from, args.only, elapsed)
        counts = report(dest, path, not args.no_show, elapsed)
        if args.record:
            if args.only:
                print("not recorded: a run restricted with --only", file=sys.stderr)
            else:
                record(path, tests, made_from, counts)
    finally:
        if cleanup:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            print(f"\nkept {dest}")
    return 0 if counts["score"] >= args.fail_under else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--as-mutmut"]:
        run_mutmut_cli(sys.argv[2:])
    sys.exit(main())
