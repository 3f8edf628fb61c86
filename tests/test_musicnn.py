"""musicnn's published weights in Keras 3: the port against the original graph, tags, caches, a missing download."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from genrestudy import cache, paths
from genrestudy.extractors import musicnn, musicnn_weights

CLIP = "country/country.00000.wav"


@pytest.fixture(scope="session")
def weights_cache() -> Path:
    """The cache folder holding the fetched weights, or skip with a reason when they are absent."""
    root = paths.cache_dir()
    if not musicnn_weights.available(root):
        pytest.skip(f"musicnn's weights are not in {root}; fetch them with `{musicnn_weights.FETCH_COMMAND}`")
    return root


def _frozen_original(model: str, cache_root: Path):
    """The authors' inference graph: the checkpoint's ``.meta`` cut to what feeds ``model/Sigmoid``
    (its gradient nodes do not import today), variables replaced by the checkpoint's values."""
    import tensorflow as tf

    folder = musicnn_weights.checkpoint_dir(model, cache_root)
    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, ["model/Sigmoid"])
    values = musicnn_weights.read_checkpoint(model, cache_root)
    for node in graph_def.node:
        if node.op in ("VariableV2", "Variable"):
            value = values[node.name]
            node.op = "Const"
            node.ClearField("attr")
            node.attr["dtype"].type = tf.float32.as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=tf.float32))
    return graph_def


def _run_original(model: str, cache_root: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    graph_def = _frozen_original(model, cache_root)
    nodes = {node.name: node for node in graph_def.node}
    # the dense layer feeding the tags reads the penultimate features (dropout is the identity at inference)
    bias_add = nodes[nodes["model/Sigmoid"].input[0]]
    penultimate = nodes[bias_add.input[0]].input[0]
    fetch = {"tags": "model/Sigmoid:0", "penultimate": f"{penultimate}:0"}
    if "model/moments/Squeeze" in nodes:
        fetch.update(mean_pool="model/moments/Squeeze:0", max_pool="model/Max:0")
    placeholders = [node for node in graph_def.node if node.op == "Placeholder"]
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
        feed = {}
        for node in placeholders:
            tensor = graph.get_tensor_by_name(f"{node.name}:0")
            feed[tensor] = False if tensor.dtype == tf.bool else x
        with tf.compat.v1.Session(graph=graph) as session:
            out = session.run({name: graph.get_tensor_by_name(t) for name, t in fetch.items()}, feed_dict=feed)
    return {name: np.asarray(value).reshape(len(x), -1) for name, value in out.items()}


@pytest.fixture(scope="session")
def original_weights() -> Path:
    """The weights from the pinned musicnn sdist that set-up fetches (fetched here when missing): the
    port's test needs no GTZAN and runs in every test run; it fails, never skips, without them."""
    root = paths.cache_dir()
    if not musicnn_weights.available(root):
        try:
            musicnn_weights.fetch_weights(cache_root=root)
        except musicnn_weights.WeightsMissing as exc:
            pytest.fail(f"musicnn's original weights are needed and could not be fetched: {exc}")
    return root


#: the original repository's stated constants (musicnn/configuration.py), restated here, not imported
AUTHORS = {"sr": 16000, "n_fft": 512, "hop": 256, "n_mels": 96, "input_seconds": 3}
STUDY_RATE = 22050  # the rate the study's audio is decoded at: the port must resample as librosa.load does


def _test_signal(seconds: float = 6.5) -> np.ndarray:
    """Generated audio with structure in time and frequency (chirp, notes, noise bursts), at the study's rate."""
    rng = np.random.default_rng(23)
    t = np.arange(int(seconds * STUDY_RATE)) / STUDY_RATE
    chirp = 0.3 * np.sin(2 * np.pi * (100 * t + 400 * t ** 2))
    notes = 0.2 * np.sin(2 * np.pi * 220 * 2 ** (np.floor(t * 4) % 12 / 12) * t)
    bursts = 0.1 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 1.5 * t) > 0.6)
    return (chirp + notes + bursts).astype(np.float32)


