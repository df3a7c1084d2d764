"""The recipe's numbers: data, networks, initialisation, losses."""

import math

import numpy as np
import pytest
import tensorflow as tf

import vanilla_gan as vg


@pytest.fixture(scope="module")
def dataset():
    return vg.make_dataset(seed=0)


def test_dataset_has_500_points_reaching_exactly_two(dataset):
    points, _, _ = dataset
    assert points.shape == (500, 2)
    assert points.dtype == np.float32
    assert points.max() == 2.0  # the largest single coordinate, over both axes
    np.testing.assert_allclose(points.astype(np.float64).mean(axis=0), 0.0, atol=1e-6)


def test_centres_are_the_unit_circle_under_the_same_map(dataset):
    points, centres, sigma = dataset
    # The same scale maps the unit radius and the recipe's sigma: radius/sigma is fixed.
    radius = np.linalg.norm(centres - centres.mean(axis=0), axis=1)
    np.testing.assert_allclose(radius, sigma / math.sqrt(vg.MODE_VARIANCE), rtol=1e-12)
    # Centre 0 is straight above the ring's middle, the rest follow clockwise at 72 degrees.
    offsets = centres - centres.mean(axis=0)
    angles = np.degrees(np.arctan2(offsets[:, 0], offsets[:, 1]))  # clockwise from north
    turn = (angles - np.array([0, 72, 144, 216, 288]) + 180) % 360 - 180
    np.testing.assert_allclose(turn, 0, atol=1e-9)
    # Each centre sits in the middle of its 100 points.
    nearest = np.linalg.norm(points[:, None] - centres[None], axis=2).argmin(axis=1)
    assert np.bincount(nearest).tolist() == [100] * 5
    for k in range(5):
        cluster = points[nearest == k].astype(np.float64)
        assert np.linalg.norm(cluster.mean(axis=0) - centres[k]) < 3 * sigma / math.sqrt(100) * 2
        assert abs(cluster.std(axis=0).mean() / sigma - 1) < 0.25


def test_minibatches_are_fifteen_fixed_batches_of_32(dataset):
    points, _, _ = dataset
    batches = vg.minibatches(points, 32)
    assert batches.shape == (15, 32, 2)
    np.testing.assert_array_equal(batches.reshape(-1, 2), points[:480])


def test_seeds_give_different_data():
    assert not np.array_equal(vg.make_dataset(0)[0], vg.make_dataset(1)[0])


def test_parameter_counts():
    assert vg.make_generator(0).count_params() == 527_874
    assert vg.make_discriminator(0).count_params() == 527_361


@pytest.mark.parametrize("make", [vg.make_generator, vg.make_discriminator])
def test_initial_standard_deviations(make):
    network = make(0)
    for layer in network.layers:
        kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
        expected = math.sqrt(2.0 / kernel.shape[0])  # fan-in
        assert abs(kernel.std() / expected - 1) < (0.1 if kernel.size < 5000 else 0.02)
        assert abs(kernel.mean()) < 4 * expected / math.sqrt(kernel.size)
        if bias.size == 512:  # hidden biases: s = sqrt(2 / 512) = 0.0625
            assert abs(bias.std() / 0.0625 - 1) < 0.15


@pytest.mark.parametrize("make, first", [(vg.make_generator, 0), (vg.make_discriminator, 100)])
def test_every_layer_is_drawn_by_the_reference_rule(make, first):
    """Weights and biases, output layer included, come from ReferenceNormal."""
    for i, layer in enumerate(make(0).layers):
        kernel = vg.ReferenceNormal(0, first + 2 * i)(layer.kernel.shape, "float32")
        bias = vg.ReferenceNormal(0, first + 2 * i + 1)(layer.bias.shape, "float32")
        np.testing.assert_array_equal(layer.kernel.numpy(), kernel.numpy())
        np.testing.assert_array_equal(layer.bias.numpy(), bias.numpy())
        assert np.all(layer.bias.numpy() != 0)


@pytest.mark.parametrize("length, expected", [(1, math.sqrt(2)), (2, 1.0), (512, 0.0625)])
def test_bias_rule_uses_the_bias_length(length, expected):
    """The output biases get s = 1.414 (length 1) and 1.0 (length 2), as in the reference."""
    draws = np.stack(
        [vg.ReferenceNormal(0, i)((length,)).numpy() for i in range(2000 // length + 1)]
    )
    assert abs(draws.std() / expected - 1) < 0.08


def numpy_cross_entropy(logits, label):
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return float(np.mean(-(label * np.log(p) + (1 - label) * np.log(1 - p))))


def test_losses_match_numpy():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(0, 3, (32, 1)), rng.normal(0, 3, (32, 1))
    d_loss = vg.discriminator_loss(tf.constant(real, tf.float32), tf.constant(fake, tf.float32))
    g_loss = vg.generator_loss(tf.constant(fake, tf.float32))
    expected_d = numpy_cross_entropy(real, 1) + numpy_cross_entropy(fake, 0)
    assert float(d_loss) == pytest.approx(expected_d, rel=1e-5)
    assert float(g_loss) == pytest.approx(numpy_cross_entropy(fake, 1), rel=1e-5)


def test_noise_is_uniform_on_the_square_and_fixed_by_seed_and_step():
    points, _, _ = vg.make_dataset(0)
    gan = vg.GAN(vg.Config(steps=10), points)
    z = gan.noise(tf.constant(7, tf.int64)).numpy()
    assert z.shape == (2, 32, 2) and z.min() >= -1 and z.max() <= 1
    np.testing.assert_array_equal(z, gan.noise(tf.constant(7, tf.int64)).numpy())
    assert not np.array_equal(z, gan.noise(tf.constant(8, tf.int64)).numpy())
    assert not np.array_equal(z[0], z[1])  # the two updates of a step draw fresh z
    other = vg.GAN(vg.Config(steps=10, seed=1), points)
    assert not np.array_equal(z, other.noise(tf.constant(7, tf.int64)).numpy())


def test_region_analysis_flag_keeps_the_users_xla_flags(monkeypatch):
    monkeypatch.setattr(vg.tf, "__version__", "2.21.0")
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    vg.enable_xla_region_analysis()
    vg.enable_xla_region_analysis()
    assert vg.os.environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {vg.XLA_CPU_FLAG}"
    # A user's own setting of the flag wins.
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_copy_insertion_use_region_analysis=false")
    vg.enable_xla_region_analysis()
    assert vg.os.environ["XLA_FLAGS"] == "--xla_cpu_copy_insertion_use_region_analysis=false"
    monkeypatch.delenv("XLA_FLAGS")
    vg.enable_xla_region_analysis()
    assert vg.os.environ["XLA_FLAGS"] == vg.XLA_CPU_FLAG


def test_region_analysis_flag_is_not_given_to_a_tensorflow_that_lacks_it(monkeypatch):
    # XLA aborts the whole process on a flag it does not know.
    monkeypatch.setattr(vg.tf, "__version__", "2.19.1")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    vg.enable_xla_region_analysis()
    assert "XLA_FLAGS" not in vg.os.environ
