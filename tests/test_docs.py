"""Every ```python block of README.md and docs/**/*.md runs, in page order.

Conventions (for whoever writes a page):

- Each page runs in its own subprocess, in one fresh `__main__` namespace, its
  ```python blocks one after the other, so a later block may use the names an
  earlier one defined. The working directory is a fresh temporary folder.
- A ```text block that comes straight after a ```python block (nothing but blank
  lines between them) is that block's expected output: the block's captured
  stdout must equal it, line for line, after trailing whitespace is stripped.
  Use it for any output a page shows, so the page cannot drift from the code.
- Output of a chaotic computation (MCMC statistics, a long float32 fit) differs
  in its last digits from one CPU to another, so it is never pinned to digits:
  a line `<!-- approx atol=A rtol=R -->` between the ```python block and its
  ```text block makes every number of the output match the page's within
  `A + R * |number|` (the text around the numbers must still match exactly).
  State the statistical reason for the tolerance in the page's prose (e.g. a
  few Monte Carlo standard errors). The values a long float32 fit prints use
  `rtol=0.002`: the same optimum, to far less than the page's digits show,
  whatever a CPU's rounding does to the path there.
- A block preceded by the line `<!-- skip -->` is shown but not run. Use it
  sparingly (code that needs a cluster, a file that does not exist, an excerpt
  of a larger program). In README.md, ```python skip also works (GitHub shows
  it as Python), but not in docs/: the site's Markdown would not render it as
  code, which a test below checks.
- A block made only of `--8<-- "path"` lines includes a file (pymdownx.snippets,
  e.g. an example's source); it is not run here, since the file is tested where
  it lives (`tests/test_examples.py`).
- `docs/sharding.md` runs with 8 simulated CPU devices
  (`XLA_FLAGS=--xla_force_host_platform_device_count=8`, `JAX_PLATFORMS=cpu`).
- Each page has `EQXPURIFY_DOCS_TIMEOUT` seconds (default 600) in all.

A failure names the page, the block number and its first line in the page, and
shows the traceback, whose frames point at lines of the Markdown file itself.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = float(os.environ.get("EQXPURIFY_DOCS_TIMEOUT", "600"))
SKIP_MARK = "<!-- skip -->"
_SNIPPET = "--8<--"
# Pages whose blocks need extra environment variables.
PAGE_ENV = {
    "docs/sharding.md": {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    },
}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_APPROX = re.compile(
    r"^<!-- approx(?: atol=(?P<atol>[0-9.e+-]+))?(?: rtol=(?P<rtol>[0-9.e+-]+))? -->$"
)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Block:
    """One ```python block of a page, with the output it must print (or None)."""

    line: int  # 1-based line of the block's first code line in the page
    source: str
    expected: str | None = None
    skip: bool = False
    tolerance: tuple[float, float] | None = None  # (atol, rtol) for numbers


def _fenced(text: str) -> list[tuple[int, int, str, str]]:
    """`(fence line, closing line, info, code)` of every fenced block, 0-based."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = i + 1
        while end < len(lines):
            closing = lines[end].strip()
            if closing.startswith(fence) and set(closing) == {fence[0]}:
                break
            end += 1
        body = lines[i + 1 : end]
        # A fence inside a list item is indented: so is its code.
        body = [b[len(indent) :] if b.startswith(indent) else b for b in body]
        code = textwrap.dedent("\n".join(body))
        found.append((i, end, opening["info"].strip(), code + "\n"))
        i = end + 1
    return found


def collect(text: str) -> list[Block]:
    """The ```python blocks of a Markdown page, in order (see the module doc)."""
    lines = text.splitlines()
    fenced = _fenced(text)
    blocks: list[Block] = []
    for k, (start, end, info, code) in enumerate(fenced):
        words = info.split()
        if not words or words[0] != "python":
            continue
        before = [line.strip() for line in lines[:start] if line.strip()]
        skip = "skip" in words[1:] or (bool(before) and before[-1] == SKIP_MARK)
        code_lines = [line.strip() for line in code.splitlines() if line.strip()]
        skip = skip or all(line.startswith(_SNIPPET) for line in code_lines)
        expected, tolerance = None, None
        if k + 1 < len(fenced):
            n_start, _, n_info, n_code = fenced[k + 1]
            between = [s.strip() for s in lines[end + 1 : n_start] if s.strip()]
            approx = _APPROX.match(between[0]) if len(between) == 1 else None
            if n_info.split()[:1] == ["text"] and (not between or approx):
                expected = n_code
            if approx is not None:
                tolerance = (float(approx["atol"] or 0), float(approx["rtol"] or 0))
        blocks.append(Block(start + 2, code, expected, skip, tolerance))
    return blocks


def pages() -> list[Path]:
    docs = sorted((ROOT / "docs").rglob("*.md"))
    return [ROOT / "README.md", *docs]


# Runs in the subprocess: argv[1] is a JSON file of blocks, argv[2] the result file.
_RUNNER = r"""
import contextlib, io, json, sys, traceback, types

