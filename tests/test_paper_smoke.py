"""The paper and audit profiles end to end, at toy budgets: ``./run_all.sh --profile paper --scale smoke``
and ``--profile audit --scale smoke`` (one after the other, over one data set and cache).

The paper profile runs the paper's notebooks only (01-04, 08, 09: one seed, the paper protocol, the
paper's five methods in Table 7); the audit profile runs every notebook under every protocol.
A small synthetic data set in GTZAN's layout, under real GTZAN file names taken from the
filtered split lists (so the ``filtered`` protocol finds its tracks: a few per genre and
split), a random-init ResNet-50 saved where the profile looks for ImageNet's weights (a
temporary Keras home), every location of the study in a temporary folder. The run goes through
every notebook; every figure and table the notebooks save must be written and stamped as made
from synthetic data (the data set carries the synthetic marker, as it should).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genrestudy import paths
from genrestudy.data import demo, splits
from genrestudy.extractors import backbones
from genrestudy.report import reports
from genrestudy.run import profiles
from genrestudy.data.splits import SPLITS

# every notebook in a fresh kernel: minutes, the suite's longest test (conftest.py starts it first)
pytestmark = [pytest.mark.slow, pytest.mark.longest]

ROOT = Path(__file__).resolve().parent.parent
TRACKS_PER_GENRE_AND_SPLIT = 4
CLIP_SECONDS = 3.3  # one 3 s segment per clip
RESNET50_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


def gtzan_names(lists_dir: Path, per_split: int) -> dict[str, list[str]]:
    """``genre/genre.000NN.wav`` names, the first ``per_split`` of each genre in each filtered list."""
    out: dict[str, list[str]] = {}
    for split in SPLITS:
        per_genre: dict[str, list[str]] = {}
        for line in (lists_dir / f"{split}_filtered.txt").read_text().split():
            per_genre.setdefault(line.split("/")[0], []).append(line)
        for genre, names in per_genre.items():
            out.setdefault(genre, []).extend(names[:per_split])
    return out


def lay_out_gtzan(root: Path, lists_dir: Path) -> int:
    """Synthetic clips under real GTZAN names in Kaggle's layout; returns the number of clips."""
    names = gtzan_names(lists_dir, TRACKS_PER_GENRE_AND_SPLIT)
    n = 0
    for g, (genre, files) in enumerate(sorted(names.items())):
        for i, name in enumerate(files):
            style = genre if genre in demo.STYLES else demo.GENRES[g % len(demo.GENRES)]
            clip = demo.synthesize_clip(style, seed=1000 * g + i, duration=CLIP_SECONDS)
            target = root / "genres_original" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, clip, paths.SAMPLE_RATE, subtype="PCM_16", format="WAV")
            n += 1
    # honest provenance: everything made from this set is stamped synthetic
    (root / demo.MARKER).write_text("SYNTHETIC clips under GTZAN file names, written by tests/test_paper_smoke.py\n")
    return n


