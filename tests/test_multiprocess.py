"""Training across processes (`jax.distributed`) equals training on one device.

`tests/_multiprocess_worker.py` is started three times at once: twice as the two
processes of a `jax.distributed` run on localhost (gloo CPU collectives, 2 CPU
devices each, a free port), and once alone on one device as the reference. The
two processes train data parallel (batch split over all 4 devices, each process
holding only its half of the rows) and model parallel (the hidden layer's Params
split over a `"model"` axis, created in their shards by `ep.normal`); process 0
writes what they trained. Every wait has a time-out and every process is killed
if anything fails, so a stuck collective can never hang the test run.

The example `examples/sharded_training.py` runs here too: in its quick mode on 8
simulated devices, and briefly on 1 device and on 2 processes, which must print
the same fit.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_multiprocess_worker.py"
EXAMPLE = ROOT / "examples" / "sharded_training.py"
TIMEOUT = 240  # seconds for a whole group of processes; a normal run takes ~15
PARAMS = ("w1", "b1", "w2", "b2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def env_with(device_count: int) -> dict[str, str]:
    """This environment on the CPU backend with `device_count` CPU devices."""
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", flags)
    flag = f"--xla_force_host_platform_device_count={device_count}"
    env["XLA_FLAGS"] = f"{flags} {flag}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["MPLBACKEND"] = "Agg"
    return env


def run_together(
    commands: list[tuple[list[str], dict[str, str]]],
    logs: Path,
    timeout: float = TIMEOUT,
) -> list[str]:
    """Start every command at once and return their stdouts.

    Fails (killing all of them) as soon as one exits with an error, or when
    `timeout` seconds have passed: a process whose peer died would otherwise sit
    in a collective until JAX's own (minutes-long) time-outs.
    """
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        for i, (command, env) in enumerate(commands):
            with (
                open(logs / f"{i}.out", "w") as out,
                open(logs / f"{i}.err", "w") as err,
            ):
                procs.append(
                    subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=ROOT)
                )
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait(timeout=30)
    outputs = [(logs / f"{i}.out").read_text() for i in range(len(commands))]
    for i, p in enumerate(procs):
        if p.returncode != 0:
            err = (logs / f"{i}.err").read_text()
            why = "was killed" if p.returncode < 0 else f"exited {p.returncode}"
            pytest.fail(
                f"process {i} ({' '.join(commands[i][0][1:])}) {why}:\n"
                f"{outputs[i][-2000:]}\n{err[-4000:]}",
                pytrace=False,
            )
    return outputs


def last_json(stdout: str) -> dict:
    """The JSON report a worker prints last (gloo prints its own lines too)."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def worker_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("multiprocess")
    port = free_port()
    distributed = [
        (
            [
                sys.executable,
                str(WORKER),
                str(out),
                "--coordinator",
                f"localhost:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            env_with(2),
        )
        for i in range(2)
    ]
    single = ([sys.executable, str(WORKER), str(out)], env_with(1))
    stdouts = run_together([*distributed, single], out / "logs")
    reports = [last_json(s) for s in stdouts]
    with np.load(out / "distributed.npz") as f:
        arrays = dict(f)
    with np.load(out / "single.npz") as f:
        arrays |= dict(f)
    return reports, arrays


def max_difference(arrays: dict, run: str, reference: str) -> float:
    return max(
        float(np.max(np.abs(arrays[f"{run}/{name}"] - arrays[f"{reference}/{name}"])))
        for name in PARAMS
    )


@pytest.mark.slow  # the same-fit test below runs the two processes in the default run
def test_two_processes_see_four_devices(worker_run):
    reports, _ = worker_run
    p0, p1, single = reports
    assert [p0["process_index"], p1["process_index"]] == [0, 1]
    for r in (p0, p1):
        assert r["device_count"] == 4
        assert r["local_device_count"] == 2
        # Each process holds its own 32 rows, 16 on each of its devices.
        assert r["x_local_shapes"] == [[16, 3], [16, 3]]
    assert single["device_count"] == 1


@pytest.mark.slow
def test_data_parallel_across_processes_matches_one_device(worker_run):
    reports, arrays = worker_run
    for r in reports[:2]:
        for name in PARAMS:  # the trained model is replicated on all 4 devices
            assert r["dp"][name]["spec"] == []
            assert r["dp"][name]["devices"] == 4
    for name in PARAMS:
        trained, start = arrays[f"single/{name}"], arrays[f"init/{name}"]
        assert not np.allclose(trained, start, atol=1e-3)  # training moved it
        np.testing.assert_allclose(
            arrays[f"dp/{name}"], trained, rtol=1e-5, atol=1e-6, err_msg=name
        )
    assert max_difference(arrays, "dp", "single") < 1e-6  # measured: 6e-8 (f32)
    np.testing.assert_allclose(arrays["dp_losses"], arrays["single_losses"], rtol=1e-6)
    assert arrays["single_losses"][-1] < 0.9 * arrays["single_losses"][0]


def test_sharded_normal_across_processes_is_made_in_its_shards(worker_run):
    reports, arrays = worker_run
    for r in reports[:2]:
        init = r["mp_init"]
        # Each process holds only its two halves of the sharded latents.
        assert init["w1"] == {
            "spec": [None, "model"],
            "devices": 4,
            "local_shapes": [[3, 8], [3, 8]],
        }
        for name in ("b1", "w2"):
            assert init[name] == {
                "spec": ["model"],
                "devices": 4,
                "local_shapes": [[8], [8]],
            }
    for name in PARAMS:  # the same numbers as the unsharded `ep.normal`
        np.testing.assert_array_equal(arrays[f"mp_init/{name}"], arrays[f"init/{name}"])


def test_model_parallel_across_processes_matches_one_device(worker_run):
    reports, arrays = worker_run
    for r in reports[:2]:
        mp = r["mp"]  # training kept the model-parallel layout
        assert mp["w1"]["spec"] == [None, "model"]
        assert mp["w1"]["local_shapes"] == [[3, 8], [3, 8]]
        assert mp["b1"]["spec"] == mp["w2"]["spec"] == ["model"]
    for name in PARAMS:
        np.testing.assert_allclose(
            arrays[f"mp/{name}"],
            arrays[f"single/{name}"],
            rtol=1e-5,
            atol=1e-6,
            err_msg=name,
        )
    assert max_difference(arrays, "mp", "single") < 1e-6  # measured: 6e-8 (f32)
    np.testing.assert_allclose(arrays["mp_losses"], arrays["single_losses"], rtol=1e-6)


# --- examples/sharded_training.py --------------------------------------------------


def fit_table(stdout: str) -> dict[str, tuple[float, float]]:
    """`{name: (truth, fit)}` from the table the example prints."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["parameter"])
    table = {}
    for line in lines[start + 1 : start + 5]:
        name, truth, fit = line.split()
        table[name] = (float(truth), float(fit))
    return table


def example(args: list[str]) -> list[str]:
    return [sys.executable, str(EXAMPLE), *args]


def check_fit(table: dict[str, tuple[float, float]], scale: float) -> None:
    """Each fitted value near the truth: relative for the positive parameters,
    absolute (radians) for the phase; `scale` widens every tolerance."""
    assert set(table) == {"amplitude", "decay_time", "frequency", "phase"}
    rel = {"amplitude": 0.03, "decay_time": 0.07, "frequency": 0.01}
    for name, tol in rel.items():
        truth, fit = table[name]
        assert abs(fit - truth) <= scale * tol * truth, (name, truth, fit)
    truth, fit = table["phase"]
    assert abs(fit - truth) <= scale * 0.07, ("phase", truth, fit)


@pytest.mark.slow  # the example's multi-process run is checked by the same-fit test
def test_sharded_training_example_quick(tmp_path):
    env = env_with(8)
    env["XLA_FLAGS"] = re.sub(  # the script asks for its 8 devices itself
        r"--xla_force_host_platform_device_count=\d+", "", env["XLA_FLAGS"]
    ).strip()
    (stdout,) = run_together(
        [(example(["--quick", "--out", str(tmp_path)]), env)], tmp_path / "logs"
    )
    assert "8 devices in 1 process(es), mesh data=4 x model=2" in stdout
    # PartitionSpec prints as `P(...)` on newer jax, `PartitionSpec(...)` on older.
    assert re.search(
        r"(P|PartitionSpec)\(None, 'model'\), each device holds \(64, 32\)", stdout
    )
    png = tmp_path / "sharded_training.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    check_fit(fit_table(stdout), scale=1.0)
    first, last = re.search(r"loss per observation: (\S+) -> (\S+)", stdout).groups()
    assert float(last) < 0.1 * float(first)


@pytest.mark.slow
def test_sharded_training_example_same_fit_on_one_device_and_two_processes(
    tmp_path,
):
    port = free_port()
    short = ["--quick", "--steps", "40", "--out", str(tmp_path / "one")]
    commands = [(example(short), env_with(1))]
    for i in range(2):
        args = ["--quick", "--steps", "40", "--out", str(tmp_path / "two")]
        args += ["--coordinator", f"localhost:{port}", "--num-processes", "2"]
        commands.append((example([*args, "--process-id", str(i)]), env_with(2)))
    one, two_p0, two_p1 = run_together(commands, tmp_path / "logs")
    assert "1 devices in 1 process(es), mesh data=1 x model=1" in one
    assert "4 devices in 2 process(es), mesh data=2 x model=2" in two_p0
    assert "parameter" not in two_p1  # only process 0 prints ...
    assert (tmp_path / "two" / "sharded_training.png").exists()  # ... and plots
    assert fit_table(one) == fit_table(two_p0)  # to the 3 printed decimals


@pytest.mark.slow
def test_sharded_training_example_full(tmp_path):
    env = env_with(8)
    (stdout,) = run_together(
        [(example(["--out", str(tmp_path)]), env)], tmp_path / "logs", timeout=1200
    )
    assert (tmp_path / "sharded_training.png").exists()
    check_fit(fit_table(stdout), scale=0.5)