def _authors_patches(signal: np.ndarray) -> np.ndarray:
    """musicnn's own preprocessing (extractor.batch_data), re-implemented from its constants with
    librosa directly: load at 16 kHz, mel power, float16, log10(10000 x + 1), consecutive patches."""
    import librosa

    audio = librosa.resample(signal, orig_sr=STUDY_RATE, target_sr=AUTHORS["sr"], res_type="soxr_hq")
    rep = librosa.feature.melspectrogram(y=audio, sr=AUTHORS["sr"], hop_length=AUTHORS["hop"],
                                         n_fft=AUTHORS["n_fft"], n_mels=AUTHORS["n_mels"]).T.astype(np.float16)
    rep = np.log10(10000 * rep.astype(np.float32) + 1)
    n_frames = int(librosa.time_to_frames(AUTHORS["input_seconds"], sr=AUTHORS["sr"], n_fft=AUTHORS["n_fft"],
                                          hop_length=AUTHORS["hop"])) + 1
    return np.stack([rep[s:s + n_frames] for s in range(0, rep.shape[0] - n_frames + 1, n_frames)])


def test_the_ports_input_is_the_authors_and_a_wrong_hop_fft_or_rate_is_caught():
    signal = _test_signal()
    expected = _authors_patches(signal)
    assert expected.shape == (2, 187, 96)
    ours = musicnn.log_compress(musicnn.clip_patches(signal, sample_rate=STUDY_RATE))
    assert ours.shape == expected.shape and np.allclose(ours, expected, atol=1e-3)
    for wrong in ({"hop_length": 512}, {"n_fft": 1024}, {"sample_rate": 22050}, {"n_mels": 128}):
        params = musicnn.MelParams(**wrong)
        try:
            other = musicnn.log_compress(musicnn.clip_patches(signal, sample_rate=STUDY_RATE, params=params))
        except ValueError:  # too short for one patch at these settings: caught as well
            continue
        assert other.shape != expected.shape or not np.allclose(other, expected, atol=1e-3), wrong


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"])
def test_the_port_computes_what_the_original_graph_computes(model, original_weights):
    # both sides from generated audio: the original graph gets the authors' preprocessing (above), the
    # port the project's own input code; a wrong hop, FFT size or sample rate in the port fails here
    signal = _test_signal()
    original = _run_original(model, original_weights, _authors_patches(signal))
    port = musicnn.run_network(model, musicnn.clip_patches(signal, sample_rate=STUDY_RATE), cache_root=original_weights)
    assert set(original) <= set(port)
    for name, expected in original.items():
        assert port[name].shape == expected.shape, name
        # float32 rounding of another summation order: within 1e-4 (relative beyond magnitude 1:
        # the max-pooled features reach ~170, where float32's spacing is 1.5e-5)
        assert np.abs(port[name] - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max()), name
    assert port["tags"].std() > 0.01  # real weights: the tags vary