def random_weights_as_imagenet(keras_home: Path, profile: str = "paper") -> list[Path]:
    """Random-init no-top weights, in Keras's legacy .h5 format under ImageNet's file names, of every
    backbone ``profile`` uses at smoke scale (at every input size it asks for)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    inputs = profiles.profile_settings(profile, "smoke")[0]
    names = dict.fromkeys([inputs.get("backbone", "ResNet50"), *inputs.get("compared_backbones", ())])
    written = []
    for name in names:
        spec = backbones.backbone_spec(name)
        files = {spec.imagenet_file(size) for size in (spec.input_size, *inputs.get("compared_input_sizes", ()))}
        keras.utils.set_random_seed(0)
        side = max(spec.min_size, 96)
        model = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(side, side, 3))
        for file in sorted(files):
            target = keras_home / "models" / file
            target.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(target, "w") as f:
                legacy_h5_format.save_weights_to_hdf5_group(f, model)
            written.append(target)
    return written


def run_notebooks(profile: str) -> list[Path]:
    """The notebooks ``profile`` runs (the others it leaves out, with a line saying why)."""
    return [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if not profiles.left_out(profile, p.stem)]


def saved_ids(profile: str = "audit") -> set[str]:
    """The figure and table ids the notebooks ``profile`` runs save (string literals ``fig…``/``table…`` in their code)."""
    ids = set()
    for path in run_notebooks(profile):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        ids |= set(re.findall(r"""["']((?:fig|table)[0-9a-z_]*)["']""", code))
    return ids


def test_audit_then_paper_profile_run_their_notebooks_at_smoke_scale(tmp_path):
    """The audit profile, then the paper profile over the same data and cache: each writes and stamps
    its own figures and tables, and the paper run trains no LightGBM search the audit already ran
    (the audit's paper-protocol searches at seed 0 are the paper profile's: one cache entry)."""
    lists_dir = paths.shared_data_dir() / "gtzan_splits"
    if not (lists_dir / "train_filtered.txt").is_file():
        lists_dir = splits.BUNDLED_LISTS_DIR   # a fresh clone: the copy bundled with the package
    data = tmp_path / "data"
    n_clips = lay_out_gtzan(data / "gtzan", lists_dir)
    assert n_clips == 10 * len(SPLITS) * TRACKS_PER_GENRE_AND_SPLIT
    # the audit's backbones include the paper's ResNet-50
    assert (tmp_path / "keras" / "models" / RESNET50_FILE) in random_weights_as_imagenet(tmp_path / "keras", "audit")
    searches = data / "cache" / "searches"
    for profile in ("audit", "paper"):
        before = set(searches.iterdir()) if searches.is_dir() else set()
        run_profile_and_check(profile, tmp_path, data)
        if profile == "paper":
            assert set(searches.iterdir()) == before, "the paper run trained searches the audit had cached"


def run_profile_and_check(profile: str, tmp_path: Path, data: Path) -> None:
    """``./run_all.sh --profile PROFILE --scale smoke`` on ``data``; its figures and tables in their own folders."""
    figures, results = tmp_path / profile / "figures", tmp_path / profile / "results"
    env = {**os.environ, "GENRESTUDY_DATA": str(data), "GENRESTUDY_FIGURES": str(figures),
           "GENRESTUDY_RESULTS": str(results), "KERAS_HOME": str(tmp_path / "keras")}
    for name in ("GENRESTUDY_CACHE", "GENRESTUDY_WEIGHTS", "GENRESTUDY_SCALE"):
        env.pop(name, None)
    run = subprocess.run([str(ROOT / "run_all.sh"), "--profile", profile, "--scale", "smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert f"== profile: {profile} (scale smoke)" in run.stdout
    assert f"== profile {profile}: " in run.stdout   # what it runs and leaves out, in its first lines
    ran = re.findall(r"^== (\d\d_\w+)\.ipynb$", run.stdout, re.M)
    assert ran == [p.stem for p in run_notebooks(profile)]
    skipped = re.findall(r"^== (\d\d_\w+)\.ipynb: skipped: ", run.stdout, re.M)
    assert skipped == ([] if profile == "audit" else ["05_knn_genetic", "06_six_networks", "07_backbones"])

    protocols = ["paper"] if profile == "paper" else ["paper", "track", "filtered"]
    expected = saved_ids(profile) | {f"table07_{p}" for p in protocols}
    missing = sorted(i for i in expected
                     if not (figures / f"{i}.png").is_file() and not (results / f"{i}.csv").is_file())
    assert not missing, f"not written: {missing}"
    for csv in sorted(results.glob("*.csv")):
        frame = pd.read_csv(csv)
        assert "data" in frame, f"{csv.name} is not stamped"
        # which rows are restated is read from their source label, not from their stamp (a restated
        # row stamped synthetic must fail here, not be skipped)
        restated = (reports.is_restated(frame["source"]).to_numpy() if "source" in frame
                    else np.zeros(len(frame), bool))
        assert (frame.loc[restated, "data"] == reports.REPORTED_NOTE).all(), f"{csv.name}: a restated row stamped ours"
        assert (frame.loc[~restated, "data"] == reports.SYNTHETIC_NOTE).all(), f"{csv.name}: a row of ours unstamped"
        assert (~restated).any(), f"{csv.name} has no row of ours"
        table_md = (results / f"{csv.stem}.md").read_text()
        assert reports.SYNTHETIC_NOTE in table_md, f"{csv.stem}.md is not stamped"
        assert f"the `{profile}` profile of ./run_all.sh at scale smoke" in table_md, f"{csv.stem}.md: no profile"
    # the paper's own rows in the compact Table 7 are restated, and stamped so
    compact = pd.read_csv(results / "table07_paper.csv")
    assert reports.is_restated(compact["source"]).sum() >= 5
    assert str(tmp_path) not in (results / "README.md").read_text()  # no machine paths in what is published
    assert f"the `{profile}` profile of ./run_all.sh at scale smoke" in (results / "README.md").read_text()
    for svg in sorted(figures.glob("*.svg")):
        assert reports.SYNTHETIC_NOTE in svg.read_text(), f"{svg.name} is not stamped"
    # the run's inputs reached the notebooks: the searches ran at the smoke budget on the paper's protocol
    per_seed = pd.read_csv(results / "table_grid_vs_random_per_seed.csv")
    assert sorted(per_seed["seed"].unique()) == ([0] if profile == "paper" else [0, 1])
    assert set(per_seed["mode"]) == {"halving"}
    assert (per_seed["n_fits"] > 0).all() and np.isfinite(per_seed["test_accuracy"]).all()
    metrics = pd.read_csv(results / "table07_test_metrics.csv")
    assert set(protocols) == set(metrics["protocol"])
    keys = set(metrics["key"])
    paper_methods = {"hybrid_grid", "hybrid_random", "end_to_end", "retrained_grid", "retrained_random"}
    assert (keys == paper_methods) if profile == "paper" else (keys > paper_methods)
