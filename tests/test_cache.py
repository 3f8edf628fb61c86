import errno

import pytest

from genrestudy import cache


def _entry(root, kind, key, size):
    folder = root / kind / key
    folder.mkdir(parents=True)
    (folder / "data.npy").write_bytes(b"x" * size)
    (folder / cache.META_FILE).write_text("{}")
    (root / kind / f"{key}.lock").touch()
    return folder


def test_clean_dry_run_measures_and_keeps(tmp_path, capsys):
    _entry(tmp_path, "images", "a1", 5000)
    _entry(tmp_path, "signals", "b2", 2_000_000)
    found = cache.clean_caches(tmp_path, dry_run=True)
    assert len(found) == 4 and (tmp_path / "images" / "a1").is_dir()
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["images: 1 entries, would free 5.0 kB", "signals: 1 entries, would free 2.0 MB",
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
    (tmp_path / "musicnn-weights" / "entry").mkdir(parents=True)
    (tmp_path / "images" / "entry").mkdir(parents=True)
    removed = cache.clean_caches(tmp_path)
    assert [p.parent.name for p, _ in removed] == ["images"]
    assert (tmp_path / "musicnn-weights" / "entry").is_dir()
    assert "musicnn-weights: kept" in capsys.readouterr().out
