import numpy as np
import pandas as pd
import pytest

from genrestudy.data import splits
from genrestudy.data.splits import make_split, read_split_lists, split_summary


def segments_table(genres=10, tracks=20, per_track=10):
    rows = [(f"g{g}.{t:05d}", f"g{g}") for g in range(genres) for t in range(tracks) for _ in range(per_track)]
    frame = pd.DataFrame(rows, columns=["track_id", "label"])
    frame.insert(0, "segment_id", np.arange(len(frame)))
    return frame


def test_paper_protocol_is_stratified_over_segments_and_leaks():
    segs = segments_table()
    split = make_split(segs, "paper", seed=1)
    assert split.value_counts().to_dict() == {"train": 1600, "valid": 200, "test": 200}
    per_genre = pd.crosstab(segs["label"], split)
    assert (per_genre["test"] == 20).all()
    assert split_summary(segs, split)["test_tracks_with_train_segments"] > 100


def test_track_protocol_keeps_tracks_whole():
    segs = segments_table()
    split = make_split(segs, "track", seed=1)
    assert (segs.assign(s=split).groupby("track_id")["s"].nunique() == 1).all()
    summary = split_summary(segs, split)
    assert summary["test_tracks_with_train_segments"] == 0
    assert (summary["train_tracks"], summary["valid_tracks"], summary["test_tracks"]) == (160, 20, 20)


@pytest.mark.parametrize("protocol", ["paper", "track"])
def test_same_seed_same_split_other_seed_other_split(protocol):
    segs = segments_table()
    a, b, c = (make_split(segs, protocol, seed=s) for s in (3, 3, 4))
    assert a.equals(b) and not a.equals(c)


def test_too_few_tracks_per_genre_is_one_clear_error():
    segs = segments_table(genres=10, tracks=6, per_track=10)   # 6 tracks a genre: 1.2 left for valid + test
    with pytest.raises(ValueError, match=r"too few tracks per label .* 'g\d' has 6 of 60; every label needs about 10"):
        make_split(segs, "track", seed=0)
    assert make_split(segments_table(genres=10, tracks=10, per_track=10), "track", seed=0).nunique() == 3


def test_bad_arguments():
    segs = segments_table(2, 5, 2)
    with pytest.raises(ValueError, match="unknown split protocol"):
        make_split(segs, "random", seed=0)
    with pytest.raises(ValueError, match="summing to 1"):
        make_split(segs, "track", fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="needs lists_dir"):
        make_split(segs, "filtered")


def test_filtered_from_lists_reports_missing_and_unlisted(tmp_path, caplog):
    for name, tracks in {"train": ["a/a.00000.wav", "b/b.00000.wav"], "valid": ["a/a.00001.wav"],
                         "test": ["b/b.00001.wav", "b/b.00009.wav"]}.items():
        (tmp_path / f"{name}_filtered.txt").write_text("\n".join(tracks) + "\n")
    segs = pd.DataFrame({"track_id": ["a.00000", "a.00001", "b.00000", "b.00001", "c.00000"],
                         "label": ["a", "a", "b", "b", "c"]})
    split = make_split(segs, "filtered", lists_dir=tmp_path)
    assert split.tolist() == ["train", "valid", "train", "test", "unlisted"]
    assert "1 listed tracks missing" in caplog.text and "1 tracks in no list" in caplog.text


