"""Kaggle GTZAN feature tables read as FeatureSets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genrestudy.kaggle_tables import parse_filename, read_kaggle_features


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
