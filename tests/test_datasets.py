"""Each dataset loader reads tiny fixtures written in the real on-disk formats (tests/fixtures_datasets.py).

Labels are checked against the samples' content (each class has its own brightness / pitch / signal level), split
sizes against the formats' rules, and errors against the file they must name.
"""

import hashlib
import os
import re

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from fixtures_datasets import class_level, tone, write_accelerometer_csv, write_cifar10, write_image, \
    write_image_folder, write_speech_commands, write_vww_coco, write_wav
from tinynas.data import at_resolution, load_dataset
from tinynas.datasets import audio
from tinynas.errors import ConfigError
from tinynas.paths import CONF_DIR


def pixels(ds, split):
    """A split's images back in 0..255."""
    return (split.x * ds.std + ds.mean) * 255


def brightness_labels(ds, split):
    """The class whose fixture brightness is nearest each image's mean."""
    levels = np.array([class_level(k) for k in range(10)])
    means = pixels(ds, split).mean(axis=(1, 2, 3))
    return np.abs(means[:, None] - levels[None, :]).argmin(1)


# ---------------------------------------------------------------- CIFAR-10

@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    return write_cifar10(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py")


def cifar(root, **kw):
    return {"name": "cifar10", "root": str(root), "in_channels": 3, "num_classes": 10, "val_fraction": 0.2,
            "test_fraction": 0.1, "split_seed": 0, **kw}


def test_cifar10_test_batch_is_test_val_carved_stratified_labels_match_pixels(cifar_root):
    ds = load_dataset(cifar(cifar_root))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (80, 20, 30)
    assert np.bincount(ds.val.y, minlength=10).tolist() == [2] * 10
    assert ds.classes[:2] == ("airplane", "automobile") and ds.train.x.shape[1:] == (3, 32, 32)
    for split in (ds.train, ds.val, ds.test):
        assert np.array_equal(brightness_labels(ds, split), split.y)
    px = pixels(ds, ds.train)
    assert np.allclose(px[:, 0].mean() - px[:, 2].mean(), 12, atol=0.5)  # rows are R, G, B planes (CHW)
    assert abs(ds.train.x.mean()) < 1e-4 and abs(ds.train.x.std() - 1) < 1e-3


def test_cifar10_splits_are_deterministic_and_follow_the_seed(cifar_root):
    a, b, c = (load_dataset(cifar(cifar_root, split_seed=s)) for s in (0, 0, 1))
    assert np.array_equal(a.val.x, b.val.x) and np.array_equal(a.train.y, b.train.y)
    assert not np.array_equal(a.val.x, c.val.x)
    assert np.array_equal(a.test.y, c.test.y)  # the test batch does not depend on the seed
    np.testing.assert_allclose(pixels(a, a.test), pixels(c, c.test), atol=1e-3)


def test_caps_keep_proportions_and_classes(cifar_root):
    ds = load_dataset(cifar(cifar_root, max_samples=65))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 10, 15)
    assert np.bincount(ds.val.y, minlength=10).tolist() == [1] * 10
    ds = load_dataset(cifar(cifar_root, max_train_samples=30))
    assert len(ds.train) == 30 and np.bincount(ds.train.y, minlength=10).tolist() == [3] * 10
    with pytest.raises(ConfigError, match="max_samples=0 must be a positive int"):
        load_dataset(cifar(cifar_root, max_samples=0))


def test_cifar10_missing_or_malformed_files_are_named(cifar_root, tmp_path):
    with pytest.raises(ConfigError, match=r"root=.*nowhere does not exist; expected a folder holding data_batch_1.*"
                                          r"cifar-10-python\.tar\.gz"):
        load_dataset(cifar(tmp_path / "nowhere"))
    bad = write_cifar10(tmp_path / "bad", per_batch=10, test=10)
    (bad / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match=r"data_batch_3 is missing"):
        load_dataset(cifar(bad))
    (bad / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match=r"data_batch_3 is not a CIFAR-10 python pickle"):
        load_dataset(cifar(bad))


