import errno
import json

import numpy as np
import pytest

from genrestudy import cache


def _entry(root, kind, key, size, *, marked=True):
    if marked:
        cache.mark_root(root)
    folder = root / kind / key
    folder.mkdir(parents=True)
    (folder / "data.npy").write_bytes(b"x" * size)
    (folder / cache.META_FILE).write_text(json.dumps({"kind": kind, "key": key}))
    (root / kind / f"{key}.lock").touch()
    return folder


def test_clean_dry_run_measures_and_keeps(tmp_path, capsys):
    _entry(tmp_path, "images", "a1", 5000)
    _entry(tmp_path, "signals", "b2", 2_000_000)
    found = cache.clean_caches(tmp_path, dry_run=True)
    assert len(found) == 4 and (tmp_path / "images" / "a1").is_dir()
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["  would remove images/a1 (5.0 kB)", "images: 1 entries, would free 5.0 kB",
                     "  would remove signals/b2 (2.0 MB)", "signals: 1 entries, would free 2.0 MB",
                     f"cache {tmp_path}: 2 entries in all, would free 2.0 MB (dry run)"]


def test_clean_removes_every_entry_but_one_being_built(tmp_path, capsys):
    _entry(tmp_path, "images", "a1", 10)
    _entry(tmp_path, "features", "c3", 10)
    busy = _entry(tmp_path, "signals", "b2", 10)
    with cache.entry_lock(busy):
        removed = cache.clean_caches(tmp_path)
    assert {p.name for p, _ in removed} == {"a1", "a1.lock", "c3", "c3.lock"}
    assert busy.is_dir() and not (tmp_path / "images").exists()
    assert "cache " + str(tmp_path) + ": 2 entries in all, freed" in capsys.readouterr().out


def test_clean_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENRESTUDY_CACHE", str(tmp_path / "cache"))
    _entry(tmp_path / "cache", "manifests", "m", 3)
    assert cache.main(["clean", "--dry-run"]) == 0 and (tmp_path / "cache" / "manifests" / "m").exists()
    assert cache.main(["clean"]) == 0 and not (tmp_path / "cache" / "manifests").exists()
    assert cache.main(["clean"]) == 0  # nothing left: still one summary line
    assert capsys.readouterr().out.splitlines()[-1] == f"cache {tmp_path / 'cache'}: 0 entries in all, freed 0 B"


