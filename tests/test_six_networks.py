"""Neighbouring study 2: the six networks' architectures, their grid, Table 7 methods and model files."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from genrestudy import methods
from genrestudy.signals import sequences
from genrestudy.models import modelfile
from genrestudy.networks import smallnets
from genrestudy.report import table7
from genrestudy.run import cli, predict, study
from genrestudy.networks import smallnets_training as st

KEYS = ["net1_mlp", "net2_cnn", "net3_cnn_bn", "net4_cnn_bn_rmsprop", "net5_lstm", "net6_lstm_cgan"]
SMALL = dict(n_segments=2, n_mels=32, image_size=32, seeds=(0,), retrain_seed=1)
TINY = smallnets.Grid(image_size=16, learning_rates=(0.001, 0.0005), epochs=(1,), max_epochs=2, max_train_rows=24,
                      batch_size=8, cgan_epochs=1, reduced=True,
                      optimisers={"net1": ("adam",), "net2": ("adam",), "net5": ("adam",), "net6": ("adam",)})


def _types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


# ---------------------------------------------------------------- architectures

def test_net2_is_the_sources_cnn_and_its_parameter_count_is_worked_out_by_hand():
    model = smallnets.build_cnn(180, 10)
    assert _types(model) == ["InputLayer", "Rescaling", "Conv2D", "Conv2D", "MaxPooling2D", "Conv2D", "Conv2D",
                             "MaxPooling2D", "Flatten", "Dense", "Dense"]
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 32, 64, 128]
    assert all(c.kernel_size == (3, 3) and c.strides == (1, 1) and c.padding == "same" for c in convs)
    assert [tuple(layer.output.shape[1:]) for layer in model.layers[1:]] == [
        (180, 180, 3), (180, 180, 32), (180, 180, 32), (90, 90, 32), (90, 90, 64), (90, 90, 128), (45, 45, 128),
        (45 * 45 * 128,), (256,), (10,)]
    by_hand = ((3 * 3 * 3 * 32 + 32) + (3 * 3 * 32 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (3 * 3 * 64 * 128 + 128)
               + (45 * 45 * 128 * 256 + 256) + (256 * 10 + 10))
    assert by_hand == 66_460_522 and model.count_params() == by_hand


@pytest.mark.parametrize("net", ["net3", "net4"])
def test_net3_and_net4_put_batch_norm_after_every_convolution(net):
    model = smallnets.build_network(net, None, n_classes=10, image_size=32)
    types = _types(model)
    assert types.count("Conv2D") == 4 and types.count("BatchNormalization") == 4
    for i, name in enumerate(types):
        if name == "Conv2D":
            assert types[i + 1:i + 3] == ["BatchNormalization", "Activation"]
    assert tuple(model.output.shape) == (None, 10)
    assert smallnets.OPTIMISERS[net] == (("adam",) if net == "net3" else ("rmsprop",))


def test_net1_is_an_mlp_on_the_summary_vector():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 80)).astype(np.float32)
    model = smallnets.build_network("net1", x, n_classes=10)
    assert _types(model) == ["InputLayer", "Normalization", "Flatten", "Dense", "Dense", "Dense"]
    assert [layer.units for layer in model.layers if type(layer).__name__ == "Dense"] == [512, 512, 10]
    assert tuple(model.output.shape) == (None, 10)
    standardised = model.layers[1](x)
    assert abs(float(np.mean(standardised))) < 1e-3  # the training rows' mean and variance are in the model


@pytest.mark.parametrize("net", ["net5", "net6"])
def test_net5_and_net6_are_two_stacked_lstms_many_to_one(net):
    x = np.random.default_rng(0).normal(size=(20, 17, 40)).astype(np.float32)
    model = smallnets.build_network(net, x, n_classes=10)
    assert _types(model) == ["InputLayer", "Normalization", "LSTM", "LSTM", "Dropout", "Dense"]
    lstm1, lstm2 = model.layers[2], model.layers[3]
    assert (lstm1.units, lstm1.return_sequences, lstm2.units, lstm2.return_sequences) == (128, True, 128, False)
    assert tuple(lstm1.output.shape) == (None, 17, 128) and tuple(lstm2.output.shape) == (None, 128)
    assert model.layers[4].rate == 0.3 and tuple(model.output.shape) == (None, 10)


def test_an_unknown_network_or_profile_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown network 'net7'"):
        smallnets.build_network("net7", None, n_classes=10)
    with pytest.raises(ValueError, match="no small-network grid for profile 'huge'"):
        smallnets.grid_of("huge")


# ---------------------------------------------------------------- inputs and grid

def test_feature_sequences_are_mfcc_contrast_centroid_chroma_per_frame():
    rng = np.random.default_rng(0)
    segments = (0.1 * rng.standard_normal((3, 66150))).astype(np.float32)
    params = sequences.SequenceParams()
    out = sequences.segment_sequences(segments, sample_rate=22050, **params.as_dict())
    assert (params.n_fft, params.hop_length) == (1024, 4096)
    assert out.shape == (3, params.frames(66150), 40) == (3, 17, 40) and out.dtype == np.float32
    assert len(sequences.FEATURE_NAMES) == 40 and sequences.FEATURE_NAMES[27] == "centroid"
    assert np.isfinite(out).all() and 0 < out[..., 27].max() <= 1  # centroid as a share of Nyquist
    assert np.allclose(out[..., 28:].max(axis=-1), 1.0)  # chroma normalised per frame
    summary = sequences.summary_vectors(out)
    assert summary.shape == (3, 80) and np.allclose(summary[:, :40], out.mean(axis=1))
    fine = sequences.segment_sequences(segments, sample_rate=22050, n_fft=1024, hop_length=512)
    assert fine.shape == (3, 130, 40)
    with pytest.raises(ValueError, match="hop_length=0"):
        sequences.SequenceParams(hop_length=0)


def test_the_paper_grid_is_the_one_docs_paper_states_and_the_demo_says_it_is_reduced():
    # read from the source's restatement, not copied: a grid that drifts from docs/PAPER.md fails
    import re
    from genrestudy import paths

    text = (paths.project_root() / "docs" / "PAPER.md").read_text().split("**Six networks on GTZAN**")[1]
    text = " ".join(text.split("3. **")[0].split()).replace("/ ", "/")
    rates = tuple(float(r) for r in re.search(r"Learning rates ([\d./]+) with", text).group(1).split("/"))
    epochs = tuple(int(e) for e in re.search(r"Net1–4 trained (\d+) and (\d+) epochs", text).groups())
    side = int(re.search(r"resized to (\d+)×", text).group(1))
    paper, demo = smallnets.grid_of("paper"), smallnets.grid_of("demo")
    assert (paper.image_size, paper.learning_rates, paper.epochs, paper.reduced) == (side, rates, epochs, False)
    assert len(paper.configs("net1")) == 2 * len(epochs) * len(rates) and len(paper.configs("net3")) == len(epochs) * len(rates)
    assert {c["optimiser"] for c in paper.configs("net4")} == {"rmsprop"}
    patience = int(re.search(r"early stopping patience (\d+)", text).group(1))
    assert all(c["early_stopping"] == patience for c in paper.configs("net6"))
    assert demo.reduced and demo.image_size < side and len(demo.learning_rates) < len(rates)


def test_batch_norm_momentum_is_a_grid_setting_that_reaches_the_layers_and_the_cache_key():
    # the momentum is ours, not the source's (docs/DEVIATIONS.md): it must be switchable and keyed
    for momentum in (smallnets.BN_MOMENTUM, 0.99):
        grid = smallnets.Grid(**{**TINY.as_dict(), "bn_momentum": momentum})
        config = grid.configs("net3")[0]
        assert config["bn_momentum"] == momentum and "bn_momentum" not in grid.configs("net2")[0]
        model = smallnets.build_network("net3", None, n_classes=3, image_size=16, bn_momentum=config["bn_momentum"])
        layers = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
        assert len(layers) == 4 and {layer.momentum for layer in layers} == {momentum}
    assert smallnets.BN_MOMENTUM != 0.99  # ours differs from Keras' default, hence the deviation entry


def test_the_choice_is_on_validation_and_never_a_diverged_run():
    # real training (Net1 on separable summary vectors): one learning rate learns, one diverges
    from types import SimpleNamespace

    rng = np.random.default_rng(0)

    def part(n):
        y = np.arange(n) % 3
        return (rng.normal(size=(n, 8)) + 3 * np.eye(3, 8)[y]).astype(np.float32), y

    (xt, yt), (xv, yv) = part(60), part(30)
    nd = st.NetData("net1", xt, yt, xv, yv, key={})
    results = []
    for lr in (1e30, 0.01, 1e-9):
        config = {"optimiser": "adam", "learning_rate": lr, "epochs": 6, "batch_size": 16, "early_stopping": None}
        model, _, record = st.fit_config("net1", config, nd, n_classes=3, image_size=16, seed=0)
        results.append(st.ConfigResult("net1", config, SimpleNamespace(meta={"training": record})))
        if record["diverged"]:
            assert np.isnan(record["valid_accuracy"])
        else:  # the recorded accuracy is the kept weights' on the validation rows
            assert record["valid_accuracy"] == pytest.approx((model.predict(xv, verbose=0).argmax(1) == yv).mean())
    assert results[0].record["diverged"] and not results[1].record["diverged"]
    chosen = st.choose(results)
    assert chosen.config["learning_rate"] == 0.01 and chosen.valid_accuracy > results[2].valid_accuracy
    with pytest.raises(ValueError, match="every configuration of net1 diverged"):
        st.choose([results[0]])
    assert st.subset_rows(np.arange(100), 10, seed=0).tolist() == sorted(st.subset_rows(np.arange(100), 10, seed=0))
    assert len(st.subset_rows(np.arange(5), None, seed=0)) == 5


def test_images_are_resized_at_batch_time():
    images = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32), dtype=np.uint8)
    feed = st.ResizedBatches(images, [1, 3, 5], np.arange(6) % 2, size=12, batch_size=2)
    x, y = feed[0]
    assert x.shape == (2, 12, 12, 3) and x.dtype == np.float32 and y.tolist() == [1, 1]
    assert smallnets.resize_images(images, 32) is images


# ---------------------------------------------------------------- Table 7 and model files

def _folder(root, clips=10, seconds=6.5):
    from conftest import write_audio

    for g, label in enumerate(("calm", "lively")):
        for i in range(clips):
            write_audio(root / label / f"{label}_{i:02d}.wav", seconds=seconds, freq=300.0 * (g + 1) + 25 * i,
                        seed=10 * g + i)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The six methods trained on a two-mood folder with a tiny grid, through Table 7's rows."""
    base = tmp_path_factory.mktemp("six")
    patch = pytest.MonkeyPatch()
    for name in ("data", "cache", "figures", "results"):
        patch.setenv(f"GENRESTUDY_{name.upper()}", str(base / name))
    patch.setitem(smallnets.GRIDS, "demo", TINY)
    inputs = study.StudyInputs(data=str(_folder(base / "moods")), **SMALL)
    image_set = study.image_set(inputs, n_jobs=1)
    data = methods.StudyData(inputs, image_set)
    split = study.split(inputs, image_set.segments)
    rows, details = table7.protocol_rows(data, split, protocol="track", methods=KEYS, n_resamples=20, progress=False)
    song = _folder(base / "songs", clips=1) / "calm" / "calm_00.wav"
    yield {"rows": rows, "details": details, "data": data, "split": split, "song": song, "base": base}
    patch.undo()