def test_search_config_composes_with_cifar10_and_loads(cifar_root):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=["dataset=cifar10", f"dataset.root={cifar_root}"])
    ds = load_dataset(cfg.dataset)
    assert ds.name == "cifar10" and ds.num_classes == cfg.dataset.num_classes == 10
    assert len(ds.test) == 30 and ds.in_channels == cfg.dataset.in_channels


# ---------------------------------------------------------------- image folders and VWW

def folder_cfg(root, tmp_path, **kw):
    return {"name": "image_folder", "root": str(root), "in_channels": 3, "image_size": 16, "val_fraction": 0.25,
            "test_fraction": 0.25, "split_seed": 0, "cache_dir": str(tmp_path / "cache"), **kw}


def test_image_folder_sorted_classes_mixed_formats_grey_and_non_square(tmp_path):
    root = write_image_folder(tmp_path / "imgs", ["zebra", "ant", "cow"], per_class=8)
    ds = load_dataset(folder_cfg(root, tmp_path))
    assert ds.classes == ("ant", "cow", "zebra") and ds.num_classes == 3
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12, 6, 6) and ds.train.x.shape[1:] == (3, 16, 16)
    order = {"zebra": 0, "ant": 1, "cow": 2}  # the order the fixture gave brightness in
    for split in (ds.train, ds.val, ds.test):
        assert np.array_equal(brightness_labels(ds, split), [order[ds.classes[k]] for k in split.y])
    grey = load_dataset(folder_cfg(root, tmp_path, in_channels=1, image_size=[12, 20]))
    assert grey.train.x.shape[1:] == (1, 12, 20)


def test_image_folder_split_folders_and_cache(tmp_path, monkeypatch):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        write_image_folder(tmp_path / "d" / split, ["a", "b"], per_class=n, seed=len(split))
    cfg = folder_cfg(tmp_path / "d", tmp_path)
    first = load_dataset(cfg)
    assert (len(first.train), len(first.val), len(first.test)) == (12, 4, 6)
    assert len(list((tmp_path / "cache").glob("image_folder-*.npz"))) == 1
    import tinynas.datasets.image_folder as image_folder

    monkeypatch.setattr(image_folder, "decode_images", lambda *a: pytest.fail("decoded again despite the cache"))
    second = load_dataset(cfg)
    assert np.array_equal(first.train.x, second.train.x) and np.array_equal(first.test.y, second.test.y)
    monkeypatch.undo()
    next((tmp_path / "cache").glob("*.npz")).write_bytes(b"truncated")  # a damaged cache file is rebuilt
    assert np.array_equal(load_dataset(cfg).val.x, first.val.x)
    (tmp_path / "cache").rename(tmp_path / "moved")
    (tmp_path / "cache").write_text("a file where the cache folder should be")  # unwritable: loads uncached
    assert np.array_equal(load_dataset(cfg).val.x, first.val.x)


def test_image_folder_errors_name_the_folder_and_the_bad_file(tmp_path):
    with pytest.raises(ConfigError, match=r"root=.*missing does not exist; expected a folder holding one sub-folder "
                                          r"per class"):
        load_dataset(folder_cfg(tmp_path / "missing", tmp_path))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds no images"):
        load_dataset(folder_cfg(tmp_path / "empty", tmp_path))
    root = write_image_folder(tmp_path / "imgs", ["a", "b"], per_class=4)
    (root / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ConfigError, match=r"b/broken\.png is not a readable image"):
        load_dataset(folder_cfg(root, tmp_path, cache=False))


def vww_cfg(root, tmp_path, **kw):
    return {"name": "vww", "root": str(root), "in_channels": 3, "num_classes": 2, "image_size": 24,
            "val_fraction": 0.2, "test_fraction": 0.2, "cache_dir": str(tmp_path / "cache"), **kw}


