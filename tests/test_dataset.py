import logging

import pytest

from genrestudy.data import dataset
from genrestudy.run import study
from genrestudy.data.dataset import DatasetLayoutError, find_dataset_root, scan_dataset
from conftest import make_dataset, write_audio


def row(manifest, name):
    hits = manifest[manifest["path"].str.endswith(name)]
    assert len(hits) == 1, f"{name} not in manifest"
    return hits.iloc[0]


def test_kaggle_layout_and_manifest_columns(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "rock"), clips=2)
    manifest = scan_dataset(root)
    assert list(manifest.columns) == dataset.MANIFEST_COLUMNS
    assert sorted(manifest["track_id"]) == ["blues.00000", "blues.00001", "rock.00000", "rock.00001"]
    assert (manifest["status"] == "usable").all()
    first = row(manifest, "blues.00000.wav")
    assert (first["sample_rate"], first["channels"], first["samples"]) == (22050, 1, round(3.5 * 22050))
    assert first["duration"] == pytest.approx(3.5)


def test_kaggle_archive_nesting_and_original_au_layout(study_dirs, tmp_path):
    nested = make_dataset(tmp_path / "k" / "Data", clips=1)
    assert find_dataset_root(tmp_path / "k") == nested / "genres_original"
    for genre in ("jazz", "pop"):
        write_audio(tmp_path / "orig" / "genres" / genre / f"{genre}.00000.au", seconds=1.0)
    manifest = scan_dataset(tmp_path / "orig")
    assert set(manifest["format"]) == {"au"} and set(manifest["label"]) == {"jazz", "pop"}


def test_folder_per_label_any_format(study_dirs, tmp_path):
    for i, ext in enumerate([".wav", ".flac", ".ogg", ".mp3"]):
        write_audio(tmp_path / "ds" / ("happy" if i % 2 else "sad") / f"song{i}{ext}", seconds=1.0)
    (tmp_path / "ds" / "sad" / "notes.txt").write_text("not audio, ignored")
    manifest = scan_dataset(tmp_path / "ds")
    assert len(manifest) == 4 and (manifest["status"] == "usable").all()
    assert set(manifest["track_id"]) == {"sad/song0", "happy/song1", "sad/song2", "happy/song3"}


def test_bad_files_are_listed_with_reasons_not_dropped(study_dirs, tmp_path, caplog):
    root = make_dataset(tmp_path / "gtzan", genres=("blues", "jazz"), clips=1)
    base = root / "genres_original"
    (base / "blues" / "blues.00001.wav").write_bytes(b"")                           # zero bytes
    (base / "blues" / "blues.00002.wav").write_bytes(b"plain text, not audio" * 9)  # non-audio bytes
    good = (base / "blues" / "blues.00000.wav").read_bytes()
    (base / "blues" / "blues.00003.wav").write_bytes(good[:30])                      # truncated header
    (base / "blues" / "blues.00004.wav").write_bytes(good[:44] + bytes(range(256)) * 3)  # corrupt body
    write_audio(base / "jazz" / "jazz.00054.wav", seconds=1.0)                       # known-bad by name
    write_audio(base / "jazz" / "._jazz.00000.wav", seconds=1.0)                     # macOS metadata: ignored
    (base / "country").mkdir()                                                      # empty genre folder
    with caplog.at_level(logging.WARNING):
        manifest = scan_dataset(root)
    assert "._jazz.00000.wav" not in " ".join(manifest["path"])
    assert row(manifest, "blues.00001.wav")["reason"] == "empty file (0 bytes)"
    assert row(manifest, "blues.00002.wav")["reason"].startswith("not a .wav file")
    assert row(manifest, "blues.00003.wav")["reason"].startswith("cannot decode")
    assert row(manifest, "jazz.00054.wav")["reason"] == dataset.KNOWN_BAD_FILES["jazz.00054.wav"]
    country = manifest[manifest["label"] == "country"].iloc[0]
    assert (country["status"], country["reason"]) == ("excluded", "empty label folder: no audio files")
    excluded = manifest[manifest["status"] == "excluded"]
    # the corrupt body decodes as (noisy) audio: it is kept, as GTZAN's distorted clips are
    assert row(manifest, "blues.00004.wav")["status"] in {"usable", "excluded"}
    assert all("\n" not in r for r in excluded["reason"])
    for path in excluded["path"]:
        assert path.split("/")[-1] in caplog.text
    table = dataset.dataset_table(manifest)
    blues = table.set_index("genre").loc["blues"]
    assert blues["found"] == 5 and blues["usable"] + blues["excluded"] == 5
    assert "blues.00001.wav: empty file (0 bytes)" in blues["reasons"]
    assert table.set_index("genre").loc["country", "found"] == 0


