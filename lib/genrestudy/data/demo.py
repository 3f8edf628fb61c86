"""A deterministic, clearly labelled SYNTHETIC data set in the GTZAN layout.

Used when no GTZAN is present, so every notebook runs offline. Ten genre-styled classes
differ the way genres do — tempo, rhythm pattern, timbre (harmonics, brightness,
distortion, attack) and harmony (major, minor, seventh chords) — with per-clip random
key, tempo jitter, pattern variation and noise, so the task is learnable but not
trivial. It is not music and not GTZAN: every output made from it says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from joblib import Parallel, delayed
from ..progress import progress_bar

from .. import cache
from ..paths import SAMPLE_RATE

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
MARKER = "SYNTHETIC_DATA.txt"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class GenreStyle:
    bpm: float
    kick: str           # 16 steps per bar, 'x' = hit
    snare: str
    hat: str
    chord: tuple        # semitone offsets of the chord over the root
    harmonics: int      # overtones of the tonal voice (timbre)
    brightness: float   # amplitude ratio between successive harmonics
    attack: float       # seconds; short = plucked, long = bowed
    decay: float        # seconds of note decay (0 = sustained)
    drive: float        # tanh distortion gain (1 = clean)
    swing: float        # delay of odd 8th notes, fraction of a step
    bass: float         # sub-bass level
    noise: float        # broadband noise level


STYLES = {
    "blues":     GenreStyle(84, "x.....x.x.......", "....x.......x...", "x..x..x..x..x..x", (0, 4, 7, 10), 6, 0.60, 0.010, 0.60, 1.5, 0.33, 0.3, 0.010),
    "classical": GenreStyle(66, "................", "................", "................", (0, 4, 7, 12), 8, 0.55, 0.250, 0.00, 1.0, 0.00, 0.0, 0.002),
    "country":   GenreStyle(108, "x.......x.......", "....x.......x...", "..x...x...x...x.", (0, 4, 7), 10, 0.75, 0.003, 0.35, 1.0, 0.00, 0.3, 0.005),
    "disco":     GenreStyle(120, "x...x...x...x...", "....x.......x...", "..x...x...x...x.", (0, 4, 7, 11), 5, 0.50, 0.010, 0.20, 1.2, 0.00, 0.6, 0.008),
    "hiphop":    GenreStyle(90, "x......x..x.....", "....x.......x...", "x.x.x.x.x.x.x.x.", (0, 3, 7, 10), 3, 0.40, 0.020, 0.40, 1.0, 0.15, 1.0, 0.010),
    "jazz":      GenreStyle(140, "x.........x.....", "......x.......x.", "x..xx..xx..xx..x", (0, 4, 7, 11, 14), 4, 0.35, 0.030, 0.50, 1.0, 0.33, 0.4, 0.004),
    "metal":     GenreStyle(170, "x.x.x.x.x.x.x.x.", "....x.......x...", "xxxxxxxxxxxxxxxx", (0, 7, 12), 12, 0.85, 0.002, 0.10, 8.0, 0.00, 0.5, 0.040),
    "pop":       GenreStyle(112, "x.......x.......", "....x.......x...", "x.x.x.x.x.x.x.x.", (0, 4, 7), 5, 0.55, 0.010, 0.25, 1.1, 0.00, 0.5, 0.006),
    "reggae":    GenreStyle(76, "........x.......", "........x.......", "..x...x...x...x.", (0, 3, 7), 6, 0.60, 0.005, 0.12, 1.0, 0.10, 0.8, 0.005),
    "rock":      GenreStyle(126, "x.......x.x.....", "....x.......x...", "x.x.x.x.x.x.x.x.", (0, 7, 12), 9, 0.75, 0.004, 0.25, 4.0, 0.00, 0.5, 0.020),
}
#: chord roots of each bar, in semitones over the key (major-ish vs minor-ish progressions)
PROGRESSIONS = ((0, 5, 7, 0), (0, 9, 5, 7), (0, 8, 3, 10), (0, 5, 0, 7))


def _envelope(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / max(attack, 1e-4))
    if decay > 0:
        env *= np.exp(-t / decay)
    return env


def _tone(freq: float, n: int, sr: int, style: GenreStyle, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    vibrato = 1 + (0.004 * np.sin(2 * np.pi * 5.5 * t) if style.attack > 0.1 else 0.0)
    out = np.zeros(n)
    for h in range(1, style.harmonics + 1):
        if freq * h > sr / 2.2:
            break
        out += style.brightness ** (h - 1) * np.sin(2 * np.pi * freq * h * t * vibrato + rng.uniform(0, 2 * np.pi))
    return out * _envelope(n, sr, style.attack, style.decay)


def _drum(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    if kind == "kick":
        return np.sin(2 * np.pi * (50 + 80 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.12)
    noise = rng.standard_normal(n)
    if kind == "snare":
        return (0.7 * noise + 0.3 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.08)
    return np.diff(noise, prepend=0.0) * 0.5 * np.exp(-t / 0.02)  # hi-hat: high-passed noise burst


def _add(out: np.ndarray, pos: int, signal: np.ndarray) -> None:
    end = min(len(out), pos + len(signal))
    if pos < end:
        out[pos:end] += signal[: end - pos]


def synthesize_clip(genre: str, *, seed: int, duration: float = 30.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One synthetic clip of ``genre`` (float32 in [-1, 1]), a pure function of its arguments."""
    style = STYLES[genre]
    rng = np.random.default_rng(seed)
    sr, n = sample_rate, int(round(duration * sample_rate))
    out = np.zeros(n + sr)  # a second of tail room for the last notes
    bpm = style.bpm * rng.uniform(0.94, 1.06)
    step = 60.0 / bpm / 4
    key = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    bar = 16 * step
    levels = {"kick": 0.9, "snare": 0.5, "hat": 0.15}
    # one rendering of each drum and each chord per clip, placed many times (synthesis cost
    # stays per clip, not per hit)
    drums = {kind: level * _drum(kind, int(0.25 * sr), sr, rng) for kind, level in levels.items()}
    chord_len = int(bar * sr) if style.decay == 0 else int(min(bar, 4 * style.decay + 0.05) * sr)
    chords, basses = {}, {}
    for degree in set(progression):
        root = key * 2 ** (degree / 12)
        chords[degree] = sum(0.25 * _tone(root * 2 ** (c / 12), chord_len, sr, style, rng) for c in style.chord)
        bass_len = int(bar * sr / 2)
        basses[degree] = style.bass * 0.5 * np.sin(2 * np.pi * root / 2 * np.arange(bass_len) / sr) \
            * _envelope(bass_len, sr, 0.01, 0.4)
    for b in range(int(duration / bar) + 1):
        degree = progression[b % len(progression)]
        start = int(b * bar * sr)
        if start >= n:
            break
        _add(out, start, chords[degree])
        if style.bass:
            for half in range(2):
                _add(out, start + half * len(basses[degree]), basses[degree])
        for s_idx in range(16):
            pos = start + int(step * (s_idx + (style.swing if s_idx % 2 else 0.0)) * sr)
            for kind, pattern in (("kick", style.kick), ("snare", style.snare), ("hat", style.hat)):
                hit = pattern[s_idx] == "x"
                if rng.random() < 0.08:  # per-clip variation: a dropped or an extra hit
                    hit = not hit
                if hit:
                    _add(out, pos, drums[kind])
    out = out[:n] + style.noise * rng.standard_normal(n)
    out = np.tanh(style.drive * out) / np.tanh(style.drive) if style.drive > 1 else out
    peak = np.max(np.abs(out)) or 1.0
    return (0.9 * out / peak * rng.uniform(0.5, 1.0)).astype(np.float32)