def test_vww_person_and_non_person_folders(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(10):
        write_image(tmp_path / "vw" / "person" / f"p{i}.jpg", 1, (60, 40), rng)
        write_image(tmp_path / "vw" / "non_person" / f"n{i}.jpg", 0, (50, 50), rng)
    ds = load_dataset(vww_cfg(tmp_path / "vw", tmp_path))
    assert ds.classes == ("non_person", "person") and ds.train.x.shape[1:] == (3, 24, 24)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12, 4, 4)
    for split in (ds.train, ds.val, ds.test):
        assert np.array_equal(brightness_labels(ds, split), split.y)
    (tmp_path / "half" / "person").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"has no non_person/ folder; expected person/ and non_person/"):
        load_dataset(vww_cfg(tmp_path / "half", tmp_path))


def test_vww_coco_annotation_json(tmp_path):
    labels = [0, 1] * 6
    root = write_vww_coco(tmp_path / "coco", labels)
    cfg = vww_cfg(root, tmp_path, annotations="annotations.json", images="images")
    ds = load_dataset(cfg)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 12
    for split in (ds.train, ds.val, ds.test):
        assert np.array_equal(brightness_labels(ds, split), split.y)
    fixed = load_dataset({**cfg, "annotations": {"train": "annotations.json", "test": "annotations.json"}})
    assert len(fixed.test) == 12 and len(fixed.train) + len(fixed.val) == 12
    next((root / "images").glob("*.jpg")).unlink()
    with pytest.raises(ConfigError, match=r"annotations\.json lists COCO_train2014_\d+\.jpg, which is in none of"):
        load_dataset(cfg)
    (root / "annotations.json").write_text('{"images": [')
    with pytest.raises(ConfigError, match=r"annotations\.json is not valid JSON"):
        load_dataset(cfg)


# ---------------------------------------------------------------- Speech Commands

WORDS = ["yes", "no", "up"]


def speech_cfg(root, tmp_path, **kw):
    return {"name": "speech_commands", "root": str(root), "words": WORDS, "in_channels": 1, "num_classes": 5,
            "silence_percentage": 10, "unknown_percentage": 50, "cache_dir": str(tmp_path / "cache"), **kw}


@pytest.fixture(scope="module")
def speech_root(tmp_path_factory):
    return write_speech_commands(tmp_path_factory.mktemp("sc") / "speech", ["yes", "no", "up", "down"],
                                 others=("cat",))


def test_speech_commands_lists_silence_unknown_and_mfcc_shape(speech_root, tmp_path):
    ds = load_dataset(speech_cfg(speech_root, tmp_path))
    assert ds.classes == ("no", "up", "yes", "_silence_", "_unknown_")
    # train: 3 words x 3 speakers = 9 keyword clips, ceil(0.9) silence, ceil(4.5) = 5 of the 6 unknown (down, cat)
    assert np.bincount(ds.train.y, minlength=5).tolist() == [3, 3, 3, 1, 5]
    # val / test: one speaker each: 3 keyword clips, 1 silence, ceil(1.5) = 2 unknown
    assert np.bincount(ds.val.y, minlength=5).tolist() == [1, 1, 1, 1, 2]
    assert np.bincount(ds.test.y, minlength=5).tolist() == [1, 1, 1, 1, 2]
    assert ds.train.x.shape[1:] == (1, 49, 10) and ds.train.fixed
    assert at_resolution(ds.val, (49, 10)) is ds.val
    with pytest.raises(ConfigError, match=r"fixed-size features of 49×10.*input size to \[49, 10\]"):
        at_resolution(ds.val, 32)
    # each keyword sample is the MFCC of a clip of its own word from a speaker of its split (speaker 3 = val)
    feats = ds.val.x * ds.std + ds.mean
    for word in WORDS:
        samples, _ = audio.read_wav(speech_root / word / "00000003_nohash_0.wav")
        expected = audio.mfcc(audio.normalize_clip(samples)[None])[0]
        np.testing.assert_allclose(feats[ds.val.y == ds.classes.index(word)][0, 0], expected, atol=1e-3)