def test_duplicate_track_ids(study_dirs, tmp_path):
    write_audio(tmp_path / "ds" / "a" / "x.wav", seconds=1.0)
    write_audio(tmp_path / "ds" / "a" / "x.flac", seconds=1.0)
    write_audio(tmp_path / "ds" / "b" / "y.wav", seconds=1.0)
    manifest = scan_dataset(tmp_path / "ds")
    assert sorted(manifest["status"]) == ["excluded", "usable", "usable"]
    assert "duplicate" in manifest.loc[manifest["status"] == "excluded", "reason"].iloc[0]


def test_non_ascii_names(study_dirs, tmp_path):
    write_audio(tmp_path / "ds" / "música" / "canción ñandú 日本.wav", seconds=1.0)
    write_audio(tmp_path / "ds" / "rock" / "x.wav", seconds=1.0)
    manifest = scan_dataset(tmp_path / "ds")
    assert (manifest["status"] == "usable").all()
    assert "música/canción ñandú 日本" in set(manifest["track_id"])


@pytest.mark.parametrize("make, message", [
    (lambda root: write_audio(root / "loose.wav", seconds=1.0), "lie directly in it"),
    (lambda root: (root / "genre").mkdir(parents=True), "no label folder in it holds audio"),
])
def test_wrong_layout_is_one_clear_error(tmp_path, make, message):
    root = tmp_path / "ds"
    root.mkdir()
    make(root)
    with pytest.raises(DatasetLayoutError, match=message) as err:
        find_dataset_root(root)
    assert "\n" not in str(err.value)


def test_missing_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="genres_original"):
        find_dataset_root(tmp_path / "nothing")


def test_missing_gtzan_falls_back_to_demo_with_a_message(study_dirs, caplog):
    with caplog.at_level(logging.WARNING):
        source = study.locate_data("auto", demo_clips_per_genre=1)
    assert source.synthetic and "SYNTHETIC" in source.description
    assert "no GTZAN at" in caplog.text and "data/gtzan" in caplog.text and "demo" in caplog.text
    with pytest.raises(FileNotFoundError, match="put GTZAN in data/gtzan"):
        study.locate_data("gtzan")


def test_gtzan_folder_is_used_when_present(study_dirs):
    make_dataset(study_dirs["data"] / "gtzan", clips=1)
    source = study.locate_data("auto")
    assert not source.synthetic and source.root == study_dirs["data"] / "gtzan"


def test_manifest_cache_follows_file_changes(study_dirs, tmp_path):
    root = make_dataset(tmp_path / "gtzan", clips=1)
    first = scan_dataset(root)
    assert scan_dataset(root).equals(first)
    write_audio(root / "genres_original" / "blues" / "blues.00000.wav", seconds=5.0)
    changed = scan_dataset(root)
    assert row(changed, "blues.00000.wav")["duration"] == pytest.approx(5.0)


@pytest.mark.parametrize("cut_suffix, whole_suffix", [(".wav", ".flac"), (".au", ".flac"), (".wav", ".mp3"),
                                                      (".au", ".ogg")])
