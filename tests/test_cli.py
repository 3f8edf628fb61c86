"""The ``genrestudy predict`` console command, in-process and as the installed script."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from conftest import write_audio

from genrestudy.models import modelfile
from genrestudy.networks import endtoend
from genrestudy.run import cli, predict
from genrestudy.signals.images import ImageParams

GENRES = ("blues", "jazz", "rock", "pop")
PARAMS = ImageParams(n_segments=3, segment_seconds=1.0, pad_seconds=0.25, n_fft=512, hop_length=256, n_mels=32,
                     image_size=32)
LINE = re.compile(r"^(?P<path>.+): (?P<top>(\w+ \d\.\d{3}(, )?)+) \((?P<n>\d+) segments?\)$")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A model file of each kind, good audio of several formats, lengths, rates and channels, and bad files."""
    base = tmp_path_factory.mktemp("cli")
    network = endtoend.build_model(len(GENRES), image_size=32, input_size=32, dense_units=8, seed=0)
    header = endtoend.model_metadata(classes=GENRES, image_params=asdict(PARAMS), input_size=32, image_size=32,
                                     weights="random-init-seed0", synthetic=True, training={})
    e2e = modelfile.save_keras_model(network, base / "e2e.keras", metadata=header)
    plain = base / "plain.keras"
    network.save(plain)
    # a booster over MobileNetV2's 1280 features; what it learned does not matter here
    rng = np.random.default_rng(0)
    booster = lgb.train({"objective": "multiclass", "num_class": len(GENRES), "min_data_in_leaf": 1,
                         "verbosity": -1}, lgb.Dataset(rng.normal(size=(40, 1280)), label=np.arange(40) % 4),
                        num_boost_round=3)
    hybrid = predict.save_hybrid_model(base / "hybrid.zip", booster, classes=GENRES, image_params=PARAMS,
                                       backbone="MobileNetV2", input_size=32, synthetic=False)
    good = {
        write_audio(base / "one.wav", seconds=1.3, sample_rate=22050): 1,
        write_audio(base / "stereo.flac", seconds=2.4, sample_rate=44100, channels=2): 2,
        write_audio(base / "long.ogg", seconds=7.5, sample_rate=16000, channels=2): 7,
        write_audio(base / "low.au", seconds=3.0, sample_rate=8000): 3,
    }
    garbage = base / "garbage.wav"
    garbage.write_text("not audio at all")
    bad = {write_audio(base / "short.wav", seconds=0.5): "is shorter than the minimum of 1 s (one 1 s segment",
           garbage: "not a .wav file", base / "missing.flac": "file not found"}
    text_model = base / "model.txt"
    text_model.write_text("no model here")
    return {"e2e": e2e, "hybrid": hybrid, "plain": plain, "text_model": text_model, "good": good, "bad": bad,
            "base": base}


