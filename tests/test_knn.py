"""Spectral KNN: plain and GA choices of k, their Table 7 methods, model files, and notebook 05 on a folder."""
from __future__ import annotations

import json
import random
import zipfile

import numpy as np
import pandas as pd
import pytest

from genrestudy import methods, paths
from genrestudy.signals import spectral
from genrestudy.models import modelfile
from genrestudy.report import table7
from genrestudy.run import cli, predict, study
from genrestudy.models import genetic, knn, knn_model

CLASSES = ["calm", "lively", "sombre"]


def _problem(n_train=90, n_valid=45, n_test=45, seed=0, scale=True):
    """Features where the class is in column 0 (on a small scale) and column 1 is loud noise."""
    rng = np.random.default_rng(seed)

    def part(n):
        y = np.arange(n) % 3
        X = np.column_stack([y + rng.normal(scale=0.6, size=n), rng.normal(scale=1000.0, size=n),
                             rng.normal(size=(n, 10))])
        return X, y

    (Xt, yt), (Xv, yv), (Xs, ys) = part(n_train), part(n_valid), part(n_test)
    return knn.KnnProblem(Xt, yt, Xv, yv, n_classes=3, scale=scale), Xs, ys


# ---------------------------------------------------------------- KNN and the plain choice

def test_plain_choice_enumerates_every_k_on_validation_and_breaks_ties_to_the_smallest(monkeypatch):
    problem, _, _ = _problem()
    choice = knn.plain_knn(problem)
    assert (choice.evaluations, choice.distinct_k) == (15, 15) and choice.history["k"].tolist() == list(range(1, 16))
    best = choice.history["valid_accuracy"].max()
    assert choice.k == choice.history.loc[choice.history["valid_accuracy"] == best, "k"].min()
    monkeypatch.setattr(knn.KnnProblem, "valid_accuracy", lambda self, k: 0.5 if k in (4, 9, 12) else 0.4)
    assert knn.plain_knn(problem).k == 4


def test_the_pipeline_is_a_standardised_euclidean_knn_and_scaling_matters():
    problem, X_test, y_test = _problem()
    pipeline = problem.fit(5)
    step = pipeline.named_steps["knn"]
    assert (step.n_neighbors, step.metric, step.weights) == (5, "euclidean", "uniform")
    assert type(pipeline.named_steps["scale"]).__name__ == "StandardScaler"
    assert knn.knn_pipeline(3, scale=False).named_steps["scale"] == "passthrough"
    effect = knn.scaling_effect(problem, X_test, y_test)
    assert effect["features"].tolist() == ["standardised", "raw (unscaled)"]
    assert effect.loc[0, "test_accuracy"] > effect.loc[1, "test_accuracy"] + 20  # the loud column drowns the class


def test_too_small_a_training_set_or_too_large_a_k_is_refused_in_one_line():
    X, y = np.zeros((14, 3)), np.arange(14) % 2
    with pytest.raises(ValueError, match="training set has 14 samples: k up to 15 needs at least 15") as info:
        knn.KnnProblem(X, y, X, y, n_classes=2)
    assert "\n" not in str(info.value)
    problem, _, _ = _problem(n_train=20)
    with pytest.raises(ValueError, match="k=21 is outside 1..20"):
        problem.fit(21)
    with pytest.raises(ValueError, match="k=0 is outside"):
        problem.valid_accuracy(0)


def test_class_probabilities_have_a_column_for_every_class():
    problem, X_test, _ = _problem()
    pipeline = knn.knn_pipeline(3).fit(problem.X_train[problem.y_train < 2], problem.y_train[problem.y_train < 2])
    proba = knn.class_probabilities(pipeline, X_test, 4)
    assert proba.shape == (len(X_test), 4) and np.allclose(proba.sum(axis=1), 1) and not proba[:, 2:].any()


# ---------------------------------------------------------------- the genetic algorithm

def test_the_ga_settings_live_in_one_object_and_read_back():
    settings = genetic.GASettings()
    assert settings.as_dict() == {"population": 10, "generations": 20, "crossover_probability": 0.8,
                                  "mutation_probability": 0.1, "bits": 4, "selection": "selRoulette",
                                  "crossover": "cxOnePoint", "mutation": "mutFlipBit", "elitism": "HallOfFame"}
    assert settings.elites == 2 and genetic.GASettings(population=5).elites == 1 and genetic.GASettings(population=15).elites == 1
    grid = genetic.ga_grid()
    assert [(s.population, s.generations) for s in grid] == [(p, g) for p in (5, 10, 15) for g in (10, 20, 30)]


