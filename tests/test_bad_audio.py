"""Bad audio input: never a crash, never silent wrong data, never a good file hidden.

Each test names the defect or message case it guards (see ``lib/genrestudy/data/audio.py`` and
``lib/genrestudy/data/dataset.py``). As root, file permissions do not stop reads, so unreadable
files and folders are simulated with monkeypatch.
"""
import errno
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genrestudy.data import audio, dataset
from genrestudy.data.audio import AudioError, load_audio
from genrestudy.data.dataset import read_manifest, scan_dataset
from genrestudy.signals.signal_set import SegmentParams, build_signal_set
from conftest import make_dataset, write_audio

SMALL = SegmentParams(n_segments=3, segment_seconds=1.0)
NOT_AUDIO = "(the bytes are not audio of that format)"


def row(manifest, name):
    hits = manifest[manifest["path"].map(lambda p: Path(p).name == name)]
    assert len(hits) == 1, f"{name} not in manifest"
    return hits.iloc[0]


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.md", "# a data set\n" * 50)
    return buffer.getvalue()


def _float_wav(path: Path, samples: np.ndarray, rate: int = 22050) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples.astype(np.float32), rate, subtype="FLOAT")
    return path


def _tone(seconds=1.0, rate=22050) -> np.ndarray:
    return 0.4 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)


def _id3_tag(padding=200) -> bytes:
    size = bytes((padding >> shift) & 0x7F for shift in (21, 14, 7, 0))  # ID3v2 'syncsafe' size
    return b"ID3\x04\x00\x00" + size + b"\0" * padding


NON_AUDIO = {
    "random bytes": np.random.default_rng(7).integers(0, 256, 40_000, dtype=np.uint8).tobytes(),
    "a README": b"# Notes\nThese are the genre folders of the study.\n" * 40,
    "a zip archive": _zip_bytes(),
}
HEADERS = {".au": "no '.snd' header", ".wav": "no 'RIFF', 'RF64' or 'FORM' header", ".flac": "no 'fLaC' header",
           ".ogg": "no 'OggS' header", ".mp3": "no ID3 tag or MPEG frame sync at the start"}


# ---------------------------------------------------------------- defect 1: any bytes named .au

@pytest.mark.parametrize("what", NON_AUDIO)
@pytest.mark.parametrize("suffix", HEADERS)
def test_bytes_that_are_not_the_named_container_are_refused(tmp_path, suffix, what):
    path = tmp_path / f"clip{suffix}"
    path.write_bytes(NON_AUDIO[what])
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert str(err.value) == f"not a {suffix} file: {HEADERS[suffix]} {NOT_AUDIO}"


def test_other_container_under_the_name_is_refused_and_named(tmp_path):
    wav = write_audio(tmp_path / "clip.wav", seconds=1.0)
    renamed = tmp_path / "clip.au"
    renamed.write_bytes(wav.read_bytes())
    with pytest.raises(AudioError) as err:
        load_audio(renamed)
    assert str(err.value) == ("not a .au file: no '.snd' header "
                              "(the bytes are WAV audio: give the file its own extension)")


@pytest.mark.parametrize("suffix", [".flac", ".mp3"])
def test_id3_tag_before_the_audio_is_accepted(tmp_path, suffix):
    plain = write_audio(tmp_path / f"plain{suffix}", seconds=1.0)
    tagged = tmp_path / f"tagged{suffix}"
    tagged.write_bytes(_id3_tag() + plain.read_bytes())
    signal, info = load_audio(tagged)
    assert info.sample_rate == 22050 and np.abs(signal).max() > 0.1


def test_scan_excludes_non_audio_named_au(study_dirs, tmp_path):
    for genre in ("jazz", "pop"):
        write_audio(tmp_path / "orig" / "genres" / genre / f"{genre}.00000.au", seconds=1.0)
    (tmp_path / "orig" / "genres" / "jazz" / "jazz.00001.au").write_bytes(NON_AUDIO["a README"])
    manifest = scan_dataset(tmp_path / "orig")
    bad = row(manifest, "jazz.00001.au")
    assert (bad["status"], bad["reason"]) == ("excluded", f"not a .au file: no '.snd' header {NOT_AUDIO}")
    assert (manifest.loc[manifest["path"] != bad["path"], "status"] == "usable").all()