def run(spec_path, result_path):
    with open(spec_path) as f:
        spec = json.load(f)
    main = types.ModuleType("__main__")
    main.__file__ = spec["page"]
    sys.modules["__main__"] = main
    sys.path.insert(0, "")
    outputs = []
    for i, block in enumerate(spec["blocks"]):
        # Pad with newlines so tracebacks give the line in the Markdown file.
        source = "\n" * (block["line"] - 1) + block["source"]
        captured = io.StringIO()
        try:
            code = compile(source, spec["page"], "exec")
            with contextlib.redirect_stdout(captured):
                exec(code, main.__dict__)
        except BaseException:
            result = {"failed": i, "traceback": traceback.format_exc()}
            result["outputs"] = outputs + [captured.getvalue()]
            break
        outputs.append(captured.getvalue())
    else:
        result = {"failed": None, "outputs": outputs}
    with open(result_path, "w") as f:
        json.dump(result, f)

run(sys.argv[1], sys.argv[2])
"""


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def outputs_match(got: str, want: str, tolerance: tuple[float, float] | None) -> bool:
    """Whether `got` is `want`: exactly, or with numbers within `(atol, rtol)`.

    With a tolerance, the text between the numbers must be the same except for
    the spaces that pad columns (a number printed with another width).
    """
    if tolerance is None:
        return got == want
    atol, rtol = tolerance
    got_numbers, want_numbers = _NUMBER.findall(got), _NUMBER.findall(want)

    def skeleton(text: str) -> list[str]:
        return [" ".join(part.split()) for part in _NUMBER.split(text)]

    if len(got_numbers) != len(want_numbers) or skeleton(got) != skeleton(want):
        return False
    return all(
        abs(float(g) - float(w)) <= atol + rtol * abs(float(w))
        for g, w in zip(got_numbers, want_numbers)
    )


def run_page(page: str, blocks: list[Block], tmp_path: Path, env: dict) -> str | None:
    """Run `blocks` in a fresh interpreter; a failure message, or None if all pass."""
    runnable = [(n, b) for n, b in enumerate(blocks, start=1) if not b.skip]
    spec = {
        "page": str(ROOT / page),
        "blocks": [{"line": b.line, "source": b.source} for _, b in runnable],
    }
    spec_path, result_path = tmp_path / "blocks.json", tmp_path / "result.json"
    spec_path.write_text(json.dumps(spec))
    work = tmp_path / "cwd"
    work.mkdir()
    # The library of this checkout, as the test suite itself imports it.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    full_env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": path, **env}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(spec_path), str(result_path)],
            cwd=work,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"{page}: its blocks did not finish within {TIMEOUT:.0f} s"
    if not result_path.exists():
        return (
            f"{page}: the interpreter running its blocks died (exit code "
            f"{proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    result = json.loads(result_path.read_text())
    if result["failed"] is not None:
        n, block = runnable[result["failed"]]
        return (
            f"{page}: block {n} (line {block.line}) raised:\n{result['traceback']}\n"
            f"its output so far:\n{result['outputs'][-1]}"
        )
    for (n, block), output in zip(runnable, result["outputs"], strict=True):
        if block.expected is not None:
            got, want = _normalise(output), _normalise(block.expected)
            if not outputs_match(got, want, block.tolerance):
                within = ""
                if block.tolerance is not None:
                    atol, rtol = block.tolerance
                    within = f" (numbers within atol={atol:g} rtol={rtol:g})"
                return (
                    f"{page}: block {n} (line {block.line}) printed\n{got}\n"
                    f"but the page shows{within}\n{want}"
                )
    return None


def _page_params():
    params = []
    for path in pages():
        page = path.relative_to(ROOT).as_posix()
        if not any(not b.skip for b in collect(path.read_text())):
            continue  # API pages, example pages: nothing to run
        params.append(pytest.param(page, id=page))
    return params


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("EQXPURIFY_TEST_X64", "0") == "1",
    reason="pages run in their own interpreter at default precision: the x64 pass "
    "would repeat the same run",
)
@pytest.mark.parametrize("page", _page_params())
def test_page_code_runs(page, tmp_path):
    blocks = collect((ROOT / page).read_text())
    failure = run_page(page, blocks, tmp_path, PAGE_ENV.get(page, {}))
    if failure is not None:
        pytest.fail(failure, pytrace=False)


# --- the collector and runner themselves --------------------------------------------

_SAMPLE = """\
# A page

```python
x = 1
print(x + 1)
```

```text
2
```

Prose.

- In a list:

  ```python
  y = x * 10
  ```

<!-- skip -->
```python
raise RuntimeError("never run")
```

