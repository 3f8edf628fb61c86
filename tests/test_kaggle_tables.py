"""Kaggle GTZAN feature tables read as FeatureSets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genrestudy.data.kaggle_tables import parse_filename, read_kaggle_features


def write_table(path, filenames, labels, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"filename": filenames, "length": 66149})
    for j in range(n_features):
        frame[f"mfcc{j + 1}_mean"] = rng.normal(size=len(filenames))
    frame["label"] = labels
    frame.to_csv(path, index=False)
    return frame


def test_three_second_table(tmp_path):
    names = [f"{g}.0000{t}.{s}.wav" for g in ("blues", "rock") for t in range(2) for s in range(3)]
    labels = [n.split(".")[0] for n in names]
    frame = write_table(tmp_path / "features_3_sec.csv", names, labels)
    fs = read_kaggle_features(tmp_path / "features_3_sec.csv")
    assert fs.root is None and fs.features.shape == (12, 3) and fs.features.dtype == np.float32
    np.testing.assert_allclose(fs.features[:, 0], frame["mfcc1_mean"], rtol=1e-6)
    assert fs.segments["track_id"].nunique() == 4 and fs.segments.loc[4, "track_id"] == "blues.00001"
    assert fs.segments["segment"].tolist()[:3] == [0, 1, 2]
    assert fs.classes == ["blues", "rock"] and not fs.synthetic
    assert fs.meta["feature_columns"] == ["mfcc1_mean", "mfcc2_mean", "mfcc3_mean"]  # length is not a feature


def test_thirty_second_names_and_bad_names():
    assert parse_filename("blues.00000.wav") == ("blues.00000", 0)
    assert parse_filename("hiphop.00099.9.wav") == ("hiphop.00099", 9)
    with pytest.raises(ValueError, match="Kaggle GTZAN form"):
        parse_filename("song.wav")


def test_bad_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_kaggle_features(tmp_path / "missing.csv")
    pd.DataFrame({"filename": ["blues.00000.wav"], "x": [1.0]}).to_csv(tmp_path / "nolabel.csv", index=False)
    with pytest.raises(ValueError, match="missing column"):
        read_kaggle_features(tmp_path / "nolabel.csv")
    frame = write_table(tmp_path / "nan.csv", ["blues.00000.wav", "blues.00001.wav"], ["blues"] * 2)
    frame.loc[1, "mfcc2_mean"] = np.nan
    frame.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(ValueError, match="missing feature values"):
        read_kaggle_features(tmp_path / "nan.csv")
    write_table(tmp_path / "dup.csv", ["blues.00000.wav"] * 2, ["blues"] * 2)
    with pytest.raises(ValueError, match="more than one row"):
        read_kaggle_features(tmp_path / "dup.csv")
    frame = write_table(tmp_path / "text.csv", ["blues.00000.wav"], ["blues"])
    frame["mood"] = "sad"
    frame.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(ValueError, match="not numeric"):
        read_kaggle_features(tmp_path / "text.csv")


def test_documented_country_row_reads_back_exactly(tmp_path):
    # the README documents real values of country.00000.wav's row; a table holding them must read back exactly
    row = {"filename": "country.00000.wav", "length": 663300, "chroma_stft_mean": 0.3840266764163971,
           "rms_mean": 0.248418390750885, "tempo": 86.1328125, "mfcc1_mean": -23.06695556640625, "label": "country"}
    pd.DataFrame([row]).to_csv(tmp_path / "features_30_sec.csv", index=False)
    fs = read_kaggle_features(tmp_path / "features_30_sec.csv")
    assert fs.segments.loc[0, "track_id"] == "country.00000" and fs.segments.loc[0, "length"] == 663300
    np.testing.assert_allclose(fs.features[0], [0.3840266764163971, 0.248418390750885, 86.1328125,
                                                -23.06695556640625], rtol=1e-7)


def test_a_saved_pandas_index_never_becomes_a_feature(tmp_path, caplog):
    names = [f"{g}.0000{t}.wav" for g in ("blues", "rock") for t in range(3)]
    frame = write_table(tmp_path / "plain.csv", names, [n.split(".")[0] for n in names])
    frame.to_csv(tmp_path / "indexed.csv")  # pandas' default: the row number as "Unnamed: 0"
    frame.insert(1, "row", range(1, len(frame) + 1))  # an R-style 1..n row number under another name
    frame.to_csv(tmp_path / "numbered.csv", index=False)
    for table in ("indexed.csv", "numbered.csv"):
        with caplog.at_level("WARNING", logger="genrestudy.data.kaggle_tables"):
            fs = read_kaggle_features(tmp_path / table)
        assert fs.meta["feature_columns"] == ["mfcc1_mean", "mfcc2_mean", "mfcc3_mean"], table
        assert fs.features.shape == (6, 3) and "dropped index column(s)" in caplog.text
        caplog.clear()


@pytest.mark.parametrize("content, cause", [
    (b"", "empty file"),
    ("filename,length,mfcc1_mean,label\nblues.00000.wav,1,0.5,blues\n".encode("utf-16"), "not UTF-8 text"),
    ("filename,length,mfcc1_mean,label\nblues.00000.wav,1,0.5,bl\u00e9s\n".encode("latin-1"), "not UTF-8 text"),
    (b"filename,length,mfcc1_mean,label\nblues.00000.wav,1,0.5,blues\nblues.00001.wav,1,0.5,0.7,blues\n",
     "not a well-formed CSV table"),
], ids=["empty", "utf16", "latin1", "ragged"])
def test_an_unreadable_table_gives_one_line_naming_the_file(tmp_path, content, cause):
    path = tmp_path / "features_30_sec.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_kaggle_features(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {cause}") and "\n" not in message, message


def test_mixed_granularities_and_two_labels_for_a_track_are_refused(tmp_path):
    write_table(tmp_path / "mixed.csv", ["blues.00000.wav", "blues.00001.0.wav", "blues.00001.1.wav"], ["blues"] * 3)
    with pytest.raises(ValueError, match=r"^mixed.csv: mixes whole-track rows \(blues.00000.wav\) with 3 s segment "
                                         r"rows \(blues.00001.0.wav\)"):
        read_kaggle_features(tmp_path / "mixed.csv")
    write_table(tmp_path / "torn.csv", ["blues.00000.0.wav", "blues.00000.1.wav", "rock.00000.0.wav"],
                ["blues", "jazz", "rock"])
    with pytest.raises(ValueError, match=r"^torn.csv: track blues.00000 has rows labelled \['blues', 'jazz'\]"):
        read_kaggle_features(tmp_path / "torn.csv")


@pytest.mark.parametrize("genre", ["NA", "null", "None", "nan", "N/A", "NULL", "#N/A"])
def test_genre_named_like_a_missing_value_is_a_label(tmp_path, genre):
    names = [f"{g}.0000{t}.wav" for g in ("blues", "other") for t in range(2)]
    write_table(tmp_path / "t.csv", names, ["blues", "blues", genre, genre])
    fs = read_kaggle_features(tmp_path / "t.csv")
    assert fs.classes == sorted(["blues", genre])


def test_empty_label_is_still_missing(tmp_path):
    frame = write_table(tmp_path / "t.csv", ["blues.00000.wav", "blues.00001.wav"], ["blues", ""])
    with pytest.raises(ValueError, match="1 row\\(s\\) without a label"):
        read_kaggle_features(tmp_path / "t.csv")


def test_label_with_spaces_joins_its_genre_with_a_warning(tmp_path, caplog):
    names = [f"{g}.0000{t}.wav" for g in ("blues", "rock") for t in range(2)]
    write_table(tmp_path / "t.csv", names, ["blues", "blues ", "rock", " rock\t"])
    with caplog.at_level("WARNING", logger="genrestudy.data.kaggle_tables"):
        fs = read_kaggle_features(tmp_path / "t.csv")
    assert fs.classes == ["blues", "rock"]
    assert "stripped" in caplog.text and "join the genre(s) blues, rock" in caplog.text