def run(capsys, argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


@pytest.mark.parametrize("kind", ["e2e", "hybrid"])
def test_top3_lines_for_every_file_with_either_model(capsys, files, kind):
    code, out, err = run(capsys, ["predict", *files["good"], "--model", files[kind]])
    assert code == 0
    assert len(out) == len(files["good"])
    for line, (path, segments) in zip(out, files["good"].items()):
        match = LINE.match(line)
        assert match, line
        assert match["path"] == str(path) and int(match["n"]) == segments
        assert line.endswith("(1 segment)" if segments == 1 else f"({segments} segments)")
        top = [part.rsplit(" ", 1) for part in match["top"].split(", ")]
        assert len(top) == 3 and {g for g, _ in top} <= set(GENRES)
        probs = [float(p) for _, p in top]
        assert probs == sorted(probs, reverse=True)
    warnings = [line for line in err if line.startswith("genrestudy predict: warning")]
    assert (len(warnings) == 1 and "SYNTHETIC" in warnings[0]) if kind == "e2e" else not warnings


def test_json_one_object_per_file(capsys, files):
    code, out, _ = run(capsys, ["predict", *files["good"], "--model", files["e2e"], "--json"])
    assert code == 0
    objects = [json.loads(line) for line in out]
    assert [o["path"] for o in objects] == [str(p) for p in files["good"]]
    for obj, segments in zip(objects, files["good"].values()):
        assert set(obj) == {"path", "genre", "probabilities", "segments"}
        assert list(obj["probabilities"]) == list(GENRES) and obj["segments"] == segments
        assert sum(obj["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert obj["genre"] == max(obj["probabilities"], key=obj["probabilities"].get)


def test_bad_files_give_one_line_each_and_the_others_are_still_predicted(capsys, files):
    good = list(files["good"])
    argv = [good[0], *files["bad"], good[1]]
    code, out, err = run(capsys, ["predict", *argv, "--model", files["e2e"], "--json"])
    assert code == cli.EXIT_FILE_FAILED
    assert [json.loads(line)["path"] for line in out] == [str(good[0]), str(good[1])]
    errors = [line for line in err if not line.startswith("genrestudy predict: warning")]
    assert len(errors) == len(files["bad"])
    for line, (path, reason) in zip(errors, files["bad"].items()):
        assert line.startswith(f"genrestudy predict: {path}: ") and reason in line


@pytest.mark.parametrize("model, reason", [("plain", "not a genrestudy model: "),
                                           ("text_model", "not a genrestudy model: "),
                                           ("missing", "no model file at ")])
def test_a_model_that_is_not_ours_gives_one_line_and_exit_2(capsys, files, model, reason):
    path = files["base"] / "absent.keras" if model == "missing" else files[model]
    code, out, err = run(capsys, ["predict", *files["good"], "--model", path])
    assert code == cli.EXIT_NO_MODEL and out == []
    assert err == [err[0]] and err[0].startswith(f"genrestudy predict: {reason}") and str(path) in err[0]


def test_default_model_and_options(capsys, files, monkeypatch, tmp_path):
    monkeypatch.setenv("GENRESTUDY_DATA", str(tmp_path / "data"))
    first = next(iter(files["good"]))
    code, _, err = run(capsys, ["predict", first])
    assert code == cli.EXIT_NO_MODEL and "04_finetune_resnet50" in err[0]
    target = modelfile.default_model_path()
    target.parent.mkdir(parents=True)
    target.write_bytes(Path(files["e2e"]).read_bytes())
    code, out, _ = run(capsys, ["predict", first, "--top", "1"])
    assert code == 0 and LINE.match(out[0]) and out[0].count(",") == 0
    code, _, err = run(capsys, ["predict", first, "--top", "0"])
    assert code == cli.EXIT_NO_MODEL and "--top" in err[0]
    assert run(capsys, ["predict"])[0] == 2  # argparse: PATH is required
    assert run(capsys, ["--help"])[0] == 0


@pytest.mark.slow  # two fresh Python processes importing TensorFlow
def test_installed_console_script(files):
    script = Path(sys.executable).with_name("genrestudy")
    assert script.is_file(), f"console script missing at {script} (pip install -e .)"
    good = list(files["good"])
    short = next(iter(files["bad"]))
    done = subprocess.run([str(script), "predict", str(good[0]), str(short), str(good[2]), "--model",
                           str(files["e2e"]), "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["path"] for o in objects] == [str(good[0]), str(good[2])]
    assert [o["segments"] for o in objects] == [1, 7]
    # TensorFlow's start-up log is kept off stderr: only the synthetic-model warning and the one bad file
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("genrestudy predict: warning: ") and "SYNTHETIC" in lines[0]
    assert lines[1] == (f"genrestudy predict: {short}: clip of 0.5 s is shorter than the minimum of 1 s "
                        "(one 1 s segment; 11025 of 22050 samples at 22050 Hz)")
    done = subprocess.run([str(script), "predict", str(good[0]), "--model", str(files["text_model"])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    # refused before Keras is even imported: exactly one line, no start-up chatter
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genrestudy predict: not a genrestudy model: "), lines


def test_a_directory_or_a_named_pipe_says_what_it_is(capsys, files, tmp_path):
    pipe = tmp_path / "pipe.wav"
    os.mkfifo(pipe)  # never opened: reading it would wait for a writer forever
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    good = next(iter(files["good"]))
    code, out, err = run(capsys, ["predict", folder, pipe, good, "--model", files["e2e"], "--json"])
    assert code == cli.EXIT_FILE_FAILED and [json.loads(line)["path"] for line in out] == [str(good)]
    errors = [line for line in err if not line.startswith("genrestudy predict: warning")]
    assert errors == [f"genrestudy predict: {folder}: is a directory",
                      f"genrestudy predict: {pipe}: is not a regular file (a named pipe)"]
    code, out, err = run(capsys, ["predict", good, "--model", tmp_path])
    assert code == cli.EXIT_NO_MODEL and err == [f"genrestudy predict: not a genrestudy model: {tmp_path} "
                                                 "(is a directory)"]


def test_a_file_name_with_a_newline_keeps_one_line(capsys, files, tmp_path):
    odd = tmp_path / "two\nlines.wav"
    odd.write_bytes(Path(next(iter(files["good"]))).read_bytes())
    missing = tmp_path / "gone\n.wav"
    code, out, err = run(capsys, ["predict", odd, missing, "--model", files["e2e"]])
    assert code == cli.EXIT_FILE_FAILED and len(out) == 1
    assert out[0].startswith(repr(str(odd)) + ": ") and LINE.match(out[0])
    errors = [line for line in err if not line.startswith("genrestudy predict: warning")]
    assert errors == [f"genrestudy predict: {str(missing)!r}: file not found"]
    code, out, _ = run(capsys, ["predict", odd, "--model", files["e2e"], "--json"])
    assert json.loads(out[0])["path"] == str(odd)  # JSON escapes it its own way
    code, _, err = run(capsys, ["predict", odd, "--model", tmp_path / "no\nmodel.keras"])
    assert code == cli.EXIT_NO_MODEL and len(err) == 1 and repr(str(tmp_path / "no\nmodel.keras")) in err[0]


def _numba_cache_dir(env: dict) -> str:
    script = "import os, genrestudy; print(os.environ.get('NUMBA_CACHE_DIR', ''))"
    env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                          check=True).stdout.strip()


def test_numba_caches_into_a_writable_folder_of_the_studys_own(tmp_path, unwritable_dir):
    folder = _numba_cache_dir({"NUMBA_CACHE_DIR": None, "GENRESTUDY_CACHE": str(tmp_path / "cache")})
    assert folder == str(tmp_path / "cache" / "numba") and os.access(folder, os.W_OK)
    fallback = _numba_cache_dir({"NUMBA_CACHE_DIR": None, "GENRESTUDY_CACHE": str(unwritable_dir / "cache")})
    assert fallback and not fallback.startswith(str(unwritable_dir)) and os.access(fallback, os.W_OK)
    assert _numba_cache_dir({"NUMBA_CACHE_DIR": str(tmp_path / "mine")}) == str(tmp_path / "mine")


# ---------------------------------------------------------------- streamed output, interrupts, closed pipes

class _Recorder:
    """A stdout that records each line written, in one list with the decodes (the order they happened)."""

    def __init__(self, events):
        self.events, self.pending = events, ""

    def write(self, text):
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.events.append(("line", line))
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def test_the_first_json_line_arrives_before_the_second_file_is_decoded(files, tmp_path, monkeypatch):
    songs = [write_audio(tmp_path / f"song{i:02d}.wav", seconds=1.2, freq=200.0 + 20 * i, seed=i) for i in range(20)]
    events = []
    decode = predict.stream_clips  # each file is decoded block by block as its clips are asked for

    def recording_decode(path, params):
        events.append(("decode", str(path)))
        yield from decode(path, params)

    monkeypatch.setattr(predict, "stream_clips", recording_decode)
    monkeypatch.setattr(sys, "stdout", _Recorder(events))
    assert cli.main(["predict", *map(str, songs), "--model", str(files["e2e"]), "--json"]) == 0
    kinds = [kind for kind, _ in events]
    assert kinds.count("decode") == 20 and kinds.count("line") == 20
    first_line, second_decode = kinds.index("line"), [i for i, k in enumerate(kinds) if k == "decode"][1]
    assert first_line < second_decode, kinds
    assert json.loads(events[first_line][1])["path"] == str(songs[0])
    assert kinds == ["decode", "line"] * 20  # every file's line before the next file is read


def test_ctrl_c_keeps_the_finished_files_and_ends_in_one_line(capsys, files, monkeypatch):
    good = [str(p) for p in files["good"]]
    real = predict.predict_file

    def interrupted_at_the_third(path, model):
        if path == good[2]:
            raise KeyboardInterrupt
        return real(path, model)

    monkeypatch.setattr(predict, "predict_file", interrupted_at_the_third)
    code, out, err = run(capsys, ["predict", *good, "--model", files["e2e"], "--json"])
    assert code == cli.EXIT_INTERRUPTED == 130
    assert [json.loads(line)["path"] for line in out] == good[:2]
    assert err[-1] == f"genrestudy predict: interrupted after 2 of {len(good)} files"
    assert not any("Traceback" in line for line in err)


@pytest.mark.slow  # a fresh Python process importing TensorFlow
def test_a_closed_stdout_ends_quietly_as_sigpipe_does(files, tmp_path):
    import signal

    songs = [str(write_audio(tmp_path / f"s{i}.wav", seconds=1.2, seed=i)) for i in range(6)]
    child = subprocess.Popen([sys.executable, "-m", "genrestudy.run.cli", "predict", *songs, "--model", str(files["e2e"]),
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = child.stdout.readline()  # as `| head -1`: one line read, then the pipe closed
    child.stdout.close()
    err = child.stderr.read()
    assert child.wait(timeout=300) == -signal.SIGPIPE
    assert json.loads(first)["path"] == songs[0]
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_predict_help_names_every_kind_of_model_file_it_reads(capsys):
    from genrestudy import methods
    from genrestudy.models import modelfile

    assert cli.main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    kinds = modelfile.kinds()
    assert {"end-to-end", "hybrid", "knn", "small-network"} <= set(kinds)
    for kind in kinds:
        assert f"{kind}: " in text, kind


def test_too_short_clips_get_one_message_in_predict_and_tags():
    from genrestudy.extractors import musicnn
    from genrestudy.signals.segments import ClipTooShortError

    # one sample short of 3 s at 22050 Hz: not "3.00 s is shorter than 3 s"
    with pytest.raises(ClipTooShortError) as caught:
        list(predict.clip_chunks(np.zeros(66149, np.float32), ImageParams()))
    assert str(caught.value) == ("clip of 2.99995 s is shorter than the minimum of 3 s "
                                 "(one 3 s segment; 66149 of 66150 samples at 22050 Hz)")
    with pytest.raises(ClipTooShortError) as caught:
        musicnn.clip_patches(np.zeros(47615, np.float32), sample_rate=16000)
    assert str(caught.value) == ("clip of 2.9759 s is shorter than the minimum of 2.976 s "
                                 "(one 187-frame patch; 47615 of 47616 samples at 16000 Hz)")
    assert len(musicnn.clip_patches(np.zeros(47616, np.float32), sample_rate=16000)) == 1  # the minimum is enough


def test_tags_list_shows_every_taggers_vocabulary_and_the_help_says_which_suits_what(capsys):
    from genrestudy.extractors import musicnn_weights
    from genrestudy.extractors.musicnn_architecture import ARCHITECTURES

    if not musicnn_weights.available():
        pytest.skip(f"the taggers' tag lists come with musicnn's weights; fetch them with "
                    f"`{musicnn_weights.FETCH_COMMAND}`")
    assert cli.main(["tags", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == list(ARCHITECTURES)
    for line, (name, arch) in zip(lines, ARCHITECTURES.items()):
        assert line.endswith(": " + ", ".join(arch.labels))
    by_name = dict(zip(ARCHITECTURES, lines))
    assert "classical" in by_name["MTT_musicnn"] and "classical" not in by_name["MSD_musicnn"]
    assert cli.main(["tags", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Only MTT_musicnn, MTT_vgg can say 'classical'" in text and "the decades 60s, 70s, 80s, 90s, 00s" in text
    assert "default MSD_musicnn" in text