```python skip
raise RuntimeError("never run either")
```

```python
print(y)
```

Not output, since prose comes first:

```text
999
```

```bash
echo not python
```

??? example "Source"

    ```python title="examples/x.py"
    --8<-- "examples/x.py"
    ```
"""


def test_collect_blocks_outputs_and_skips():
    blocks = collect(_SAMPLE)
    assert [b.line for b in blocks] == [4, 17, 22, 26, 30, 46]
    assert [b.skip for b in blocks] == [False, False, True, True, False, True]
    assert [b.expected for b in blocks] == ["2\n", None, None, None, None, None]
    assert blocks[0].source == "x = 1\nprint(x + 1)\n"
    assert blocks[1].source == "y = x * 10\n"  # dedented out of the list item


def test_run_page_shares_one_namespace_per_page(tmp_path):
    assert run_page("sample.md", collect(_SAMPLE), tmp_path, {}) is None


def test_run_page_reports_block_line_and_traceback(tmp_path):
    page = "```python\nx = 1\n```\n\n```python\n\nx = undefined_name\n```\n"
    failure = run_page("page.md", collect(page), tmp_path, {})
    assert failure is not None
    assert failure.startswith("page.md: block 2 (line 6) raised:")
    assert "NameError: name 'undefined_name' is not defined" in failure
    assert 'page.md", line 7' in failure  # the traceback's line is the page's


def test_run_page_compares_output(tmp_path):
    page = "```python\nprint('a  ')\nprint('b')\n```\n```text\na\nc\n```\n"
    failure = run_page("page.md", collect(page), tmp_path, {})
    assert (
        failure == "page.md: block 1 (line 2) printed\na\nb\nbut the page shows\na\nc"
    )


def test_approx_output_compares_numbers_within_the_tolerance(tmp_path):
    page = (
        "```python\nprint('mean', 1.3101, 'ess', 691.9)\n```\n\n"
        "<!-- approx atol=0.01 rtol=0.2 -->\n\n"
        "```text\nmean 1.307 ess 774.4\n```\n"
    )
    (block,) = collect(page)
    assert block.tolerance == (0.01, 0.2) and block.expected == "mean 1.307 ess 774.4\n"
    assert run_page("page.md", [block], tmp_path, {}) is None
    assert outputs_match("a  1.30\nb 2", "a 1.31\nb 2", (0.02, 0.0))
    assert not outputs_match("a 1.30", "a 1.33", (0.02, 0.0))  # outside atol
    assert not outputs_match("a 1.30", "a 1.30 2", (1.0, 0.0))  # a number more
    assert not outputs_match("b 1.30", "a 1.30", (1.0, 0.0))  # other text
    assert not outputs_match("a 1.30", "a 1.31", None)  # no marker: exact
    (tmp_path / "x").mkdir()
    failure = run_page(
        "page.md",
        [Block(2, "print(2.0)\n", "1.0\n", tolerance=(0.5, 0.0))],
        tmp_path / "x",
        {},
    )
    assert failure is not None and "within atol=0.5 rtol=0" in failure


def test_pages_are_fresh_and_see_the_page_env(tmp_path):
    page = "```python\nimport os\nprint(os.environ['DOCS_FLAG'], 'x' in dir())\n```\n"
    page += "```text\non False\n```\n"
    assert run_page("p.md", collect(page), tmp_path, {"DOCS_FLAG": "on"}) is None


def test_docs_pages_do_not_use_python_skip_fences():
    """pymdownx.superfences renders ```python skip as inline text, not code."""
    offenders = [
        f"{path.relative_to(ROOT)}:{start + 1}"
        for path in sorted((ROOT / "docs").rglob("*.md"))
        for start, _, info, _ in _fenced(path.read_text())
        if info.split()[:1] == ["python"] and "skip" in info.split()[1:]
    ]
    assert offenders == [], "use a `<!-- skip -->` line before the block instead"


# --- the API reference ------------------------------------------------------------

_API_BLOCK = re.compile(r"^::: eqxpurify\.(\w+)\s*$", re.MULTILINE)


def test_api_reference_documents_every_public_name():
    """Each name in `eqxpurify.__all__` has a `::: eqxpurify.NAME` block on one
    page of docs/api/, and each such block names a public object."""
    import eqxpurify

    documented: dict[str, list[str]] = {}
    for path in sorted((ROOT / "docs" / "api").glob("*.md")):
        for name in _API_BLOCK.findall(path.read_text()):
            documented.setdefault(name, []).append(path.name)
    public = set(eqxpurify.__all__)
    assert sorted(public - set(documented)) == [], "public names without an API entry"
    assert sorted(set(documented) - public) == [], "API entries for non-public names"
    twice = {name: pages for name, pages in documented.items() if len(pages) > 1}
    assert twice == {}, "names documented on more than one API page"
