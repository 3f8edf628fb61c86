"""Shared fixtures: isolated study folders, generated audio, the real GTZAN material."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genrestudy import paths


def pytest_collection_modifyitems(config, items):
    """Tests marked ``longest`` (the smoke run of the profiles, most of the suite's time) start first:
    on ``./run_all.sh test``'s two workers (``--dist worksteal``) the other worker takes the rest, and
    whichever worker is free takes over what is still queued, instead of the longest test starting late
    and running alone. The order of every other test is kept (stable sort)."""
    items.sort(key=lambda item: item.get_closest_marker("longest") is None)


@pytest.fixture
def study_dirs(tmp_path, monkeypatch):
    """Point every genrestudy location (data, cache, figures, results) into ``tmp_path``."""
    dirs = {name: tmp_path / name for name in ("data", "cache", "figures", "results")}
    for name, folder in dirs.items():
        monkeypatch.setenv(f"GENRESTUDY_{name.upper()}", str(folder))
    return dirs


def write_audio(path: Path, *, seconds: float = 3.5, sample_rate: int = 22050, channels: int = 1,
                freq: float = 440.0, silent: bool = False, seed: int = 0, **kwargs) -> Path:
    """Write a test signal (a tone plus a little noise) in the format given by ``path``'s suffix."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    mono = 0.0 * t if silent else 0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(n)
    data = np.stack([mono * (0.5 + 0.5 * c) for c in range(channels)], axis=1) if channels > 1 else mono
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".au": "AU", ".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}[path.suffix.lower()]
    subtype = {"OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}.get(fmt, "PCM_16")
    sf.write(path, data.astype(np.float32), sample_rate, format=fmt, subtype=subtype, **kwargs)
    return path


def make_dataset(root: Path, genres=("blues", "rock"), clips=2, seconds=3.5, ext=".wav", **kwargs) -> Path:
    """A small data set in the Kaggle GTZAN layout under ``root/genres_original``."""
    for g, genre in enumerate(genres):
        for i in range(clips):
            write_audio(root / "genres_original" / genre / f"{genre}.{i:05d}{ext}", seconds=seconds,
                        freq=220.0 * (g + 1) + 30 * i, seed=10 * g + i, **kwargs)
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real GTZAN material), or skip with a reason when it is absent."""
    root = paths.shared_data_dir()
    if not (root / "gtzan_sample").is_dir():
        pytest.skip(f"real GTZAN material not found at {root} (tests that need it skip)")
    return root


@pytest.fixture
def unwritable_dir(tmp_path) -> Path:
    """A folder nothing can be written into (as root, permission bits don't stop writes: use /proc)."""
    if os.geteuid() == 0:
        return Path("/proc/genrestudy-unwritable-cache")
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder
