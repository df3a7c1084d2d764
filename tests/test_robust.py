"""Interruption, exact resume, and a diverging run."""

import csv
import re
import shutil
import signal
import time

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf
from conftest import finish, start

import vanilla_gan as vg

# Compiled calls run 0-500-600-1100-1200-...: a signal sent as the step-600 row appears
# lands in the call that ends at 1,100, between two frames.
LONG = ["--steps", "1800", "--frame-every", "600"]


def metric_rows(path):
    try:
        with open(path, newline="") as f:
            return list(csv.reader(f))[1:]
    except FileNotFoundError:
        return []


def wait_for_rows(process, path, rows: int, timeout: float = 600) -> None:
    """Polls until the run has written `rows` metric rows (each written atomically)."""
    deadline = time.monotonic() + timeout
    while len(metric_rows(path)) < rows:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run wrote no frames"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A reference run; runs stopped by SIGINT and SIGTERM; the SIGINT one resumed."""
    base = tmp_path_factory.mktemp("interrupt")
    processes = {
        "reference": start([*LONG, "--out", "reference"], base),
        "sigint": start([*LONG, "--out", "sigint"], base),
        "sigterm": start([*LONG, "--out", "sigterm"], base),
    }
    try:
        for name, sig in (("sigint", signal.SIGINT), ("sigterm", signal.SIGTERM)):
            wait_for_rows(processes[name], base / name / "metrics.csv", rows=2)
            processes[name].send_signal(sig)
        results = {name: finish(process) for name, process in processes.items()}
    finally:
        for process in processes.values():
            process.kill()
    shutil.copytree(base / "sigint", base / "sigint_stopped")
    results["resumed"] = finish(start(["--resume", "--out", "sigint"], base))
    return base, results


def stop_step(result) -> int:
    return int(re.search(r"stopped at step ([\d,]+)", result.stdout)[1].replace(",", ""))


def test_sigint_and_sigterm_stop_cleanly_with_130_and_143(interrupted):
    _, results = interrupted
    for name, status in (("sigint", 130), ("sigterm", 143)):
        result = results[name]
        assert result.returncode == status, result.stderr
        assert "Traceback" not in result.stderr
        assert f"resume with: python vanilla_gan.py --resume --out {name}" in result.stdout
        assert 600 <= stop_step(result) < 1800


def test_interrupted_run_leaves_readable_outputs(interrupted):
    base, results = interrupted
    out = base / "sigint_stopped"
    step = stop_step(results["sigint"])
    rows = metric_rows(out / "metrics.csv")
    assert [int(r[0]) for r in rows] == [s for s in (0, 600, 1200) if s <= step]
    frames = sorted(p.name for p in (out / "frames").iterdir())
    assert f"step_{step:07d}.png" in frames  # a frame of the state at the stop
    assert len(frames) == len(rows) + (step % 600 != 0)
    assert iio.improps(out / "vanilla_gan.gif", index=None).shape[0] == len(frames)
    assert (out / "checkpoint" / f"ckpt-{step}.index").exists()
    assert f"ckpt-{step}" in (out / "checkpoint" / "checkpoint").read_text()
    assert np.load(out / "samples.npy").shape == (2500, 2)


def test_resume_gives_the_uninterrupted_result(interrupted):
    base, results = interrupted
    assert results["reference"].returncode == 0, results["reference"].stderr
    assert results["resumed"].returncode == 0, results["resumed"].stderr
    step = stop_step(results["sigint"])
    assert f"resumed from the checkpoint at step {step:,}" in results["resumed"].stdout
    for name in ("metrics.csv", "config.json"):
        expected = (base / "reference" / name).read_text().replace("reference", "sigint")
        assert (base / "sigint" / name).read_text() == expected
    np.testing.assert_array_equal(
        np.load(base / "sigint" / "samples.npy"), np.load(base / "reference" / "samples.npy")
    )
    frames = sorted(p.name for p in (base / "sigint" / "frames").iterdir())
    assert frames == sorted(p.name for p in (base / "reference" / "frames").iterdir())
    assert iio.improps(base / "sigint" / "vanilla_gan.gif", index=None).shape[0] == 4


def test_resume_with_another_recipe_is_refused(interrupted):
    base, _ = interrupted
    result = finish(start(["--resume", "--out", "sigterm", "--lr", "1e-3"], base))
    assert "differs from the run being resumed" in result.stderr
    assert result.returncode == 2
    assert "--lr" in result.stderr and "Traceback" not in result.stderr


def test_a_nan_loss_stops_the_run_and_keeps_the_outputs(tmp_path, monkeypatch, capsys):
    clean_noise = vg.GAN.noise

    def poisoned_noise(self, step):
        z = clean_noise(self, step)
        return tf.where(step >= 30, z * float("nan"), z)

    monkeypatch.setattr(vg.GAN, "noise", poisoned_noise)
    status = vg.main(["--steps", "60", "--frame-every", "20", "--out", str(tmp_path)])
    output = capsys.readouterr().out
    assert status == vg.DIVERGED
    assert "at step 30" in output
    rows = metric_rows(tmp_path / "metrics.csv")
    assert [int(r[0]) for r in rows] == [0, 20]
    assert iio.improps(tmp_path / "vanilla_gan.gif", index=None).shape[0] == 2
    assert "ckpt-20" in (tmp_path / "checkpoint" / "checkpoint").read_text()
    assert not (tmp_path / "summary.json").exists()