def test_missing_list_file_and_overlap(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_filtered.txt"):
        read_split_lists(tmp_path)
    for name in ("train", "valid", "test"):
        (tmp_path / f"{name}_filtered.txt").write_text("x/x.00001.wav\n" if name != "valid" else "")
    with pytest.raises(ValueError, match="both train and test"):
        read_split_lists(tmp_path)


def test_real_filtered_lists(shared_data):
    listed = read_split_lists(shared_data / "gtzan_splits")
    assert listed.value_counts().to_dict() == {"train": 443, "valid": 197, "test": 290}
    assert listed.index.str.match(r"^[a-z]+\.\d{5}$").all()
    # a full GTZAN index: every listed track is present, 70 tracks (the faulty ones) are in no list
    segs = pd.DataFrame([(f"{g}.{i:05d}", g) for g in listed.index.str.split(".").str[0].unique()
                         for i in range(100)], columns=["track_id", "label"])
    coverage = splits.filtered_coverage(segs["track_id"], listed)
    assert coverage["missing"] == [] and len(coverage["unlisted"]) == 1000 - 930
    assert make_split(segs, "filtered", lists_dir=shared_data / "gtzan_splits").value_counts()["test"] == 290


def test_protocol_summaries_save_csvs(tmp_path):
    segs = segments_table(3, 10, 2)
    table = splits.protocol_summaries(segs, seed=0, save_dir=tmp_path, tag="k")
    assert table["protocol"].tolist() == ["paper", "track"]
    saved = pd.read_csv(tmp_path / "track_seed0_k.csv")
    assert list(saved.columns) == ["segment_id", "track_id", "label", "split"] and len(saved) == 60


def test_protocol_summaries_name_files_relative_to_the_data_root(tmp_path, monkeypatch):
    # a published summary must not carry the absolute paths of the machine that ran it
    monkeypatch.setenv("GENRESTUDY_DATA", str(tmp_path / "data"))
    table = splits.protocol_summaries(segments_table(3, 10, 2), seed=0, save_dir=tmp_path / "data" / "splits")
    assert table["file"].tolist() == ["<data>/splits/paper_seed0.csv", "<data>/splits/track_seed0.csv"]


def test_identical_audio_lands_on_one_side_of_the_track_split(tmp_path):
    """Identical bytes under two genres (and repeats of repeats) are one group of the track split."""
    rng = np.random.default_rng(0)
    rows, pairs = [], []
    for g in range(10):
        for t in range(20):
            path = tmp_path / f"g{g}" / f"g{g}.{t:05d}.wav"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(rng.bytes(4000))
            rows += [(f"g{g}.{t:05d}", f"g{g}", str(path))] * 3
    for n in range(10):  # the same bytes under another genre, with another name
        source = tmp_path / f"g{n}" / f"g{n}.{n:05d}.wav"
        copy = tmp_path / f"g{(n + 1) % 10}" / f"copy.{n:05d}.wav"
        copy.write_bytes(source.read_bytes())
        rows += [(f"g{(n + 1) % 10}/copy.{n:05d}", f"g{(n + 1) % 10}", str(copy))] * 3
        pairs.append((f"g{n}.{n:05d}", f"g{(n + 1) % 10}/copy.{n:05d}"))
    # same size and head, another tail: not a repeat
    near = tmp_path / "g0" / "g0.00019.wav"
    near.write_bytes(near.read_bytes()[:-1] + b"x")
    segs = pd.DataFrame(rows, columns=["track_id", "label", "path"])
    for seed in range(5):
        split = make_split(segs, "track", seed=seed)
        side = dict(zip(segs["track_id"], split))
        assert [(a, b) for a, b in pairs if side[a] != side[b]] == [], seed
        assert split.value_counts(normalize=True)["train"] > 0.7
    groups = splits.content_groups(segs)
    assert sum(groups != groups.index) == 10


def test_track_split_without_repeats_is_unchanged(tmp_path):
    segs = segments_table()
    with_paths = segs.assign(path=[str(tmp_path / f"{t}.wav") for t in segs["track_id"]])
    for t in segs["track_id"].unique():
        (tmp_path / f"{t}.wav").write_bytes(t.encode())
    assert make_split(with_paths, "track", seed=2).equals(make_split(segs, "track", seed=2))


def test_a_fresh_clone_without_shared_data_uses_the_bundled_filtered_lists(tmp_path, monkeypatch, study_dirs):
    # no ../shared: GENRESTUDY_SHARED_DATA points at an empty folder, data/ holds no lists either
    monkeypatch.setenv("GENRESTUDY_SHARED_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    found = splits.resolve_lists_dir("auto")
    assert found == splits.BUNDLED_LISTS_DIR
    # the published lists (443 / 197 / 290 tracks, Kereliuk, Sturm & Larsen 2015) with their MIT licence beside them
    listed = read_split_lists(found)
    assert listed.value_counts().to_dict() == {"train": 443, "valid": 197, "test": 290}
    assert "MIT License" in (found / "LICENSE-jongpillee-music_dataset_split.txt").read_text()
    segs = pd.DataFrame({"track_id": listed.index.repeat(2), "label": [t.split(".")[0] for t in listed.index.repeat(2)]})
    segs.insert(0, "segment_id", np.arange(len(segs)))
    assert make_split(segs, "filtered", lists_dir=found).value_counts()["test"] == 2 * 290
    # a folder of the user's own still wins over the bundled copy
    own = study_dirs["data"] / "gtzan_splits"
    own.mkdir(parents=True)
    for name in ("train", "valid", "test"):
        (own / f"{name}_filtered.txt").write_text((found / f"{name}_filtered.txt").read_text())
    assert splits.resolve_lists_dir("auto") == own


def test_the_bundled_lists_are_the_published_ones(shared_data):
    lists = shared_data / "gtzan_splits"
    for name in ("train_filtered.txt", "valid_filtered.txt", "test_filtered.txt",
                 "LICENSE-jongpillee-music_dataset_split.txt"):
        assert (splits.BUNDLED_LISTS_DIR / name).read_bytes() == (lists / name).read_bytes(), name


def test_the_bundled_lists_install_with_the_package():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")   # Python 3.11+
    pyproject = tomllib.loads((Path(splits.__file__).parents[3] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["genrestudy"]
    for file in splits.BUNDLED_LISTS_DIR.iterdir():
        assert any(file.match(pattern) for pattern in patterns), file.name