def test_write_guard_makes_os_errors_one_line(tmp_path):
    with pytest.raises(cache.CacheError, match=f"cannot write to cache folder {tmp_path} .No space left on device.") \
            as err:
        with cache.write_guard(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert "\n" not in str(err.value)


def test_open_or_build_rebuilds_a_damaged_entry(tmp_path):
    builds = []

    def build(entry):
        builds.append(1)
        (entry / "value.txt").write_text("42")
        return {"n": 1}

    def open_entry(entry):
        return int((entry / "value.txt").read_text())

    assert cache.open_or_build("toy", "k", open_entry=open_entry, build=build, root=tmp_path) == 42
    assert cache.open_or_build("toy", "k", open_entry=open_entry, build=build, root=tmp_path) == 42
    (tmp_path / "toy" / "k" / "value.txt").unlink()
    assert cache.open_or_build("toy", "k", open_entry=open_entry, build=build, root=tmp_path) == 42
    assert len(builds) == 2 and cache.read_meta(tmp_path / "toy" / "k")["n"] == 1


def test_clean_keeps_downloaded_weights(tmp_path, capsys):
    _entry(tmp_path, "musicnn-weights", "entry", 1)
    _entry(tmp_path, "images", "entry", 1)
    removed = cache.clean_caches(tmp_path)
    assert [p.parent.name for p, _ in removed] == ["images", "images"]  # the entry and its lock
    assert (tmp_path / "musicnn-weights" / "entry").is_dir()
    assert "musicnn-weights: kept" in capsys.readouterr().out


def _users_folder(root):
    """A folder of a user's own files, two levels deep, as a wrong --root or GENRESTUDY_CACHE names."""
    for sub, name in [("photos", "2019"), ("photos", "2020"), ("thesis", "draft"), ("music", "a.wav")]:
        path = root / sub / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if "." not in name else path.write_bytes(b"RIFF")
        if path.is_dir():
            (path / "keep.txt").write_text("mine")
    (root / "notes.txt").write_text("mine")
    return sorted(p.relative_to(root) for p in root.rglob("*"))


@pytest.mark.parametrize("how", ["root", "env"])
def test_clean_refuses_a_folder_that_is_not_a_study_cache(tmp_path, monkeypatch, capsys, how):
    # defect: clean emptied every folder two levels down in any folder given, and exited 0
    before = _users_folder(tmp_path / "home")
    if how == "env":
        monkeypatch.setenv("GENRESTUDY_CACHE", str(tmp_path / "home"))
    status = cache.main(["clean"] + (["--root", str(tmp_path / "home")] if how == "root" else []))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "is not a genrestudy cache folder" in err[0] and "nothing removed" in err[0]
    assert sorted(p.relative_to(tmp_path / "home") for p in (tmp_path / "home").rglob("*")) == before


def test_clean_removes_only_what_the_study_wrote(tmp_path, capsys):
    # a marked cache folder with a user's file and folder in it, and a kind folder holding a stranger
    _entry(tmp_path, "images", "a1", 10)
    (tmp_path / "images" / "my_notes").mkdir()
    (tmp_path / "images" / "my_notes" / "n.txt").write_text("mine")
    (tmp_path / "mine" / "deep").mkdir(parents=True)
    (tmp_path / "images" / "forged").mkdir()
    (tmp_path / "images" / "forged" / cache.META_FILE).write_text(json.dumps({"kind": "signals", "key": "forged"}))
    removed = cache.clean_caches(tmp_path)
    assert {p.name for p, _ in removed} == {"a1", "a1.lock"}
    assert (tmp_path / "images" / "my_notes" / "n.txt").is_file() and (tmp_path / "mine" / "deep").is_dir()
    assert (tmp_path / "images" / "forged").is_dir()
    out = capsys.readouterr().out
    assert "remove images/a1" in out and "left alone: 3 item(s) the study did not write" in out


def test_clean_recognises_a_cache_written_before_markers(tmp_path, capsys):
    # upgrading: no marker, but entries holding the study's own meta.json (and an old manifest)
    _entry(tmp_path, "features", "f1", 10, marked=False)
    (tmp_path / "manifests" / "m1").mkdir(parents=True)
    (tmp_path / "manifests" / "m1" / "manifest.csv").write_text("track_id,label,path,format\n")
    (tmp_path / "features" / "yours").mkdir()
    removed = cache.clean_caches(tmp_path)
    assert {p.name for p, _ in removed} == {"f1", "f1.lock", "m1"}
    assert (tmp_path / "features" / "yours").is_dir()
    assert "no .genrestudy-cache marker" in capsys.readouterr().out


def test_the_study_marks_the_cache_folder_it_creates(tmp_path):
    cache.open_or_build("toy", "k", open_entry=lambda e: 1, build=lambda e: {}, root=tmp_path / "new")
    assert (tmp_path / "new" / cache.ROOT_MARKER).is_file()
    (tmp_path / "fresh" / "numba" / "librosa").mkdir(parents=True)  # numba's cache, put there at import
    cache.open_or_build("toy", "k", open_entry=lambda e: 1, build=lambda e: {}, root=tmp_path / "fresh")
    assert (tmp_path / "fresh" / cache.ROOT_MARKER).is_file()
    assert {p.name for p, _ in cache.clean_caches(tmp_path / "fresh")} == {"k", "k.lock", "librosa"}
    (tmp_path / "used" / "x").mkdir(parents=True)  # a folder with things in it is not claimed
    cache.open_or_build("toy", "k", open_entry=lambda e: 1, build=lambda e: {}, root=tmp_path / "used")
    assert not (tmp_path / "used" / cache.ROOT_MARKER).exists()
    assert {p.name for p, _ in cache.clean_caches(tmp_path / "used")} == {"k", "k.lock"}