def _write_clip(genre: str, seed: int, duration: float, target: Path) -> None:
    clip = synthesize_clip(genre, seed=seed, duration=duration)
    with cache.atomic_path(target) as tmp:
        sf.write(tmp, clip, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def generate_demo_dataset(root, *, clips_per_genre: int = 10, duration: float = 30.0, seed: int = 0,
                          genres: tuple[str, ...] = GENRES, n_jobs: int = -1) -> Path:
    """Write the synthetic data set under ``root`` in the Kaggle GTZAN layout; return ``root``.

    ``root/genres_original/<genre>/<genre>.000NN.wav`` (16-bit mono, 22050 Hz), plus a
    ``SYNTHETIC_DATA.txt`` marker describing it. Deterministic in ``seed``; an existing
    set with the same parameters is reused, a set with other parameters is replaced.
    Clips are synthesised in ``n_jobs`` processes (joblib convention).
    """
    if clips_per_genre < 1:
        raise ValueError(f"clips_per_genre must be >= 1, got {clips_per_genre}")
    unknown = set(genres) - set(STYLES)
    if unknown:
        raise ValueError(f"unknown demo genres {sorted(unknown)}; expected some of {list(STYLES)}")
    root = Path(root)
    params = {"clips_per_genre": clips_per_genre, "duration": duration, "seed": seed,
              "genres": list(genres), "version": _FORMAT_VERSION}
    marker = root / MARKER
    if marker.is_file() and _read_params(marker) == params:
        return root
    marker.unlink(missing_ok=True)
    base = root / "genres_original"
    jobs = []
    for g_idx, genre in enumerate(genres):
        folder = base / genre
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.wav"):
            old.unlink()
        jobs += [(genre, seed * 1_000_003 + g_idx * 1009 + i, folder / f"{genre}.{i:05d}.wav")
                 for i in range(clips_per_genre)]
    Parallel(n_jobs=n_jobs)(delayed(_write_clip)(genre, clip_seed, duration, target)
                            for genre, clip_seed, target in progress_bar(jobs, desc="synthetic clips", unit="clip"))
    text = ("SYNTHETIC demo data generated by genrestudy.data.demo — NOT GTZAN, not music.\n"
            "Genre-styled synthetic clips for running the study offline; results on it say nothing about GTZAN.\n"
            "params: " + json.dumps(params, sort_keys=True) + "\n")
    with cache.atomic_path(marker) as tmp:
        tmp.write_text(text)
    return root


def _read_params(marker: Path) -> dict | None:
    for line in marker.read_text().splitlines():
        if line.startswith("params: "):
            return json.loads(line[len("params: "):])
    return None


def is_synthetic(root) -> bool:
    """Whether ``root`` holds the synthetic demo set (it carries the marker file)."""
    return (Path(root) / MARKER).is_file()