def test_a_population_larger_than_the_values_of_k_or_a_bad_setting_is_refused_in_one_line():
    with pytest.raises(ValueError, match="population 16 is outside 3..15") as info:
        genetic.GASettings(population=16)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="crossover_probability=1.5"):
        genetic.GASettings(crossover_probability=1.5)
    with pytest.raises(ValueError, match="selection='selNope' .not in deap.tools"):
        genetic.GASettings(selection="selNope")


def test_chromosomes_are_the_binary_code_of_k_and_0000_is_no_k():
    assert genetic.encode(1) == [0, 0, 0, 1] and genetic.encode(14) == [1, 1, 1, 0]
    assert [genetic.decode(genetic.encode(k)) for k in range(1, 16)] == list(range(1, 16))
    assert genetic.decode([0, 0, 0, 0]) is None


def test_the_ga_runs_on_deaps_operators(monkeypatch):
    from deap import tools

    calls = {"selRoulette": 0, "cxOnePoint": 0, "mutFlipBit": 0}
    for name in calls:
        original = getattr(tools, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(tools, name, spy)
    problem, _, _ = _problem()
    genetic.ga_knn(problem, genetic.GASettings(population=5, generations=4), seed=0)
    assert calls["selRoulette"] == 4 and calls["mutFlipBit"] == 4 * 4 and calls["cxOnePoint"] > 0


def test_a_ga_run_is_seeded_memoised_elitist_and_leaves_the_global_random_state_alone():
    problem, _, _ = _problem()
    settings = genetic.GASettings(population=5, generations=10)
    random.seed(123)
    state = random.getstate()
    first = genetic.ga_knn(problem, settings, seed=7)
    assert random.getstate() == state
    again = genetic.ga_knn(problem, settings, seed=7)
    pd.testing.assert_frame_equal(first.history, again.history)
    assert first.k == again.k and first.evaluations == again.evaluations
    history = first.history
    assert history["generation"].tolist() == list(range(11))
    assert (np.diff(history["best"]) >= 0).all()  # elitism: the best never gets lost
    assert (history["mean"] <= history["best"]).all()
    assert first.distinct_k <= 15 and first.evaluations >= 5 and first.distinct_k <= first.evaluations
    assert history["evaluations"].iloc[-1] == first.evaluations and history["distinct_k"].iloc[-1] == first.distinct_k
    assert first.valid_accuracy == pytest.approx(history["best"].iloc[-1])
    assert first.valid_accuracy == pytest.approx(problem.valid_accuracy(first.k))


def test_elitism_copies_the_single_best_individual_once_or_twice_as_the_source_states():
    problem, _, _ = _problem()
    accuracy = {k: problem.valid_accuracy(k) for k in knn.K_VALUES}
    for population, copies in ((6, 2), (5, 1)):
        run = genetic.ga_knn(problem, genetic.GASettings(population=population, generations=8), seed=1)
        history = run.history
        for previous, current in zip(history.itertuples(), history.iloc[1:].itertuples()):
            # one best individual so far leads the next generation, copied once (odd) or twice (even)
            elites = current.population_k[:copies]
            assert len(set(elites)) == 1 and accuracy[elites[0]] == pytest.approx(previous.best)
            assert len(current.population_k) == population


def test_where_the_ga_differs_from_enumeration():
    problem, _, _ = _problem()
    enumerated = knn.plain_knn(problem)
    small = [genetic.ga_knn(problem, genetic.GASettings(population=5, generations=10), seed=s) for s in range(20)]
    middle = [genetic.ga_knn(problem, genetic.GASettings(population=10, generations=20), seed=s) for s in range(5)]
    table = genetic.agreement(small + middle, enumerated).set_index("setting")
    small_row = table.loc[small[0].label]
    # a small GA misses k values and sometimes the enumerated k; the source's middle setting finds it
    assert small_row["covered_every_k"] < 1 and small_row["found_enumerated_k"] < 1
    assert table.loc[middle[0].label, "found_enumerated_k"] == 1
    assert table.loc[middle[0].label, "fitness_evaluations"] > 15 * 5  # at several times enumeration's cost
    assert (table["enumeration_fits"] == 15).all() and (table["enumerated_k"] == enumerated.k).all()


def test_the_comparison_table_counts_costs_and_labels_the_source_rows():
    problem, X_test, y_test = _problem()
    tracks = np.arange(len(X_test)) % 15  # a track's segments share its label
    plain = knn.plain_knn(problem)
    runs = genetic.ga_runs(problem, genetic.ga_grid((5,), (5, 10)), seeds=[0, 1], progress=False)
    per_run = knn.comparison_table([plain, *runs], problem, X_test, y_test, tracks, n_resamples=30)
    assert len(per_run) == 5 and per_run.loc[0, "fitness_evaluations"] == 15
    assert (per_run["test_ci_low"] <= per_run["test_accuracy"]).all()
    assert (per_run["test_accuracy"] <= per_run["test_ci_high"]).all()
    assert (per_run["classify_s_per_sample"] > 0).all()
    summary = knn.summarise_runs(per_run)
    ours, source = summary[summary["source"] == "this study (measured)"], summary[summary["source"] == knn.SOURCE_LABEL]
    assert ours["runs"].tolist() == [1, 2, 2]
    assert source["test_accuracy"].tolist() == [87.84, 89.19] and source["k_chosen"].tolist() == ["14", "3"]
    assert source["classify_s_per_sample"].iloc[1] == 0.0054
    assert list(knn.histories_by_setting(runs)) == ["population 5 × 5 generations", "population 5 × 10 generations"]
    assert knn.consensus_k(runs) in {r.k for r in runs}


# ---------------------------------------------------------------- Table 7, model files, the notebook

def _folder(root, clips=10, seconds=7.0):
    """A folder-per-label data set of two moods (not GTZAN's layout)."""
    from conftest import write_audio

    for g, label in enumerate(("calm", "lively")):
        for i in range(clips):
            write_audio(root / label / f"{label}_{i:02d}.wav", seconds=seconds, freq=300.0 * (g + 1) + 25 * i,
                        seed=10 * g + i)
    return root


SMALL = dict(n_segments=2, n_mels=32, image_size=32, seeds=(0,), retrain_seed=1)


def test_the_knn_methods_register_after_the_papers_five_and_run_in_table7(tmp_path, study_dirs):
    keys = [m.key for m in methods.registered()]
    assert keys[5] == "spectral_knn" and "spectral" in methods.INPUTS
    assert not any("ga" in key.split("_") for key in keys)  # the GA is no row of its own: it is this one's check
    inputs = study.StudyInputs(data=str(_folder(tmp_path / "moods")), **SMALL)
    image_set = study.image_set(inputs, n_jobs=1)
    data = methods.StudyData(inputs, image_set)
    values = data.values("spectral")
    assert values.shape == (len(image_set), 12)
    assert data.opened["spectral"].meta["signal_cache"] == study.signal_set(inputs).key
    assert image_set.meta["signal_cache"] == data.opened["spectral"].meta["signal_cache"]  # one decode for both
    split = study.split(inputs, image_set.segments)
    registered = [methods.knn.SpectralKNN]
    rows, details = table7.protocol_rows(data, split, protocol="track", methods=registered,
                                         n_resamples=20, progress=False)
    assert rows["method"].tolist() == ["Spectral KNN"] * 2
    detail = details.iloc[0]
    assert detail["fitness_evaluations"] == 15 and detail["distinct_k_fitted"] == 15
    # the GA's choice and its cost are stated beside the enumerated k
    assert detail["ga_found_enumerated_k"] == (detail["ga_k"] == detail["k"])
    assert detail["ga_fitness_evaluations"] > detail["ga_distinct_k_fitted"] and "10 × 20" in detail["ga_settings"]
    assert "spectral" in data.input_keys(("spectral",))


def test_spectral_features_out_of_step_with_the_images_are_refused(tmp_path, study_dirs):
    inputs = study.StudyInputs(data=str(_folder(tmp_path / "moods", clips=3, seconds=6.5)), **SMALL)
    image_set = study.image_set(inputs, n_jobs=1)
    features = spectral.spectral_features(study.signal_set(inputs), spectral.study_params(inputs))
    order = np.r_[1, 0, 2:len(features.segments)]
    shuffled = type(features)(root=features.root, values=features.values[order],
                              segments=features.segments.iloc[order].reset_index(drop=True), meta=features.meta)
    with pytest.raises(ValueError, match="not aligned with the image set") as info:
        methods.StudyData(inputs, image_set, opened={"spectral": shuffled}).values("spectral")
    assert "\n" not in str(info.value)


@pytest.fixture
def saved(tmp_path):
    """A KNN model saved from a fitted pipeline on spectral features of generated clips."""
    from conftest import write_audio

    rng = np.random.default_rng(0)
    sr, params = 22050, spectral.SpectralParams(n_fft=1024, hop_length=512)
    clips = [(rng.standard_normal(2 * sr) * (0.1 + 0.3 * (i % 3))).astype(np.float32).reshape(2, sr)
             for i in range(12)]
    X = np.concatenate([spectral.spectral_shape(c, sample_rate=sr, **params.extractor_kwargs()) for c in clips])
    X[:, 0] += np.repeat(np.arange(12) % 3, 2) * 3000.0
    y = np.repeat(np.arange(12) % 3, 2)
    pipeline = knn.knn_pipeline(4).fit(X, y)
    path = knn_model.save_knn_model(tmp_path / "knn.zip", pipeline, X, y, classes=CLASSES,
                              image_params={"n_segments": 2, "segment_seconds": 1.0}, spectral_params=params,
                              synthetic=True, selection="test")
    song = write_audio(tmp_path / "song.wav", seconds=2.2, freq=500.0)
    return {"path": path, "pipeline": pipeline, "X": X, "params": params, "song": song}


def test_a_saved_knn_model_holds_no_pickle_and_predicts_as_the_pipeline(saved):
    with zipfile.ZipFile(saved["path"]) as archive:
        assert sorted(archive.namelist()) == sorted([modelfile.HEADER_ENTRY, knn_model.FEATURES_ENTRY, knn_model.LABELS_ENTRY,
                                                     knn_model.SCALER_ENTRY])
        header = json.loads(archive.read(modelfile.HEADER_ENTRY))
    assert (header["kind"], header["k"], header["classes"], header["scaled"]) == ("knn", 4, CLASSES, True)
    assert set(header[modelfile.PAYLOAD_FIELD]) == {knn_model.FEATURES_ENTRY, knn_model.LABELS_ENTRY, knn_model.SCALER_ENTRY}
    assert header["spectral_params"] == {"n_fft": 1024, "hop_length": 512, "roll_percent": 0.85, "level": "segment"}
    model = predict.load_model(saved["path"])
    assert isinstance(model, knn_model.KnnModel) and "k=4" in model.describe() and "SYNTHETIC" in model.describe()
    np.testing.assert_array_equal(model.feature_probabilities(saved["X"]), saved["pipeline"].predict_proba(saved["X"]))
    with pytest.raises(TypeError, match="not images"):
        model.segment_probabilities(np.zeros((1, 8, 8), np.uint8))


def test_predicting_a_file_computes_its_segments_spectral_features(saved):
    from genrestudy.data.audio import load_audio

    model = predict.load_model(saved["path"])
    result = predict.predict_file(saved["song"], model)
    signal, _ = load_audio(saved["song"], sample_rate=22050)
    segments = signal[:2 * 22050].reshape(2, 22050)
    vectors = spectral.spectral_shape(segments, sample_rate=22050, **saved["params"].extractor_kwargs())
    expected = saved["pipeline"].predict_proba(vectors).mean(axis=0)
    assert result.segments == 2
    assert [result.probabilities[c] for c in CLASSES] == pytest.approx(expected.tolist())


def test_genrestudy_predict_uses_a_knn_model_file(saved, capsys):
    assert cli.main(["predict", "--model", str(saved["path"]), str(saved["song"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["segments"] == 2 and set(out["probabilities"]) == set(CLASSES)


def test_a_truncated_damaged_or_foreign_knn_file_is_refused_in_one_line(saved, tmp_path, capsys):
    data = saved["path"].read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("model.pkl", b"not ours")
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(saved["path"]) as source, zipfile.ZipFile(damaged, "w") as archive:
        for name in source.namelist():
            archive.writestr(name, source.read(name)[:40] if name == knn_model.FEATURES_ENTRY else source.read(name))
    unhashed = tmp_path / "unhashed.zip"  # as written before model files recorded their entries' hashes
    with zipfile.ZipFile(damaged) as source, zipfile.ZipFile(unhashed, "w") as archive:
        header = json.loads(source.read(modelfile.HEADER_ENTRY))
        header.pop(modelfile.PAYLOAD_FIELD), header.pop(modelfile.PAYLOAD_SIZES)
        for name in source.namelist():
            archive.writestr(name, json.dumps(header) if name == modelfile.HEADER_ENTRY else source.read(name))
    for path, reason in ((cut, "not a zip archive"), (foreign, "without genrestudy's"),
                         (damaged, "train_features.npy holds .* bytes, its header records"),
                         (unhashed, "no readable train_features.npy")):
        with pytest.raises(modelfile.ModelFileError, match=reason) as info:
            predict.load_model(path)
        assert str(info.value).startswith(f"not a genrestudy model: {path}") and "\n" not in str(info.value)
        assert cli.main(["predict", "--model", str(path), str(saved["song"])]) == 2
        assert capsys.readouterr().err.strip().count("\n") == 0


def test_a_kaggle_table_gives_the_spectral_columns_it_has(tmp_path, study_dirs):
    rng = np.random.default_rng(0)
    rows = []
    for g, genre in enumerate(("blues", "rock")):
        for t in range(12):
            for s in range(3):
                rows.append({"filename": f"{genre}.{t:05d}.{s}.wav", "length": 66149, "chroma_stft_mean": rng.random(),
                             "spectral_centroid_mean": 1000 + 800 * g + rng.normal(scale=100),
                             "spectral_centroid_var": 1e4, "rolloff_mean": 3000 + 900 * g, "rolloff_var": 4e4,
                             "label": genre})
    path = tmp_path / "features_3_sec.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    table = spectral.study_table(study.StudyInputs(data=str(path)))
    assert table.names == ["centroid_mean", "centroid_std", "rolloff_mean", "rolloff_std"] and not table.from_audio
    assert table.missing == ["spread", "skewness", "kurtosis", "flatness"] and table.classes == ["blues", "rock"]
    problem = knn.KnnProblem.from_split(table.values, table.labels, table.split, n_classes=2)
    assert knn.plain_knn(problem).valid_accuracy > 0.8
    bare = tmp_path / "bare.csv"
    pd.DataFrame(rows).drop(columns=["spectral_centroid_mean", "spectral_centroid_var", "rolloff_mean",
                                     "rolloff_var"]).to_csv(bare, index=False)
    with pytest.raises(ValueError, match="no spectral-shape column"):
        spectral.study_table(study.StudyInputs(data=str(bare)))


@pytest.mark.slow
def test_notebook05_runs_on_a_two_class_folder(tmp_path, study_dirs):
    import papermill

    root = _folder(tmp_path / "moods")
    model_file = tmp_path / "moods_knn.zip"
    notebook = paths.project_root() / "notebooks" / "05_knn_genetic.ipynb"
    papermill.execute_notebook(str(notebook), str(tmp_path / "05.ipynb"), cwd=str(notebook.parent), progress_bar=False,
                               kernel_name="python3",
                               parameters={"data": str(root), "n_segments": 2, "n_mels": 32, "image_size": 32,
                                           "ga_populations": [5], "ga_generations": [10], "ga_seeds": [0, 1],
                                           "n_resamples": 30, "knn_model_file": str(model_file)})
    comparison = pd.read_csv(study_dirs["results"] / "table_knn_comparison.csv")
    assert comparison["method"].tolist()[:2] == ["plain KNN (k = 1..15 enumerated)",
                                                 "GA KNN (population 5 × 10 generations)"]
    assert "data" not in comparison.columns  # a folder of real audio is not stamped synthetic
    for fig in ("fig_knn_accuracy_vs_k", "fig_knn_ga_fitness", "fig_knn_confusion"):
        assert (study_dirs["figures"] / f"{fig}.png").is_file()
    assert predict.load_model(model_file).classes == ["calm", "lively"]


def test_the_genrestudy_command_reads_a_knn_model_in_a_fresh_process(saved):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "genrestudy.run.cli", "predict", "--model", str(saved["path"]),
                           str(saved["song"])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
