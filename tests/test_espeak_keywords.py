"""The espeak-ng keyword generator: Speech Commands v2 layout, 16 kHz int16 mono 1 s clips read back with the standard
library's wave module, speaker-disjoint lists, determinism, idempotence and its errors."""

import hashlib
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from tinynas.datasets import espeak_keywords as ek
from tinynas.errors import ConfigError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)")

TINY = dict(words=["yes", "no"], n_per_word=6, seed=3, unknown_words=["cat"], n_per_unknown_word=3,
            voices=["en-us", "en-gb-x-rp"], variants=["", "f3", "m2"], noise_seconds=2)


def _read(path: Path):
    with wave.open(str(path)) as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), np.frombuffer(w.readframes(w.getnframes()),
                                                                                    "<i2")


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return ek.generate_keywords(tmp_path_factory.mktemp("kw") / "set", **TINY)


@needs_espeak
def test_layout_is_speech_commands_v2(tiny):
    dirs = sorted(p.name for p in tiny.iterdir() if p.is_dir())
    assert dirs == ["_background_noise_", "cat", "no", "yes"]
    assert sorted(p.name for p in (tiny / "_background_noise_").iterdir()) == sorted(f"{n}.wav" for n in ek.NOISES)
    speakers = {f"{v}+{x}" if x else v for v in TINY["voices"] for x in TINY["variants"]}
    for word, n in (("yes", 6), ("no", 6), ("cat", 3)):
        files = sorted((tiny / word).iterdir())
        assert len(files) == n
        for f in files:
            speaker, _, idx = f.stem.partition("_nohash_")
            assert speaker in speakers and idx.isdigit(), f.name


@needs_espeak
def test_clips_are_16k_int16_mono_one_second_with_speech(tiny):
    for f in sorted(tiny.glob("[!_]*/*.wav")):
        channels, width, rate, x = _read(f)
        assert (channels, width, rate, len(x)) == (1, 2, 16000, 16000), f
        # A word, not silence or steady noise: the loudest 100 ms hold several times the quietest 100 ms's energy
        # (the noise is mixed at >= 5 dB SNR over the word's own span).
        frames = (x.astype(np.float64).reshape(10, 1600) ** 2).mean(axis=1)
        assert frames.max() > 3 * max(frames.min(), 1.0), f
    for f in (tiny / "_background_noise_").iterdir():
        channels, width, rate, x = _read(f)
        assert (channels, width, rate, len(x)) == (1, 2, 16000, 2 * 16000) and np.abs(x).max() > 1000, f


@needs_espeak
def test_lists_are_disjoint_by_speaker_and_name_existing_files(tiny):
    val = (tiny / "validation_list.txt").read_text().split()
    test = (tiny / "testing_list.txt").read_text().split()
    assert val and test
    for rel in val + test:
        assert (tiny / rel).is_file(), rel
    speaker = lambda rel: rel.split("/")[1].partition("_nohash_")[0]  # noqa: E731
    all_clips = [str(p.relative_to(tiny)) for p in tiny.glob("[!_]*/*.wav")]
    train = set(all_clips) - set(val) - set(test)
    assert train
    s_val, s_test, s_train = ({speaker(r) for r in part} for part in (val, test, train))
    assert not (s_val & s_test) and not (s_val & s_train) and not (s_test & s_train)


@needs_espeak
def test_same_seed_same_bytes_other_seed_other_bytes_and_second_call_is_a_no_op(tiny, tmp_path):
    again = ek.generate_keywords(tmp_path / "again", **TINY)
    assert _digest(again) == _digest(tiny)
    marker = (tiny / ek.MARKER).stat().st_mtime_ns
    ek.generate_keywords(tiny, **TINY)
    assert (tiny / ek.MARKER).stat().st_mtime_ns == marker  # nothing rewritten
    other = ek.generate_keywords(tmp_path / "other", **{**TINY, "seed": 4})
    assert _digest(other) != _digest(tiny)


@needs_espeak
def test_changed_settings_regenerate_in_place(tmp_path):
    root = ek.generate_keywords(tmp_path / "set", **{**TINY, "words": ["yes"], "n_per_word": 2,
                                                     "n_per_unknown_word": 0, "unknown_words": []})
    assert len(list((root / "yes").iterdir())) == 2
    ek.generate_keywords(root, **{**TINY, "words": ["go"], "n_per_word": 2, "n_per_unknown_word": 0,
                                  "unknown_words": []})
    assert not (root / "yes").exists() and len(list((root / "go").iterdir())) == 2
    assert not list(tmp_path.glob("*.partial-*"))


def test_a_foreign_directory_is_never_overwritten(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not empty"):
        ek.generate_keywords(tmp_path, **TINY)
    assert (tmp_path / "mine.txt").read_text() == "keep"


def test_missing_espeak_names_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ESPEAK_NG", str(tmp_path / "no-such-espeak-ng"))
    with pytest.raises(ConfigError, match="ESPEAK_NG=.*apt-get install espeak-ng.*brew install espeak-ng"):
        ek.generate_keywords(tmp_path / "set", **TINY)
    monkeypatch.delenv("ESPEAK_NG")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="not on PATH.*apt-get install espeak-ng"):
        ek.generate_keywords(tmp_path / "set", **TINY)
    assert not (tmp_path / "set").exists()


@pytest.mark.parametrize("bad, match", [
    ({"words": ["yes", "yes"]}, "repeat"),
    ({"words": ["_silence_"]}, "not allowed"),
    ({"words": [True, "up"]}, "strings"),
    ({"validation_fraction": 0.6, "testing_fraction": 0.5}, "sum below 1"),
    ({"voices": ["en"], "variants": [""]}, "at least 3"),
    ({"pitch": [10, 120]}, r"\[0, 99\]"),
    ({"loudness": 3}, "unknown settings"),
])
def test_bad_settings_are_named(tmp_path, bad, match):
    with pytest.raises(ConfigError, match=match):
        ek.generate_keywords(tmp_path / "set", **{**TINY, **bad})


def test_ensure_generated_needs_a_root_and_skips_when_generate_is_off(tmp_path):
    with pytest.raises(ConfigError, match="root"):
        ek.ensure_generated({"generate": {}})
    assert ek.ensure_generated({"root": str(tmp_path / "x"), "generate": None}) == tmp_path / "x"
    assert not (tmp_path / "x").exists()
