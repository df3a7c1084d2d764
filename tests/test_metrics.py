"""The mode metrics on constructed samples whose answers are known."""

import math

import numpy as np
import pytest

import vanilla_gan as vg

SIGMA = 0.1
CENTRES = vg.true_centres()


def test_all_samples_on_the_five_centres():
    samples = np.repeat(CENTRES, 500, axis=0)
    metrics = vg.mode_metrics(samples, CENTRES, SIGMA)
    assert metrics["modes_captured"] == 5
    assert metrics["high_quality_pct"] == 100.0
    assert metrics["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["mode_counts"] == [500] * 5


def test_even_spread_over_four_centres():
    samples = np.repeat(CENTRES[[0, 1, 2, 4]], 625, axis=0)
    metrics = vg.mode_metrics(samples, CENTRES, SIGMA)
    assert metrics["modes_captured"] == 4
    assert metrics["reverse_kl"] == pytest.approx(math.log(5 / 4), abs=1e-12)
    assert metrics["mode_counts"] == [625, 625, 625, 0, 625]
    assert vg.describe(metrics) == "captured 4 of 5 modes (mode 3 missing), 100.0% high quality"


def test_samples_far_from_every_centre():
    samples = np.full((2500, 2), 10.0)
    metrics = vg.mode_metrics(samples, CENTRES, SIGMA)
    assert metrics["modes_captured"] == 0
    assert metrics["high_quality_pct"] == 0.0
    assert metrics["mode_counts"] == [0] * 5
    assert math.isnan(metrics["reverse_kl"])  # no high-quality sample: undefined


def test_three_sigma_is_the_boundary():
    """Strictly inside 3 sigma counts, exactly at (or past) it does not."""
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [-10.0, 0.0], [0.0, -10.0]])
    sigma = 1.0  # 3 sigma = 3.0 and the distances below are exact in floating point
    samples = np.array([[np.nextafter(3.0, 0.0), 0.0], [0.0, 3.0], [13.0, 0.0], [0.0, 6.5]])
    metrics = vg.mode_metrics(samples, centres, sigma)
    assert metrics["mode_counts"] == [1, 0, 0, 0, 0]
    assert metrics["high_quality_pct"] == 25.0
    assert metrics["modes_captured"] == 1
    assert metrics["reverse_kl"] == pytest.approx(math.log(5))


def test_uneven_shares_give_the_textbook_reverse_kl():
    counts = [400, 100, 0, 0, 0]
    samples = np.concatenate([np.repeat(CENTRES[[k]], n, axis=0) for k, n in enumerate(counts)])
    metrics = vg.mode_metrics(samples, CENTRES, SIGMA)
    p = np.array([0.8, 0.2])
    assert metrics["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(p * 5))))
    assert vg.describe(metrics).startswith("captured 2 of 5 modes (modes 2, 3, 4 missing)")