# ---------------------------------------------------------------- defect 2: a bad copy hides the good one

@pytest.mark.parametrize("bad_suffix, good_suffix, content, reason", [
    (".au", ".wav", b"", "empty file (0 bytes)"),
    (".au", ".wav", NON_AUDIO["random bytes"], f"not a .au file: no '.snd' header {NOT_AUDIO}"),
    (".wav", ".au", NON_AUDIO["a zip archive"], f"not a .wav file: no 'RIFF', 'RF64' or 'FORM' header {NOT_AUDIO}"),
])
def test_bad_copy_does_not_hide_the_good_copy(study_dirs, tmp_path, bad_suffix, good_suffix, content, reason):
    root = make_dataset(tmp_path / "gtzan", clips=1)
    folder = root / "genres_original" / "blues"
    (folder / "blues.00000.wav").unlink()
    write_audio(folder / f"blues.00000{good_suffix}", seconds=1.0)
    (folder / f"blues.00000{bad_suffix}").write_bytes(content)
    manifest = scan_dataset(root)
    assert row(manifest, f"blues.00000{good_suffix}")["status"] == "usable"
    bad = row(manifest, f"blues.00000{bad_suffix}")
    assert (bad["status"], bad["reason"]) == ("excluded", reason)


@pytest.mark.parametrize("kept, other", [(".wav", ".ogg"), (".flac", ".mp3"), (".wav", ".flac"), (".au", ".mp3")])
def test_two_usable_copies_keep_the_lossless_one(study_dirs, tmp_path, kept, other):
    for suffix in (kept, other):
        write_audio(tmp_path / "ds" / "a" / f"x{suffix}", seconds=1.0)
    write_audio(tmp_path / "ds" / "b" / "y.wav", seconds=1.0)
    manifest = scan_dataset(tmp_path / "ds")
    assert row(manifest, f"x{kept}")["status"] == "usable"
    dropped = row(manifest, f"x{other}")
    assert (dropped["status"], dropped["reason"]) == ("excluded", f"duplicate of x{kept}")


# ---------------------------------------------------------------- defect 3: huge or non-finite samples

@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("make, message", [
    (lambda x: np.where(np.arange(len(x)) == 100, 1e25, x),
     "1 of 22050 samples are out of range (largest magnitude 1e+25; float audio is nominally within ±1, "
     "accepted up to ±10000)"),
    (lambda x: x * 1e30, "out of range (largest magnitude 4e+29;"),
    (lambda x: np.full_like(x, np.nan), "22050 of 22050 samples are not finite (NaN or infinite; "
                                         "at most 0.1% are tolerated)"),
    (lambda x: np.where(np.arange(len(x)) % 10 == 0, np.inf, x), "2205 of 22050 samples are not finite"),
])
def test_out_of_range_or_non_finite_samples_are_refused(tmp_path, make, message):
    path = _float_wav(tmp_path / "float.wav", make(_tone()))
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.filterwarnings("error")
def test_a_stray_nan_is_silenced_and_loud_float_audio_kept(tmp_path):
    samples = 5 * _tone()  # float audio a little over full scale (peak 2) is still audio
    samples[[10, 20]] = np.nan, np.inf
    signal, _ = load_audio(_float_wav(tmp_path / "float.wav", samples))
    assert np.isfinite(signal).all() and signal[10] == 0 and np.abs(signal).max() > 1.9