def test_speech_commands_is_deterministic_and_cached(tmp_path, monkeypatch):
    root = write_speech_commands(tmp_path / "s", WORDS, speakers=4, validation=(2,), testing=(3,))
    a = load_dataset(speech_cfg(root, tmp_path))
    import tinynas.datasets.speech_commands as sc

    monkeypatch.setattr(sc, "read_wav", lambda *a: pytest.fail("read a WAV again despite the cache"))
    b = load_dataset(speech_cfg(root, tmp_path))
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)
    monkeypatch.undo()
    # a clip rewritten with the same size (as a regenerated set would be) is decoded afresh
    clip = root / "up" / "00000002_nohash_0.wav"
    stat = clip.stat()
    write_wav(clip, tone(3000, seconds=len(audio.read_wav(clip)[0]) / 16000, seed=9))
    assert clip.stat().st_size == stat.st_size
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    c = load_dataset(speech_cfg(root, tmp_path))
    up = c.classes.index("up")
    assert np.array_equal(a.val.y, c.val.y)
    assert not np.allclose(a.val.x[a.val.y == up], c.val.x[c.val.y == up], atol=0.1)


def test_speech_commands_without_lists_splits_by_speaker_hash(tmp_path):
    root = write_speech_commands(tmp_path / "s", WORDS, speakers=12, lists=False)
    ds = load_dataset(speech_cfg(root, tmp_path, validation_percentage=25, testing_percentage=25,
                                 silence_percentage=0, unknown_percentage=0))
    # TensorFlow input_data.which_set, written out independently: sha1 of the speaker id, 2^27 - 1 buckets
    expected = []
    for s in range(12):
        h = int(hashlib.sha1(f"{s:08x}".encode()).hexdigest(), 16) % 2**27 * (100.0 / (2**27 - 1))
        expected.append(1 if h < 25 else 2 if h < 50 else 0)
    assert [len(ds.train), len(ds.val), len(ds.test)] == [3 * expected.count(k) for k in (0, 1, 2)]


