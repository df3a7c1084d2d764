"""Interruption, exact resume, and a diverging run."""

import csv
import re
import signal
import time

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf
from conftest import finish, start

import vanilla_gan as vg

# Long enough that a signal sent after the second frame lands well before the end.
LONG = ["--steps", "3000", "--frame-every", "100"]


def metric_rows(path):
    try:
        with open(path, newline="") as f:
            return list(csv.reader(f))[1:]
    except FileNotFoundError:
        return []


def wait_for_rows(process, path, rows: int, timeout: float = 300) -> None:
    """Polls until the run has written `rows` metric rows (each written atomically)."""
    deadline = time.monotonic() + timeout
    while len(metric_rows(path)) < rows:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run wrote no frames"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("interrupt")
    reference = start([*LONG, "--out", "reference"], base)
    victims = {
        signal.SIGINT: start([*LONG, "--out", "sigint"], base),
        signal.SIGTERM: start([*LONG, "--out", "sigterm"], base),
    }
    for sig, process in victims.items():
        wait_for_rows(process, base / sig.name.lower() / "metrics.csv", rows=2)
        process.send_signal(sig)
    stopped = {sig: finish(process) for sig, process in victims.items()}
    steps_at_stop = int(
        re.search(r"stopped at step ([\d,]+)", stopped[signal.SIGINT].stdout)[1].replace(",", "")
    )
    resumed = finish(start(["--resume", "--out", "sigint"], base))
    return base, finish(reference), stopped, steps_at_stop, resumed


def test_sigint_and_sigterm_stop_cleanly_with_130_and_143(interrupted):
    base, _, stopped, _, _ = interrupted
    for sig, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        result = stopped[sig]
        assert result.returncode == status, result.stderr
        assert "Traceback" not in result.stderr
        assert "resume with: python vanilla_gan.py --resume" in result.stdout


def test_interrupted_run_leaves_readable_outputs(interrupted):
    base, _, _, steps_at_stop, _ = interrupted
    out = base / "sigterm"
    rows = metric_rows(out / "metrics.csv")
    assert len(rows) >= 2 and all(int(r[0]) % 100 == 0 for r in rows)
    frames = sorted((out / "frames").glob("*.png"))
    assert iio.improps(out / "vanilla_gan.gif", index=None).shape[0] == len(frames)
    assert len(frames) >= len(rows)
    assert (out / "checkpoint" / "checkpoint").exists()
    assert np.load(out / "samples.npy").shape == (2500, 2)
    assert 0 < steps_at_stop < 3000


def test_resume_gives_the_uninterrupted_result(interrupted):
    base, reference, _, _, resumed = interrupted
    assert reference.returncode == 0, reference.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint at step" in resumed.stdout
    for name in ("metrics.csv", "config.json"):
        expected = (base / "reference" / name).read_text().replace("reference", "sigint")
        assert (base / "sigint" / name).read_text() == expected
    np.testing.assert_array_equal(
        np.load(base / "sigint" / "samples.npy"), np.load(base / "reference" / "samples.npy")
    )
    frames = sorted(p.name for p in (base / "sigint" / "frames").iterdir())
    assert frames == sorted(p.name for p in (base / "reference" / "frames").iterdir())
    assert iio.improps(base / "sigint" / "vanilla_gan.gif", index=None).shape[0] == 31


def test_resume_with_another_recipe_is_refused(interrupted):
    base = interrupted[0]
    result = finish(start(["--resume", "--out", "sigterm", "--lr", "1e-3"], base))
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
    assert (tmp_path / "checkpoint" / "ckpt-20.index").exists()
    assert not (tmp_path / "summary.json").exists()