def test_the_complete_copy_of_a_track_is_kept_and_a_truncated_file_noted(study_dirs, tmp_path, cut_suffix,
                                                                        whole_suffix):
    """A copy cut to half its length still decodes; the whole copy (even lossy) is kept, the cut one noted."""
    folder = tmp_path / "ds" / "blues"
    whole = write_audio(folder / f"blues.00000{whole_suffix}", seconds=6.0)
    cut = write_audio(folder / f"blues.00000{cut_suffix}", seconds=6.0)
    data = cut.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    write_audio(tmp_path / "ds" / "rock" / "rock.00000.wav", seconds=1.0)
    manifest = scan_dataset(tmp_path / "ds")
    kept, dropped = row(manifest, whole.name), row(manifest, cut.name)
    assert kept["status"] == "usable", kept.to_dict()
    assert dropped["status"] == "excluded" and dropped["reason"].startswith(f"duplicate of {whole.name}")
    assert "decodes to" in dropped["reason"]
    assert "header says 6.00 s" in dropped["note"] and "truncated" in dropped["note"], dropped.to_dict()


def test_a_lone_truncated_file_is_kept_with_a_note(study_dirs, tmp_path, caplog):
    cut = write_audio(tmp_path / "ds" / "blues" / "x.wav", seconds=4.0)
    cut.write_bytes(cut.read_bytes()[:-22050])
    write_audio(tmp_path / "ds" / "rock" / "y.wav", seconds=1.0)
    with caplog.at_level(logging.WARNING):
        manifest = scan_dataset(tmp_path / "ds")
    lone = row(manifest, "x.wav")
    assert lone["status"] == "usable" and "decodes to 3.50 s but its header says 4.00 s" in lone["note"]
    assert "x.wav decodes to 3.50 s" in caplog.text
    assert row(manifest, "y.wav")["note"] == ""


def test_every_audio_file_under_the_root_gets_a_row(study_dirs, tmp_path):
    """Nested folders, audio beside the label folders and named pipes: each a row, none silently lost."""
    import os

    root = tmp_path / "ds"
    write_audio(root / "blues" / "live" / "x.wav", seconds=1.0)
    write_audio(root / "blues" / "live" / "2019" / "y.flac", seconds=1.0)
    write_audio(root / "rock" / "z.wav", seconds=1.0)
    write_audio(root / "loose.wav", seconds=1.0)
    os.mkfifo(root / "rock" / "pipe.wav")
    manifest = scan_dataset(root)           # a reader of the pipe would block here forever
    assert row(manifest, "live/x.wav")["status"] == "usable" and row(manifest, "x.wav")["label"] == "blues"
    assert row(manifest, "2019/y.flac")["track_id"] == "blues/live/2019/y"
    assert row(manifest, "loose.wav")["status"] == "excluded" and "not in a label folder" in row(manifest, "loose.wav")["reason"]
    pipe = row(manifest, "pipe.wav")
    assert (pipe["status"], pipe["reason"]) == ("excluded", "not a regular file (a named pipe)")
    assert "empty" not in " ".join(manifest["reason"])


def test_a_label_folder_named_genres_is_a_label(study_dirs, tmp_path):
    for label in ("genres", "other"):
        write_audio(tmp_path / "ds" / label / "a.wav", seconds=1.0)
    manifest = scan_dataset(tmp_path / "ds")
    assert sorted(manifest["label"]) == ["genres", "other"]


def test_label_folders_differing_only_in_case_are_warned_about(study_dirs, tmp_path, caplog):
    for label in ("Blues", "blues", "rock"):
        write_audio(tmp_path / "ds" / label / "a.wav", seconds=1.0)
    with caplog.at_level(logging.WARNING):
        scan_dataset(tmp_path / "ds")
    assert "'Blues' and 'blues' differ only in case" in caplog.text