def test_speech_commands_errors_name_the_file(speech_root, tmp_path):
    with pytest.raises(ConfigError, match=r"words=\[True, 'up'\] must all be folder names; in YAML quote yes"):
        load_dataset(speech_cfg(speech_root, tmp_path, words=[True, "up"]))
    with pytest.raises(ConfigError, match=r"has no WAVs for the words \['left'\]"):
        load_dataset(speech_cfg(speech_root, tmp_path, words=["yes", "left"]))
    root = write_speech_commands(tmp_path / "s", WORDS, speakers=3, validation=(1,), testing=(2,))
    write_wav(root / "no" / "00000000_nohash_0.wav", tone(500, rate=8000), sample_rate=8000)
    with pytest.raises(ConfigError, match=r"no/00000000_nohash_0\.wav is sampled at 8000 Hz; expected 16000"):
        load_dataset(speech_cfg(root, tmp_path, cache=False))
    (root / "no" / "00000000_nohash_0.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(ConfigError, match=r"no/00000000_nohash_0\.wav is not a readable PCM WAV"):
        load_dataset(speech_cfg(root, tmp_path, cache=False))
    for f in (root / "_background_noise_").iterdir():
        f.unlink()
    with pytest.raises(ConfigError, match=r"_background_noise_ holds no WAV of at least 1 s"):
        load_dataset(speech_cfg(root, tmp_path))


# ---------------------------------------------------------------- time series CSV

def ts_cfg(root, **kw):
    return {"name": "timeseries_csv", "root": str(root), "window": 50, "stride": 25, "val_fraction": 0.2,
            "test_fraction": 0.2, **kw}


def count_windows(segments, window, stride):
    """Windows of one label in a single recording made of ``segments`` (label, rows), counted by brute force."""
    labels = [lab for lab, rows in segments for _ in range(rows)]
    return sum(len(set(labels[s:s + window])) == 1 for s in range(0, len(labels) - window + 1, stride))


def test_one_long_csv_becomes_single_label_windows(tmp_path):
    segments = [("walk", 300), ("run", 210), ("walk", 140)]
    path = write_accelerometer_csv(tmp_path / "acc.csv", segments)
    ds = load_dataset(ts_cfg(path, in_channels=3, num_classes=2))
    assert ds.classes == ("run", "walk") and ds.train.x.shape[1:] == (3, 50, 1) and ds.train.fixed
    assert len(ds.train) + len(ds.val) + len(ds.test) == count_windows(segments, 50, 25)
    for split in (ds.train, ds.val, ds.test):
        x = split.x * ds.std + ds.mean
        assert np.array_equal(np.floor(x[:, 0, :, 0]).max(1), split.y)  # level = label index, axis 0
        assert np.allclose(x[:, 2] - x[:, 0], 0.2, atol=1e-4)  # channels are the columns in order


def test_csv_folders_recordings_and_feature_columns(tmp_path):
    for k, cls in enumerate(("idle", "shake")):
        for r in range(3):
            write_accelerometer_csv(tmp_path / "rec" / cls / f"r{r}.csv", [(cls, 120)])
    files = sorted((tmp_path / "rec").rglob("*.csv"))
    for f in files:  # the class comes from the folder when the file has no label column
        f.write_text(re.sub(r"^[^,\n]*,", "", f.read_text(), flags=re.M))
    ds = load_dataset(ts_cfg(tmp_path / "rec", feature_columns=["az", "ax"], split_by="recording"))
    assert ds.classes == ("idle", "shake") and ds.train.x.shape[1:] == (2, 50, 1)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 6 * count_windows([("x", 120)], 50, 25)
    # whole recordings go to one split: 6 files, 3 windows each; at least one recording per split
    assert all(len(s) % 3 == 0 and len(s) for s in (ds.train, ds.val, ds.test))


def test_recording_column_stops_windows_at_a_change(tmp_path):
    path = write_accelerometer_csv(tmp_path / "a.csv", [("walk", 60)], extra={"subject": "s1"})
    text = path.read_text().splitlines()
    text += [line.replace(",s1", ",s2") for line in text[1:]]  # the same 60 rows again, another subject
    path.write_text("\n".join(text) + "\n")
    whole = load_dataset(ts_cfg(path, window=40, stride=10, val_fraction=0.3, test_fraction=0.3,
                                feature_columns=["ax"]))
    split = load_dataset(ts_cfg(path, window=40, stride=10, val_fraction=0.3, test_fraction=0.3,
                                recording_column="subject"))
    count = lambda d: len(d.train) + len(d.val) + len(d.test)  # noqa: E731
    assert count(whole) == count_windows([("w", 120)], 40, 10) == 9 and count(split) == 2 * 3


def test_csv_errors_name_file_line_and_columns(tmp_path):
    path = write_accelerometer_csv(tmp_path / "a.csv", [("walk", 100)])
    text = path.read_text().splitlines()
    text[5] = "walk,0.1,oops,0.3"
    path.write_text("\n".join(text))
    with pytest.raises(ConfigError, match=r"a\.csv line 6: .*'oops'.* no number in every column"):
        load_dataset(ts_cfg(path))
    with pytest.raises(ConfigError, match=r"a\.csv lacks the columns \['gx'\]; it has \['label', 'ax', 'ay', 'az'\]"):
        load_dataset(ts_cfg(path, feature_columns=["ax", "gx"]))
    with pytest.raises(ConfigError, match=r"root=.*nothing\.csv does not exist"):
        load_dataset(ts_cfg(tmp_path / "nothing.csv"))
