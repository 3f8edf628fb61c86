"""The inputs a method can need come from one provider per kind: a new kind is one provider, not a new StudyData field."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from genrestudy import methods
from genrestudy.methods import inputs
from genrestudy.run import study


def _data(n=6):
    segments = pd.DataFrame({"track_id": [f"t{i // 2}" for i in range(n)], "segment": [i % 2 for i in range(n)],
                             "label": ["a", "b"] * (n // 2)})
    image_set = SimpleNamespace(key="images-fake", classes=["a", "b"], labels=np.arange(n) % 2, segments=segments,
                                synthetic=True)
    return methods.StudyData(study.StudyInputs(), image_set)


@pytest.fixture
def doubled_index():
    opened = []

    @inputs.provider("doubled_index", key=lambda found: f"doubled-{found.factor}",
                     values=lambda found: found.values)
    def _open(data, argument):
        opened.append(argument)
        factor = int(argument or 2)
        return SimpleNamespace(factor=factor, values=factor * np.arange(len(data.labels)))

    yield opened
    inputs.PROVIDERS.pop("doubled_index")


def test_a_new_kind_of_input_is_one_provider(doubled_index):
    data = _data()
    assert data.values("doubled_index:3").tolist() == [0, 3, 6, 9, 12, 15]
    assert data.values("doubled_index").tolist() == [0, 2, 4, 6, 8, 10]
    data.values("doubled_index:3")
    assert doubled_index == ["3", ""]  # each need opened once, then kept
    assert data.input_keys(("doubled_index:3",)) == {"doubled_index:3": "doubled-3"}

    @methods.register
    class ByIndex(methods.Method):
        key, name, needs = "by_index_test", "By index", ("doubled_index:3",)

        def fit(self, train, valid):
            self.seen = train.data.values(self.needs[0])[train.rows]

        def predict_proba(self, test):
            return np.full((len(test), 2), 0.5)

    try:
        method = ByIndex(data.inputs)
        method.fit(data.part(np.array(["train", "test"] * 3), "train"), None)
        assert method.seen.tolist() == [0, 6, 12]
    finally:
        methods.unregister("by_index_test")


def test_an_unknown_need_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown input 'waveforms'") as info:
        _data().input("waveforms")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="unknown needs"):
        @methods.register
        class Wrong(methods.Method):
            key, name, needs = "wrong_test", "Wrong", ("waveforms",)

            def fit(self, train, valid): ...

            def predict_proba(self, test): ...


def test_a_given_input_is_checked_like_an_opened_one():
    data = _data()
    foreign = SimpleNamespace(meta={"image_cache": "images-other"}, features=np.zeros((6, 4)), root=None)
    data.opened["features"] = foreign
    with pytest.raises(ValueError, match="from image cache images-other, not from images-fake"):
        data.features()
    own = SimpleNamespace(meta={"image_cache": "images-fake"}, features=np.ones((6, 4)),
                          root=SimpleNamespace(name="features-own"))
    given = methods.StudyData(data.inputs, data.image_set, opened={"features": own})
    assert given.features().shape == (6, 4) and given.input_keys(("features",)) == {"features": "features-own"}


def test_the_arrays_read_stay_behind_when_the_data_travels(doubled_index):
    import pickle

    data = _data()
    data.values("doubled_index")
    travelled = pickle.loads(pickle.dumps(data))
    assert travelled._values == {} and "doubled_index" in travelled.opened


def test_an_input_out_of_step_with_the_images_says_which_input():
    data = _data()
    shuffled = data.image_set.segments.iloc[[1, 0, 2, 3, 4, 5]]
    data.opened["musicnn:MSD_musicnn"] = SimpleNamespace(segments=shuffled, embedding=lambda: np.zeros((6, 2)))
    with pytest.raises(ValueError, match=r"^the musicnn embeddings \(6 segments\) are not aligned .* at row 0$"):
        data.values("musicnn:MSD_musicnn")
