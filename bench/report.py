"""A benchmark's report of its own run: ``bench/reports/<script stem>.md``.

Usage, in a benchmark script after its arguments are parsed::

    from report import add_report_option, bench_report, size_statement

    with bench_report("tune", args.report, size=size_statement(parser, args, ["n_samples", ...])):
        ...  # everything printed here is also written to the report

While the block runs, ``sys.stdout`` is teed: every line still reaches the terminal unchanged
and is also kept for the report. When the block ends, normally or by an exception, the report
is written atomically (a temporary file in the same folder, then :func:`os.replace`) with the
date and time (UTC), the exact command line, the machine, the Python and library versions, the
load average at the start, the printed lines and the wall time; after a failure it says that
the run failed and why (the traceback), and the exception propagates as before. ``path`` empty
(``--report ""``) writes no report.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import io
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

REPORTS_DIR = Path(__file__).resolve().parent / "reports"
#: CPU flags that decide the speed of the benchmarks here (LightGBM's histograms and the
#: bfloat16/AMX paths of the feature extraction): x86's names, and Arm's ``bf16`` elsewhere
X86_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
ARM_FLAGS = ("bf16",)
#: libraries whose versions every report lists, before the script's own
BASE_LIBRARIES = ("numpy", "psutil")


def default_path(stem: str) -> Path:
    return REPORTS_DIR / f"{stem}.md"


def add_report_option(parser: argparse.ArgumentParser, stem: str) -> None:
    """``--report PATH``: where the run's Markdown report goes (``""``: no report)."""
    display = f"bench/reports/{stem}.md"
    parser.add_argument("--report", default=str(default_path(stem)), metavar="PATH",
                        help=f"Markdown report of this run, overwritten by each run (default: {display}; "
                             "'' writes none)")


def size_statement(parser: argparse.ArgumentParser, args: argparse.Namespace,
                   size_options: Iterable[str | tuple[str, Callable[[object, object], bool]]]) -> str:
    """Whether this run is at the script's default size or a smaller (smoke-sized) one.

    ``size_options``: the ``dest`` names of the options that set the run's size. One counts as
    smaller when its value is below its default (a flag: set where its default is off), or,
    given as ``(dest, smaller)``, when ``smaller(value, default)`` says so.
    """
    smaller, larger = [], []
    for option in size_options:
        dest, rule = option if isinstance(option, tuple) else (option, None)
        value, default = getattr(args, dest), parser.get_default(dest)
        if value == default:
            continue
        flag = "--" + dest.replace("_", "-")
        shown = flag if isinstance(value, bool) else f"{flag} {value} (default {default})"
        if rule is not None:
            is_smaller = rule(value, default)
        elif isinstance(value, bool):
            is_smaller = value and not default
        else:
            is_smaller = value < default
        (smaller if is_smaller else larger).append(shown)
    if smaller:
        return ("**smoke-sized run**: smaller than the script's defaults (" + ", ".join(smaller)
                + (f"; larger: {', '.join(larger)}" if larger else "")
                + "). Its numbers show that the benchmark runs; they are not the full-size result.")
    if larger:
        return "larger than the script's defaults (" + ", ".join(larger) + ")."
    return "the script's default size."


def cpu_info() -> tuple[str | None, dict[str, bool]]:
    """The CPU model (``None`` where unknown) and which of the flags that matter here it has (empty: unknown)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, {}
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features"):
            flags.update(value.split())
    names = X86_FLAGS if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") else ARM_FLAGS
    return model, ({f: f in flags for f in names} if flags else {})


def machine_lines() -> list[str]:
    """The machine, as report lines."""
    lines, described = [], ""
    try:
        from genrestudy.efficiency import hardware

        described = hardware()
        lines.append(f"- Machine: {described}")
    except Exception as exc:  # noqa: BLE001 -- the report must not fail for want of a description
        lines.append(f"- Machine: {platform.platform()} (genrestudy.efficiency.hardware() failed: {exc!r})")
    lines.append(f"- CPUs: os.cpu_count() = {os.cpu_count()}"
                 + (f", usable by this process: {len(os.sched_getaffinity(0))}" if hasattr(os, "sched_getaffinity") else ""))
    model, flags = cpu_info()
    if model and model not in described:
        lines.append(f"- CPU model: {model}")
    if flags:
        lines.append("- CPU flags that matter here: " + ", ".join(f"{f} {'yes' if on else 'no'}" for f, on in flags.items()))
    else:
        lines.append("- CPU flags: unknown (no /proc/cpuinfo)")
    return lines


def version_lines(libraries: Iterable[str]) -> list[str]:
    from genrestudy.cache import library_versions

    names = list(dict.fromkeys([*BASE_LIBRARIES, *libraries, "genrestudy"]))
    versions = library_versions(*names)
    return [f"- Python {platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
            "- Libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items())]


def git_line() -> str | None:
    """The commit of the checkout the script ran from, and whether its files differ from it (read-only)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("diff", "--quiet", "HEAD", "--").returncode
    except (OSError, subprocess.SubprocessError):
        return None
    state = {0: "no uncommitted changes to tracked files", 1: "with uncommitted changes to tracked files"}
    return f"- Code: git commit {head.stdout.strip()}, {state.get(dirty, 'working tree state unknown')}"