def test_the_real_clip_gets_the_original_models_top_tags(weights_cache, shared_data, capsys):
    from genrestudy.run import cli

    path = shared_data / "gtzan_sample" / CLIP
    assert cli.main(["tags", str(path)]) == 0
    line, err = capsys.readouterr()
    line = line.strip()
    # the default says what it is and that it has no "classical" (MTT_musicnn has)
    assert err.strip() == ("genrestudy tags: tagging with MSD_musicnn (the default: Million Song Dataset (last.fm "
                           "tags), 50 tags; it has no 'classical' tag: for classical music or instruments use "
                           "--model MTT_musicnn; --list shows every tagger's tags)")
    assert line.endswith("(MSD_musicnn, 10 patches)")
    assert line.startswith(f"{path}: pop ") and "female vocalists" in line and "country" in line
    tags = musicnn.tag_file(path, cache_root=weights_cache)
    assert [tag for tag, _ in tags.top(3)] == ["pop", "female vocalists", "country"] and tags.patches == 10
    assert cli.main(["tags", str(path), "--json", "--model", "MTT_musicnn", "--top", "2"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model"] == "MTT_musicnn" and list(record["tags"])[0] == "pop" and len(record["tags"]) == 2


def test_tags_of_a_bad_file_is_one_line_and_the_others_go_on(weights_cache, shared_data, tmp_path, capsys):
    from genrestudy.run import cli

    bad = tmp_path / "not audio.mp3"
    bad.write_text("no audio here")
    assert cli.main(["tags", str(bad), str(shared_data / "gtzan_sample" / CLIP), "--model", "MSD_musicnn"]) == 1
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "not audio.mp3" in err
    assert len(out.strip().splitlines()) == 1 and " pop " in out


def test_missing_weights_say_what_is_missing_in_one_line(tmp_path, capsys):

    with pytest.raises(musicnn_weights.WeightsMissing, match="fetch") as caught:
        musicnn_weights.checkpoint_dir("MSD_musicnn", tmp_path)
    assert "\n" not in str(caught.value) and "musicnn==0.1.0" in str(caught.value)
    with pytest.raises(ValueError, match="unknown musicnn model"):
        musicnn_weights.checkpoint_dir("ImageNet_musicnn", tmp_path)


def test_a_wrong_or_damaged_sdist_is_refused_in_one_line(tmp_path, study_dirs, capsys, monkeypatch):
    fake = tmp_path / "musicnn-0.1.0.tar.gz"
    with tarfile.open(fake, "w:gz") as archive:
        archive.add(__file__, arcname="musicnn-0.1.0/musicnn/MSD_musicnn/.index")
    with pytest.raises(musicnn_weights.WeightsMissing, match="not the pinned") as caught:
        musicnn_weights.fetch_weights(fake, cache_root=tmp_path / "cache")
    assert "\n" not in str(caught.value)
    assert not musicnn_weights.available(tmp_path / "cache")
    assert musicnn_weights.main(["fetch", "--sdist", str(fake)]) == 1  # into study_dirs' empty cache
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not the pinned musicnn==0.1.0 sdist" in err
    # an archive that passes the hash check but is not a readable tar (a damaged copy): one line too
    fake.write_bytes(b"not a tar file")
    monkeypatch.setattr(musicnn_weights, "SDIST_SHA256", cache.file_sha256(fake))
    with pytest.raises(musicnn_weights.WeightsMissing, match="cannot read") as caught:
        musicnn_weights.fetch_weights(fake, cache_root=tmp_path / "cache2")
    assert "\n" not in str(caught.value)


def test_the_architecture_names_every_checkpoint_variable():
    """Without weights: each port has the authors' variable names and sizes (MSD_musicnn: 0.79 M parameters)."""
    for name, arch in musicnn.ARCHITECTURES.items():
        network = musicnn.build_model(arch)
        names = {f"{layer.name}/{w.name}" for layer in network.layers for w in layer.weights}
        assert "batch_normalization/moving_variance" in names
        out = network(np.zeros((2, 187, 96), np.float32), training=False)
        for output, width in musicnn.OUTPUT_WIDTHS[arch.family].items():
            assert tuple(out[output].shape) == (2, width), (name, output)
    msd = musicnn.build_model(musicnn.ARCHITECTURES["MSD_musicnn"])
    names = {f"{layer.name}/{w.name}": tuple(w.shape) for layer in msd.layers for w in layer.weights}
    assert names["conv2d_1/kernel"] == (7, 67, 1, 204) and names["conv2d_5/kernel"] == (7, 561, 64)
    assert names["dense/kernel"] == (1506, 200) and names["dense_1/bias"] == (50,)
    with pytest.raises(ValueError, match="no variable batch_normalization/gamma"):
        musicnn.build_model(musicnn.ARCHITECTURES["MSD_musicnn"], {})
    wrong = {name: np.zeros(shape, np.float32) for name, shape in names.items()}
    wrong["dense/kernel"] = np.zeros((1505, 200), np.float32)
    with pytest.raises(ValueError, match="dense/kernel has shape"):
        musicnn.build_model(musicnn.ARCHITECTURES["MSD_musicnn"], wrong)
    extra = {**{name: np.zeros(shape, np.float32) for name, shape in names.items()}, "conv2d_8/kernel": np.zeros(1)}
    with pytest.raises(ValueError, match="1 checkpoint variables unused"):
        musicnn.build_model(musicnn.ARCHITECTURES["MSD_musicnn"], extra)


def test_the_mel_patches_are_the_authors_representation():
    sr = 22050
    t = np.arange(3 * sr) / sr
    segments = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t)]).astype(np.float32)
    mel = musicnn.mel_patches(segments, sample_rate=sr)
    assert mel.shape == (2, 187, 96) and mel.dtype == np.float16
    assert np.all(mel[1] == 0) and musicnn.log_compress(mel[1]).max() == 0
    loud = musicnn.log_compress(mel[0])
    assert loud.dtype == np.float32 and np.isfinite(loud).all() and loud.max() > 3  # no float16 overflow
    assert np.argmax(mel[0].astype(np.float32).mean(axis=0)) == np.argmax(
        musicnn.mel_spectrogram(segments[0], sample_rate=sr).astype(np.float32).mean(axis=0))
    with pytest.raises(ValueError, match=r"^clip of 1 s is shorter than the minimum of 2.98 s \(one 187-frame patch; "):
        musicnn.clip_patches(np.zeros(16000, np.float32), sample_rate=16000)


