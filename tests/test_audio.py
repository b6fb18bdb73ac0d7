"""The numpy MFCC front end against TensorFlow's tf.signal pipeline of MLPerf Tiny's KWS get_dataset.py."""

import numpy as np
import pytest

from fixtures_datasets import tone, write_wav
from tinynas.datasets import audio
from tinynas.errors import ConfigError


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def clips():
    rng = np.random.default_rng(0)
    return [tone(440), tone(1800, amplitude=20000, seed=1), (rng.normal(size=16_000) * 3000).astype(np.int16),
            tone(700, seconds=0.6, seed=2), tone(300, seconds=1.3, seed=3)]


def tf_mfcc(tf, samples: np.ndarray) -> np.ndarray:
    """MLPerf Tiny get_dataset.py (feature_type mfcc), written with tf.signal as it is there."""
    wav = tf.cast(tf.constant(samples), tf.float32)
    wav = wav / tf.reduce_max(wav)
    wav = tf.pad(wav, [[0, 16000 - tf.shape(wav)[-1]]]) if len(samples) < 16000 else wav[:16000]
    stfts = tf.signal.stft(wav, frame_length=480, frame_step=320, fft_length=None, window_fn=tf.signal.hann_window)
    spectrograms = tf.abs(stfts)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(40, stfts.shape[-1], 16000, 20.0, 4000.0)
    log_mel = tf.math.log(tf.tensordot(spectrograms, mel_matrix, 1) + 1e-6)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :10].numpy()


@pytest.mark.slow  # importing tensorflow takes 5-25 s
def test_mfcc_matches_the_tf_signal_pipeline(tf):
    ours = audio.mfcc(np.stack([audio.normalize_clip(c) for c in clips()]))
    assert ours.shape == (5, 49, 10) and ours.dtype == np.float32
    for got, samples in zip(ours, clips()):
        ref = tf_mfcc(tf, samples)
        assert ref.shape == (49, 10)
        np.testing.assert_allclose(got, ref, atol=2e-3 * np.abs(ref).max())
    mel = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 4000.0).numpy()
    np.testing.assert_allclose(audio.mel_matrix(), mel, atol=1e-5)


def test_settings_give_49_frames_of_512_point_ffts():
    assert (audio.MLPERF.num_frames, audio.MLPERF.fft_length) == (49, 512)
    assert audio.mel_matrix().shape == (257, 40) and not audio.mel_matrix()[0].any()


def test_normalize_clip_scales_by_the_peak_and_pads_or_cuts_to_one_second():
    x = audio.normalize_clip(np.array([100, -400, 200], np.int16))
    assert x.shape == (16000,) and x[:3].tolist() == [0.5, -2.0, 1.0] and not x[3:].any()
    assert audio.normalize_clip(np.arange(20000, dtype=np.int16) % 7)[-1] == pytest.approx((15999 % 7) / 6)
    assert not audio.normalize_clip(np.zeros(100, np.int16)).any()  # silence stays finite


def test_read_wav_round_trip_and_errors_name_the_file(tmp_path):
    samples = tone(500, seconds=0.25)
    got, rate = audio.read_wav(write_wav(tmp_path / "a.wav", samples))
    assert rate == 16000 and np.array_equal(got, samples)
    import wave

    with wave.open(str(tmp_path / "stereo.wav"), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0" * 40)
    with pytest.raises(ConfigError, match=r"stereo\.wav has 2 channel\(s\) of 16-bit samples; expected mono"):
        audio.read_wav(tmp_path / "stereo.wav")
    (tmp_path / "junk.wav").write_bytes(b"nope")
    with pytest.raises(ConfigError, match=r"junk\.wav is not a readable PCM WAV"):
        audio.read_wav(tmp_path / "junk.wav")