def test_the_six_networks_register_after_the_knn_methods_and_run_in_table7(trained):
    keys = [m.key for m in methods.registered()]
    assert keys.index("net1_mlp") > keys.index("spectral_knn") and [k for k in keys if k in KEYS] == KEYS
    assert "sequences" in methods.INPUTS and "sequences" in trained["data"].input_keys(("sequences",))
    assert trained["rows"]["key"].tolist() == [k for k in KEYS for _ in range(2)]
    details = trained["details"].set_index("key")
    assert details.loc["net1_mlp", "configurations"] == 2 and details.loc["net4_cnn_bn_rmsprop", "configurations"] == 2
    assert (details["reduced_grid"]).all() and (details["peak_rss_mb"] > 0).all()
    assert details.loc["net6_lstm_cgan", "generated_rows"] > 0
    assert trained["data"].opened["sequences"].meta["signal_cache"] == trained["data"].image_set.meta["signal_cache"]


@pytest.mark.parametrize("key", KEYS)
def test_each_networks_model_file_goes_through_genrestudy_predict(trained, key, capsys):
    path = trained["details"].set_index("key").loc[key, "model_file"]
    model = predict.load_model(path)
    assert isinstance(model, smallnets.SmallNetModel) and model.classes == ["calm", "lively"]
    assert model.header["network"] == key.split("_")[0] and "SYNTHETIC" not in model.describe()
    assert cli.main(["predict", "--model", str(path), str(trained["song"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["segments"] == 2 and sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("key", ["net1_mlp", "net2_cnn", "net5_lstm"])
def test_a_truncated_or_damaged_network_file_is_refused_in_one_line(trained, key, tmp_path, capsys):
    from pathlib import Path

    path = Path(trained["details"].set_index("key").loc[key, "model_file"])
    data = path.read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])
    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, "w") as archive:
        for name in source.namelist():
            archive.writestr(name, source.read(name)[:100] if name == "model.weights.h5" else source.read(name))
    for bad, reason in ((cut, "not a zip archive"), (damaged, "model.weights.h5 holds 100 bytes, its header records")):
        with pytest.raises(modelfile.ModelFileError, match=reason) as info:
            predict.load_model(bad)
        assert str(info.value).startswith(f"not a genrestudy model: {bad}") and "\n" not in str(info.value)
        assert cli.main(["predict", "--model", str(bad), str(trained["song"])]) == 2
        assert capsys.readouterr().err.strip().count("\n") == 0


def test_a_second_run_reads_every_configuration_from_the_cache(trained):
    data, split = trained["data"], trained["split"]
    method = methods.REGISTRY["net2_cnn"](data.inputs)
    train, valid = data.part(split, "train"), data.part(split, "valid")
    method.fit(train, valid)
    assert [r.trained.root.parent.name for r in method.results] == ["small-networks"] * 2
    assert method.record["model_file"] == trained["details"].set_index("key").loc["net2_cnn", "model_file"]


# ---------------------------------------------------------------- notebook 06's tables

def test_the_sources_numbers_stand_in_rows_of_their_own():
    from genrestudy.report import smallnets_report as report

    rows = report.source_rows()
    assert (rows["source"] == report.SOURCE).all() and len(rows) == len(report.SOURCE_TABLE2) + 1
    net5 = rows[(rows["network"] == "Net5 LSTM") & (rows["optimiser"] == "adam")].iloc[0]
    assert (net5["accuracy"], net5["F1"], net5["epochs"]) == (85, 85, "early stop (43)")
    assert "precision" not in rows and "recall" not in rows  # the source did not report them
    assert rows["accuracy"].iloc[-1] == 92


def test_the_source_split_draws_segments_at_random_70_20_10():
    import pandas as pd

    from genrestudy.report import smallnets_report as report

    segments = pd.DataFrame({"track_id": np.repeat(np.arange(50), 10)})
    split = report.source_split(segments, seed=0)
    assert [int((split == p).sum()) for p in ("train", "valid", "test")] == [350, 100, 50]
    sides = pd.Series(split).groupby(segments["track_id"]).nunique()
    assert (sides > 1).any()  # tracks are not kept together, as in the source
    assert np.array_equal(split, report.source_split(segments, seed=0))


def test_table2_scores_each_networks_choice_per_optimiser_and_epochs_with_intervals(trained):
    from genrestudy.report import smallnets_report as report

    data, split = trained["data"], trained["split"]
    fitted = report.fitted_networks(data, split, ["net1_mlp", "net4_cnn_bn_rmsprop"])
    ours = report.table2(fitted, data, data.part(split, "test").rows, n_resamples=20)
    assert ours["network"].tolist() == ["Net1 MLP", "Net4 CNN + batch norm, RMSprop"]
    assert ours["optimiser"].tolist() == ["adam", "rmsprop"] and (ours["grid"] == "reduced (demo)").all()
    assert ((ours["accuracy_ci_low"] <= ours["accuracy"]) & (ours["accuracy"] <= ours["accuracy_ci_high"])).all()
    assert set(ours["learning_rate"]) <= set(TINY.learning_rates)
    table = report.with_source_rows(ours)
    assert table["source"].str.startswith("this study").sum() == 2 and "predict_ms_per_sample" not in table
    cost = report.cost_table(fitted, ours)
    assert cost["params"].tolist() == [m.best.record["params"] for m in fitted.values()]
    assert (cost["peak_rss_mb"] > 0).all() and (cost["predict_ms_per_sample"] > 0).all()