def _tiny_signal_set(tmp_path):
    from conftest import make_dataset

    from genrestudy.data.dataset import scan_dataset
    from genrestudy.signals.signal_set import SegmentParams, build_signal_set

    root = make_dataset(tmp_path / "set", genres=("calm", "lively"), clips=2, seconds=3.2)
    return build_signal_set(scan_dataset(root, n_jobs=1), SegmentParams(n_segments=1, segment_seconds=3.0), n_jobs=1)


def test_embeddings_are_cached_by_weights_and_representation(tmp_path, study_dirs, weights_cache, monkeypatch):
    cache_root = paths.cache_dir()
    cache_root.mkdir(parents=True, exist_ok=True)
    (cache_root / "musicnn-weights").symlink_to(weights_cache / "musicnn-weights")
    signal_set = _tiny_signal_set(tmp_path)
    found = musicnn.embeddings(signal_set, "MSD_musicnn", n_jobs=1)
    assert found.values.shape == (len(signal_set.segments), 1756)
    assert found.embedding().shape == (len(signal_set.segments), 1706) and found.output("tags").shape[1] == 50
    assert found.meta["weights"] == musicnn_weights.weights_hash() and found.meta["parameters"] > 700_000
    mels = musicnn.mel_set(signal_set, n_jobs=1)
    direct = musicnn.run_network("MSD_musicnn", np.asarray(mels.values))
    assert np.abs(direct["penultimate"] - found.output("penultimate")).max() <= 1e-5
    assert musicnn.embeddings(signal_set, "MSD_musicnn", n_jobs=1).key == found.key  # read back
    other_mels = musicnn.mel_set(signal_set, musicnn.MelParams(n_mels=64), n_jobs=1)
    assert other_mels.key != mels.key and other_mels.values.shape[2] == 64
    key = musicnn.embedding_key(mels.key, "MSD_musicnn")
    assert key == found.key and musicnn.embedding_key(other_mels.key, "MSD_musicnn") != key
    assert musicnn.embedding_key(mels.key, "MTT_musicnn") != key
    monkeypatch.setattr(musicnn_weights, "SDIST_SHA256", "0" * 64)
    assert musicnn.embedding_key(mels.key, "MSD_musicnn") != key
    assert cache.is_complete(found.root)


# ---------------------------------------------------------------- Table 7's musicnn methods

def _fake_study_data(n_tracks=90, per_track=4, n_classes=3, seed=0):
    """Study data whose musicnn embeddings are generated (the class in column 0), no audio."""
    from types import SimpleNamespace

    import pandas as pd

    from genrestudy import methods
    from genrestudy.run import study

    rng = np.random.default_rng(seed)
    tracks = np.repeat(np.arange(n_tracks), per_track)
    labels = tracks % n_classes
    X = rng.normal(size=(len(tracks), 16)).astype(np.float32)
    X[:, :3] += 8.0 * np.eye(n_classes)[labels]  # one column per class: a linear head can learn it
    classes = [f"g{i}" for i in range(n_classes)]
    segments = pd.DataFrame({"track_id": [f"t{t:03d}" for t in tracks], "segment": np.tile(np.arange(per_track), n_tracks),
                             "label": [classes[c] for c in labels]})
    image_set = SimpleNamespace(key="images-fake", classes=classes, labels=labels, segments=segments, synthetic=True)
    inputs = study.StudyInputs(budget=2, num_boost_round=10, early_stopping_rounds=None, seeds=(0,), retrain_seed=1,
                               max_bin=15, head_batch_sizes=(32,), head_learning_rates=(0.01,))
    data = methods.StudyData(inputs, image_set)
    fake = SimpleNamespace(key="musicnn-fake", embedding=lambda: X, segments=segments)
    data.opened.update({"musicnn:MSD_musicnn": fake, "musicnn:MTT_musicnn": fake})
    split = np.where(tracks < 54, "train", np.where(tracks < 72, "valid", "test"))
    return data, split


