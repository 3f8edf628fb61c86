import hashlib

import numpy as np
import pandas as pd
import pytest

from genrestudy.data import demo
from genrestudy.report import reports
from genrestudy.data.dataset import scan_dataset


def digest(root):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.wav"))}


def test_demo_set_is_deterministic_labelled_and_sized(study_dirs, tmp_path):
    a = demo.generate_demo_dataset(tmp_path / "a", clips_per_genre=1, duration=4.0, n_jobs=1)
    b = demo.generate_demo_dataset(tmp_path / "b", clips_per_genre=1, duration=4.0, n_jobs=1)
    assert digest(a) == digest(b) and demo.is_synthetic(a)
    assert "NOT GTZAN" in (a / demo.MARKER).read_text()
    manifest = scan_dataset(a)
    assert sorted(manifest["label"]) == sorted(demo.GENRES) and (manifest["duration"] == 4.0).all()
    c = demo.generate_demo_dataset(tmp_path / "a", clips_per_genre=2, duration=4.0, seed=1, n_jobs=1)
    assert len(digest(c)) == 20 and digest(c) != digest(b)


def test_demo_genres_differ_in_tempo_and_timbre():
    import librosa

    stats = {}
    for genre in ("blues", "classical", "disco", "metal", "rock"):
        y = demo.synthesize_clip(genre, seed=0, duration=10.0)
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
        stats[genre] = {"centroid": librosa.feature.spectral_centroid(y=y, sr=22050).mean(),
                        "flatness": librosa.feature.spectral_flatness(y=y).mean(),
                        "tempo": librosa.feature.tempo(y=y, sr=22050)[0]}
    others = [g for g in stats if g != "classical"]
    # bowed, drumless classical: darker and more tonal than every drum-driven style
    assert all(stats["classical"]["centroid"] < stats[g]["centroid"] / 2 for g in others)
    assert all(stats["classical"]["flatness"] < stats[g]["flatness"] / 5 for g in others)
    assert stats["blues"]["tempo"] < stats["disco"]["tempo"] < stats["metal"]["tempo"]


def test_demo_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="clips_per_genre"):
        demo.generate_demo_dataset(tmp_path, clips_per_genre=0)
    with pytest.raises(ValueError, match="unknown demo genres"):
        demo.generate_demo_dataset(tmp_path, genres=("polka",))


def test_save_table_and_figure_mark_synthetic(study_dirs):
    import matplotlib.pyplot as plt

    path = reports.save_table("table99_x", pd.DataFrame({"a": [1.5], "b": ["x"]}), synthetic=True)
    assert pd.read_csv(path)["data"].iloc[0] == reports.SYNTHETIC_NOTE
    assert "SYNTHETIC" in path.with_suffix(".md").read_text()
    mixed = pd.DataFrame({"source": ["this study (measured)", "paper (as reported; docs/PAPER.md)"], "a": [1.0, 2.0]})
    stamps = pd.read_csv(reports.save_table("table99_y", mixed, synthetic=True))["data"].tolist()
    assert stamps == [reports.SYNTHETIC_NOTE, reports.REPORTED_NOTE]  # a published number is not synthetic
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = reports.save_fig("fig99_x", fig, synthetic=True)
    assert png.read_bytes()[:4] == b"\x89PNG" and png.with_suffix(".svg").is_file()
    assert "SYNTHETIC" in png.with_suffix(".svg").read_text()


def test_saved_tables_carry_no_absolute_paths(study_dirs, tmp_path, monkeypatch):
    from genrestudy import paths

    monkeypatch.setenv("GENRESTUDY_ROOT", str(tmp_path / "project"))
    frame = pd.DataFrame({"model_file": [str(study_dirs["cache"] / "methods" / "ab12" / "model.keras"),
                                         str(tmp_path / "project" / "data" / "splits" / "paper.csv"),
                                         "/elsewhere/entirely/weights.h5", "a/relative/name.csv"],
                          "x": [1.0, 2.0, 3.0, 4.0]})
    saved = pd.read_csv(reports.save_table("table99_paths", frame))
    assert saved["model_file"].tolist() == ["<cache>/methods/ab12/model.keras", "data/splits/paper.csv",
                                            "weights.h5", "a/relative/name.csv"]
    assert str(tmp_path) not in (study_dirs["results"] / "table99_paths.md").read_text()
    assert paths.shown(tmp_path / "project" / "notebooks" / "x.ipynb") == "notebooks/x.ipynb"


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    import os

    from genrestudy import cache

    target = tmp_path / "x.csv"
    cache.write_csv(target, pd.DataFrame({"a": [1]}))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_each_table_and_the_index_name_the_profile_that_made_it(study_dirs, monkeypatch):
    import pandas as pd

    from genrestudy.report import reports

    monkeypatch.delenv(reports.PROFILE_ENV, raising=False)
    reports.save_table("table_alone", pd.DataFrame({"a": [1]}))
    monkeypatch.setenv(reports.PROFILE_ENV, "paper")
    monkeypatch.setenv(reports.SCALE_ENV, "smoke")
    reports.save_table("table_paper", pd.DataFrame({"a": [1]}))
    assert "Made by the `paper` profile of ./run_all.sh at scale smoke." in (
        study_dirs["results"] / "table_paper.md").read_text()
    index = reports.write_results_index().read_text()
    assert "- [table_paper](table_paper.md): the `paper` profile of ./run_all.sh at scale smoke" in index
    assert "- [table_alone](table_alone.md): a notebook run on its own" in index
