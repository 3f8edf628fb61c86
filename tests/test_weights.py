"""ImageNet weights: fetched by the paper profile's check through Keras's own download, or one line
saying how; a local file or folder given instead (GENRESTUDY_WEIGHTS / run_all.sh --weights)."""
from __future__ import annotations

import numpy as np
import pytest

from genrestudy.extractors import backbones, weights
from genrestudy.run import profiles

RESNET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras home, and no local weights given."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv(backbones.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(backbones, "_keras_models_dir", lambda: tmp_path / "keras-home" / "models")
    return tmp_path / "keras-home" / "models"


@pytest.fixture
def keras_download(monkeypatch):
    """Keras's download replaced: ``offline`` fails as urlretrieve does without a network, else it
    writes the file where Keras would; every call is recorded."""
    from keras.src.utils import file_utils

    calls, state = [], {"offline": True}

    def get_file(fname=None, origin=None, cache_subdir="datasets", file_hash=None, **kwargs):
        calls.append({"fname": fname, "origin": origin, "cache_subdir": cache_subdir, "file_hash": file_hash})
        if state["offline"]:
            raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")
        target = backbones._keras_models_dir() / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"weights")
        return str(target)

    monkeypatch.setattr(file_utils, "get_file", get_file)
    return calls, state


def test_keras_itself_names_the_file_url_and_hash(keras_home):
    source = weights.imagenet_source("ResNet50")
    assert source.file == RESNET_FILE == backbones.imagenet_weights_path("ResNet50").name
    assert source.url.startswith("https://") and source.url.endswith(RESNET_FILE)
    assert len(source.file_hash) == 32  # Keras's md5 of the file


def test_missing_weights_are_fetched_with_kerass_download_and_hash(keras_home, keras_download):
    calls, state = keras_download
    state["offline"] = False
    path = weights.fetch_imagenet_weights("ResNet50")
    assert path == keras_home / RESNET_FILE and path.is_file()
    (call,) = calls
    source = weights.imagenet_source("ResNet50")
    assert call == {"fname": RESNET_FILE, "origin": source.url, "cache_subdir": "models", "file_hash": source.file_hash}
    # in place now: no second download
    assert weights.fetch_imagenet_weights("ResNet50") == path and len(calls) == 1


def test_offline_one_line_names_file_folder_and_command(keras_home, keras_download):
    with pytest.raises(weights.WeightsUnavailable) as err:
        weights.fetch_imagenet_weights("ResNet50")
    message = str(err.value)
    assert "\n" not in message
    assert RESNET_FILE in message and str(keras_home) in message
    assert f"curl -fLo {RESNET_FILE} https://" in message and "--weights" in message
    assert "Temporary failure in name resolution" in message


def test_paper_profile_check_fetches_every_backbone_it_uses(study_dirs, keras_home, keras_download, monkeypatch,
                                                             capsys):
    calls, state = keras_download
    monkeypatch.delenv(profiles.SCALE_ENV, raising=False)
    # the real profiles need the study's backbone and (the audit) every compared one
    assert profiles.profile_backbones("paper") == [("ResNet50", None)]
    assert [b for b, _ in profiles.profile_backbones("audit")] == list(dict.fromkeys(
        ["ResNet50", *[b for b in profiles.AUDIT_INPUTS["compared_backbones"] if b in backbones.BACKBONES]]))
    inputs = {**profiles.AUDIT_INPUTS, "compared_backbones": ["ResNet50", "Xception"]}  # two, to stay quick
    monkeypatch.setitem(profiles.PROFILES, "audit", (inputs, profiles.AUDIT_NOTEBOOKS))
    assert profiles.profile_backbones("audit") == [("ResNet50", None), ("Xception", None)]
    (study_dirs["data"] / "gtzan" / "genres_original").mkdir(parents=True)
    with pytest.raises(profiles.ProfileError, match=f"needs ImageNet weights: {RESNET_FILE}.*curl") as err:
        profiles.check_profile("audit")
    assert "\n" not in str(err.value)
    # the study's own backbone in place, offline: a compared backbone's missing file is one warning line
    keras_home.mkdir(parents=True, exist_ok=True)
    (keras_home / RESNET_FILE).write_bytes(b"stand-in")
    profiles.check_profile("audit")
    warned = capsys.readouterr().err.strip().splitlines()
    assert len(warned) == 1 and "Xception will be skipped" in warned[0] and "curl" in warned[0]
    (keras_home / RESNET_FILE).unlink()
    state["offline"] = False
    profiles.check_profile("audit")  # online: fetched, then accepted
    assert (keras_home / RESNET_FILE).is_file()
    assert (keras_home / "xception_weights_tf_dim_ordering_tf_kernels_notop.h5").is_file()
    xception = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert [c["fname"] for c in calls] == [RESNET_FILE, xception, RESNET_FILE, xception]


def test_a_local_file_or_folder_replaces_the_download(tmp_path, keras_home, monkeypatch):
    given = tmp_path / "my_resnet.weights.h5"
    given.write_bytes(b"x")
    monkeypatch.setenv(backbones.WEIGHTS_ENV, str(given))
    # a file named as no Keras file stands for ResNet-50; the other backbones still use the Keras cache
    assert backbones.imagenet_weights_path("ResNet50") == given
    assert backbones.imagenet_weights_path("Xception").parent == keras_home
    assert weights.fetch_imagenet_weights("ResNet50") == given
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(backbones.WEIGHTS_ENV, str(folder))
    assert backbones.imagenet_weights_path("Xception") == folder / "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(weights.WeightsUnavailable, match=f"GENRESTUDY_WEIGHTS={folder} holds no {RESNET_FILE}"):
        weights.fetch_imagenet_weights("ResNet50")


def test_imagenet_backbone_loads_the_local_file_without_a_download(tmp_path, keras_home, keras_download, monkeypatch):
    import keras

    keras.utils.set_random_seed(3)
    reference = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    given = tmp_path / "random_resnet50.weights.h5"
    reference.save_weights(given)
    monkeypatch.setenv(backbones.WEIGHTS_ENV, str(given))
    from_env = backbones.build_backbone("ResNet50", weights="imagenet", input_size=32, precision="float32")
    from_file = backbones.build_backbone("ResNet50", weights=str(given), input_size=32, precision="float32")
    x = np.random.default_rng(0).uniform(-100, 100, (2, 32, 32, 3)).astype("float32")
    assert np.allclose(from_env.predict_on_batch(x), from_file.predict_on_batch(x), atol=1e-5)
    assert keras_download[0] == []  # nothing downloaded