@pytest.mark.parametrize("key", ["musicnn_msd_lightgbm", "musicnn_msd_dense_head"])
def test_the_musicnn_methods_learn_from_the_embeddings(key, study_dirs):
    from genrestudy import methods

    data, split = _fake_study_data()
    run = methods.run_method(key, data, split)
    test_rows = np.flatnonzero(split == "test")
    assert run.proba.shape == (len(test_rows), 3)
    # chance is 1/3; the head gets only the source's few epochs (2 per trial, 5 for the winner)
    assert (run.proba.argmax(axis=1) == data.labels[test_rows]).mean() > 0.55
    assert run.report["extractor"] == "MSD_musicnn (published weights)"
    assert data.input_keys(methods.REGISTRY[key](data.inputs).needs) == {"musicnn:MSD_musicnn": "musicnn-fake"}


def test_without_the_weights_the_musicnn_methods_step_aside_with_one_line(monkeypatch, caplog):
    from genrestudy import methods
    from genrestudy.run import study
    from genrestudy.methods import musicnn as musicnn_methods

    keys = {"musicnn_msd_lightgbm", "musicnn_msd_dense_head", "musicnn_mtt_lightgbm", "musicnn_mtt_dense_head"}
    assert keys <= set(methods.REGISTRY)
    assert keys == {key for model in ("MSD_musicnn", "MTT_musicnn") for key in musicnn_methods.method_keys(model)}
    assert musicnn_methods.method_keys("MSD_musicnn")[0] == "musicnn_msd_dense_head"
    monkeypatch.setattr(musicnn_weights, "available", lambda cache_root=None: False)
    monkeypatch.setattr(musicnn_methods, "_told", set())
    inputs = study.StudyInputs()
    with caplog.at_level("WARNING"):
        present = {m.key for m in methods.registered(inputs)}
        methods.registered(inputs)
    assert not keys & present and "hybrid_grid" in present
    lines = [r.getMessage() for r in caplog.records if "musicnn methods skipped" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]


def test_study_data_gives_each_segment_its_musicnn_embedding(tmp_path, study_dirs, weights_cache):
    from conftest import make_dataset

    from genrestudy import methods
    from genrestudy.run import study

    cache_root = paths.cache_dir()
    cache_root.mkdir(parents=True, exist_ok=True)
    (cache_root / "musicnn-weights").symlink_to(weights_cache / "musicnn-weights")
    root = make_dataset(tmp_path / "set", genres=("calm", "lively"), clips=2, seconds=6.2)
    inputs = study.StudyInputs(data=str(root), n_segments=2, image_size=32)
    data = methods.StudyData(inputs, study.image_set(inputs, n_jobs=1))
    found = data.input(methods.base.musicnn_embeddings("MTT_musicnn"))
    assert found.embedding().shape == (len(data.labels), 1706)
    assert data.input_keys((methods.base.musicnn_embeddings("MTT_musicnn"),)) == {"musicnn:MTT_musicnn": found.key}
    embedding, meta = musicnn.study_embeddings(inputs, "MTT_musicnn")
    assert np.array_equal(embedding, found.embedding()) and meta["parameters"] == musicnn.parameter_count("MTT_musicnn")
    assert meta["segments_per_second"] > 0 and meta["peak_rss_mb"] > 0
    cost = musicnn.measure_extraction(inputs, "MTT_musicnn")  # in a fresh process, as notebook 07 measures
    assert cost["images"] == len(data.labels) and cost["parameters"] == meta["parameters"]
    assert cost["peak_rss_mb"] >= cost["rss_before_mb"] > 0 and cost["images_per_second"] > 0
    assert musicnn.measure_extraction(inputs, "MTT_musicnn") == cost  # cached per machine