@pytest.mark.filterwarnings("error")
def test_scan_excludes_all_nan_clip(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", clips=1, seconds=1.0)
    _float_wav(root / "genres_original" / "blues" / "blues.00001.wav", np.full(22050, np.nan))
    bad = row(scan_dataset(root), "blues.00001.wav")
    assert (bad["status"], bad["reason"]) == ("excluded", "22050 of 22050 samples are not finite (NaN or "
                                                          "infinite; at most 0.1% are tolerated)")


# ---------------------------------------------------------------- defect 4: names that are not UTF-8

def test_names_that_are_not_utf8(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", clips=1, seconds=1.0)
    odd = root / "genres_original" / "blues" / os.fsdecode(b"blues.\xff00001.wav")
    write_audio(root / "genres_original" / "blues" / "blues.00001.wav", seconds=1.0).rename(odd)
    (root / "genres_original" / "rock").rename(root / "genres_original" / os.fsdecode(b"r\xe9ock"))
    first = scan_dataset(root)
    again = scan_dataset(root)  # from the cached CSV
    for manifest in (first, again):
        assert (manifest["status"] == "usable").all(), manifest["reason"].tolist()
        assert str(odd) in set(manifest["path"])
        assert {"blues.\\xff00001", "r\\xe9ock/rock.00000"} <= set(manifest["track_id"])
    assert again.equals(first)
    signal, info = load_audio(odd)
    assert info.samples == 22050 and len(signal) == 22050


# ---------------------------------------------------------------- defect 5: broken or looping links

def test_broken_and_looping_links_are_listed(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", clips=1, seconds=1.0)
    folder = root / "genres_original" / "blues"
    (folder / "blues.00001.wav").symlink_to(folder / "gone.wav")
    (folder / "blues.00002.wav").symlink_to("blues.00002.wav")
    (folder / "blues.00003.wav").symlink_to("blues.00000.wav")
    manifest = scan_dataset(root)
    assert row(manifest, "blues.00001.wav")["reason"] == "broken symbolic link"
    assert row(manifest, "blues.00002.wav")["reason"] == "symbolic link loop"
    assert row(manifest, "blues.00003.wav")["status"] == "usable"  # a link to a good file is a good file
    for name in ("blues.00001.wav", "blues.00002.wav"):
        with pytest.raises(AudioError, match="symbolic link"):
            load_audio(folder / name)


# ---------------------------------------------------------------- messages

def _deny(monkeypatch, name):
    real = open

    def guarded(path, *args, **kwargs):
        if Path(path).name == name:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(audio, "open", guarded, raising=False)


def test_unreadable_file_says_permission_denied(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", clips=2, seconds=1.0)
    _deny(monkeypatch, "blues.00001.wav")
    with pytest.raises(AudioError) as err:
        load_audio(root / "genres_original" / "blues" / "blues.00001.wav")
    assert str(err.value) == "permission denied"
    manifest = scan_dataset(root, use_cache=False)
    assert (row(manifest, "blues.00001.wav")["reason"], row(manifest, "blues.00000.wav")["status"]) == (
        "permission denied", "usable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_for_real(tmp_path):
    path = write_audio(tmp_path / "a.wav", seconds=1.0)
    path.chmod(0)
    with pytest.raises(AudioError, match="^permission denied$"):
        load_audio(path)


def test_unreadable_label_folder_is_a_row(study_dirs, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=1, seconds=1.0)
    real = Path.iterdir

    def iterdir(self):
        if self.name == "rock":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    manifest = scan_dataset(root)
    rock = manifest[manifest["label"] == "rock"]
    assert rock[["track_id", "status", "reason"]].values.tolist() == [
        ["", "excluded", "cannot list the label folder: permission denied"]]
    assert row(manifest, "blues.00000.wav")["status"] == "usable"


def test_implausible_sample_rate(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", clips=1, seconds=1.0)
    _float_wav(root / "genres_original" / "blues" / "blues.00001.wav", _tone(seconds=10, rate=8), rate=8)
    bad = row(scan_dataset(root), "blues.00001.wav")
    assert (bad["status"], bad["reason"]) == ("excluded", "implausible sample rate 8 Hz (accepted: 1000–768000 Hz)")


def test_same_bytes_under_two_labels_get_a_note(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=2, seconds=1.0)
    base = root / "genres_original"
    (base / "rock" / "rock.00012.wav").write_bytes((base / "blues" / "blues.00000.wav").read_bytes())
    manifest = scan_dataset(root)
    assert (manifest["status"] == "usable").all()
    assert row(manifest, "blues.00000.wav")["note"] == "same audio bytes as rock/rock.00012.wav"
    assert row(manifest, "rock.00012.wav")["note"] == "same audio bytes as blues/blues.00000.wav"
    assert (manifest.loc[~manifest["track_id"].isin(["blues.00000", "rock.00012"]), "note"] == "").all()
    assert scan_dataset(root).equals(manifest)  # the note survives the cached CSV


def test_manifest_without_note_column_reads(tmp_path):
    path = tmp_path / "old.csv"
    pd.DataFrame([["blues.00000", "blues", "/x/blues.00000.wav", "wav", 1.0, 22050, 1, 22050, 44144, 1,
                   "usable", ""]], columns=[c for c in dataset.MANIFEST_COLUMNS if c != "note"]).to_csv(path, index=False)
    manifest = read_manifest(path)
    assert list(manifest.columns) == dataset.MANIFEST_COLUMNS and manifest["note"].tolist() == [""]


def test_labels_named_like_missing_values_stay_strings(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", genres=("NA", "None", "null"), clips=1, seconds=1.0)
    first = scan_dataset(root)
    again = scan_dataset(root)  # from the cached CSV, through read_manifest
    for manifest in (first, again):
        assert manifest["label"].tolist() == ["NA", "None", "null"]
        assert manifest["track_id"].tolist() == ["NA.00000", "None.00000", "null.00000"]
    cached = next((study_dirs["cache"] / "manifests").glob("*/manifest.csv"))
    assert read_manifest(cached)["label"].tolist() == ["NA", "None", "null"]


# ---------------------------------------------------------------- through the signal set

def _bad_audio_dataset(tmp_path) -> Path:
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=2, seconds=3.2)
    folder = root / "genres_original" / "rock"
    (folder / "rock.00002.wav").write_bytes(NON_AUDIO["a README"])
    _float_wav(folder / "rock.00003.wav", np.where(np.arange(3 * 22050) == 5, 1e25, _tone(3.0)))
    return root


REASONS = {"rock.00002": f"not a .wav file: no 'RIFF', 'RF64' or 'FORM' header {NOT_AUDIO}",
           "rock.00003": "1 of 66150 samples are out of range (largest magnitude 1e+25; float audio is nominally "
                         "within ±1, accepted up to ±10000)"}


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("stale_manifest", [False, True])
def test_bad_audio_is_excluded_from_the_signal_set(study_dirs, tmp_path, stale_manifest):
    manifest = scan_dataset(_bad_audio_dataset(tmp_path))
    if stale_manifest:  # a manifest that took them for audio: decoding the signals must refuse them
        manifest.loc[manifest["track_id"].isin(REASONS), ["status", "reason"]] = ["usable", ""]
    clips = build_signal_set(manifest, SMALL, n_jobs=2).clips.set_index("track_id")
    for track, reason in REASONS.items():
        assert (clips.loc[track, "status"], clips.loc[track, "reason"]) == ("excluded", reason)
    good = clips.drop(index=list(REASONS))
    assert (good["status"] == "usable").all() and len(good) == 4 and (good["segments"] == 3).all()


@pytest.mark.parametrize("damage", [
    lambda b: b[:len(b) // 2 + 77],                              # cut mid-frame
    lambda b: b[:len(b) // 2] + bytes(range(256)) * 40,          # a garbage tail
])
def test_a_damaged_mp3s_native_decoder_messages_become_one_logged_line(tmp_path, damage):
    """libmpg123 prints 'Warning: Xing stream size off...' / '[src/libmpg123/...]' straight on fd 2."""
    import subprocess
    import sys

    good = write_audio(tmp_path / "good.mp3", seconds=10.0).read_bytes()
    path = tmp_path / "damaged.mp3"
    path.write_bytes(damage(good))
    script = ("import logging, sys\nlogging.basicConfig(format='LOG %(message)s')\n"
              "from genrestudy.data.audio import load_audio, AudioError\n"
              "try:\n    load_audio(sys.argv[1])\nexcept AudioError as e:\n    print('REFUSED', e)\n")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ})
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 0, done.stderr
    assert not [line for line in lines if not line.startswith("LOG ")], lines
    assert len(lines) == 1 and "damaged.mp3: the decoder reported:" in lines[0]