class _Tee(io.TextIOBase):
    """Writes to the original stream and keeps a copy."""

    def __init__(self, stream):
        self._stream = stream
        self._copy = io.StringIO()

    def write(self, text: str) -> int:
        self._copy.write(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")

    def getvalue(self) -> str:
        return self._copy.getvalue()


class BenchReport:
    """The run being reported: what :func:`bench_report` yields."""

    def __init__(self, stem: str, path: Path | None, command: list[str], size: str | None,
                 libraries: Iterable[str]):
        self.stem, self.path, self.command, self.size = stem, path, command, size
        self.libraries = list(libraries)
        self.notes: list[str] = []
        self.started_utc = _dt.datetime.now(_dt.timezone.utc)
        self.load_at_start = os.getloadavg() if hasattr(os, "getloadavg") else None
        self._t0 = time.perf_counter()
        self._tee: _Tee | None = None

    def note(self, text: str) -> None:
        """A line of the report's header, beside the measured ones (e.g. what the run left out)."""
        self.notes.append(text)

    @property
    def printed(self) -> str:
        return self._tee.getvalue() if self._tee is not None else ""

    def render(self, *, wall_seconds: float, error: BaseException | None) -> str:
        if error is None:
            outcome = "completed"
        elif isinstance(error, KeyboardInterrupt):
            outcome = "FAILED: interrupted (KeyboardInterrupt)"
        else:
            outcome = f"FAILED: {type(error).__name__}: {error}"
        load = ("unknown" if self.load_at_start is None
                else " / ".join(f"{x:.2f}" for x in self.load_at_start) + " (1 / 5 / 15 min)")
        lines = [
            f"# Benchmark report: bench/{self.stem}.py",
            "",
            f"Written by `bench/report.py` at the end of the run below; every run of `bench/{self.stem}.py` "
            f"overwrites this file (`--report PATH` writes elsewhere, `--report ''` writes none). "
            "Nothing in it is edited by hand.",
            "",
            f"- Outcome: {outcome}",
            f"- Started: {self.started_utc.strftime('%Y-%m-%d %H:%M:%S')} UTC",
            f"- Command: `{shlex.join(self.command)}`",
            f"- Working directory: `{os.getcwd()}`",
        ]
        if self.size:
            lines.append(f"- Size: {self.size}")
        lines += [f"- Note: {n}" for n in self.notes]
        lines += machine_lines()
        lines.append(f"- Load average at the start: {load}")
        lines += version_lines(self.libraries)
        code = git_line()
        if code:
            lines.append(code)
        lines.append(f"- Wall time: {wall_seconds:.1f} s")
        printed = self.printed.rstrip("\n")
        lines += ["", "## Printed output", "",
                  "Every line the script printed to stdout, in order (the last line is its summary):", "",
                  "```text", printed if printed else "(nothing)", "```"]
        if error is not None:
            tb = "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip("\n")
            lines += ["", "## Failure", "", f"The run failed after {wall_seconds:.1f} s: "
                      f"`{type(error).__name__}: {error}`", "", "```text", tb, "```"]
        return "\n".join(lines) + "\n"

    def write(self, text: str) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is not what a report in the repository needs
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextmanager
def bench_report(stem: str, path: str | os.PathLike | None = None, *, argv: list[str] | None = None,
                 size: str | None = None, libraries: Iterable[str] = ()) -> Iterator[BenchReport]:
    """Tee stdout into a Markdown report of this run, written atomically at the end (also on failure).

    ``stem``: the script's name (``"tune"`` or ``__file__``); ``path``: where the report goes
    (``None``: ``bench/reports/<stem>.md``; ``""``: no report, stdout left alone). ``argv``: the
    arguments ``main(argv)`` was called with, when not from the command line (the command line
    is then the script with them). ``size``: a line on the run's size (:func:`size_statement`).
    ``libraries``: distributions whose versions the report lists.
    """
    stem = Path(stem).stem
    if path is None:
        path = default_path(stem)
    if argv is None:
        command = [sys.executable, *sys.argv]
    else:
        command = [sys.executable, f"bench/{stem}.py", *argv]
    report = BenchReport(stem, Path(path) if str(path) else None, command, size, libraries)
    if report.path is None:
        yield report
        return
    original = sys.stdout
    report._tee = _Tee(original)
    sys.stdout = report._tee
    error: BaseException | None = None
    try:
        yield report
    except SystemExit as exc:
        if exc.code not in (None, 0):
            error = exc
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            sys.stdout.flush()
        finally:
            sys.stdout = original
        wall = time.perf_counter() - report._t0
        try:
            report.write(report.render(wall_seconds=wall, error=error))
            print(f"report of this run: {report.path}", file=sys.stderr)  # stderr: the printed lines stay as they were
        except Exception as exc:  # noqa: BLE001 -- a report that cannot be written must not hide the run's result
            print(f"bench/report.py: could not write {report.path}: {exc}", file=sys.stderr)
