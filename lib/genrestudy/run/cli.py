"""The ``genrestudy`` console command.

``genrestudy predict PATH... [--model MODEL] [--json] [--top K]`` prints each file's most
probable genres (mean of its segments' probabilities), one line per file; with ``--json``
one JSON object per line and file: ``{"path", "genre", "probabilities", "segments"}``.
A file that cannot be predicted gets one line on stderr and the others go on. A file name
holding a newline or other unprintable character is shown quoted and escaped (``repr``), so
every file keeps one line, and so is a genre name of the model's header holding one (an
escape sequence never reaches the terminal); ``--json`` escapes them the JSON way.

``genrestudy tags PATH... [--model MSD_musicnn] [--json] [--top K]`` prints the top tags of
musicnn's music-trained tagger (:mod:`genrestudy.extractors.musicnn`) per file, the same way.

Exit status: 0 every file predicted; 1 some file failed; 2 no model to predict with
(missing, not a genrestudy model) or a usage error.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

EXIT_OK, EXIT_FILE_FAILED, EXIT_NO_MODEL = 0, 1, 2
#: interrupted by Ctrl-C (128 + SIGINT); stdout closed by its reader (128 + SIGPIPE), as the shell reports them
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141


class _ModelOption(argparse.Action):
    """``predict --model``, whose help names every kind of model file registered (read when help is shown:
    the registry fills as the methods are imported, which takes seconds that only --help should pay)."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.pop("help", None)
        super().__init__(option_strings, dest, **kwargs)

    @property
    def help(self) -> str:
        from .. import methods
        from . import predict
        from ..models.modelfile import kinds

        described = [f"{kind}: {predict.KIND_NOTES[kind]}" if kind in predict.KIND_NOTES else kind for kind in kinds()]
        return (f"model file, of any kind genrestudy writes: {'; '.join(described)}; "
                f"default: data/models/{predict.DEFAULT_MODEL_NAME}")

    @help.setter
    def help(self, value) -> None:
        pass

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)


def _tagger_guide() -> str:
    """The taggers' guide read off their tag lists, which come with the weights (one line when absent)."""
    from ..extractors import tagger_vocabulary
    from ..extractors.musicnn_weights import WeightsMissing

    try:
        return tagger_vocabulary.guide()
    except (WeightsMissing, OSError) as exc:
        return f"(shown once the tag lists are here: {str(exc).splitlines()[0]})"


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="genrestudy", description="Music genre classification study tools.")
    parser.add_argument("--version", action="version", version=f"genrestudy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict", help="predict the genre of audio files",
        description="Predict the genre of audio files (wav, au, flac, ogg, mp3; any length of at least one "
                    "segment, any sample rate, mono or stereo) with a genrestudy model.")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="audio files")
    predict.add_argument("--model", default=None, action=_ModelOption)
    predict.add_argument("--json", action="store_true", help="one JSON object per line and file")
    predict.add_argument("--top", type=int, default=3, help="genres shown per file without --json (default 3)")
    predict.add_argument("--verbose", action="store_true",
                         help="let the deep-learning libraries print their start-up messages on stderr")
    from ..extractors import tagger_vocabulary
    from ..extractors.musicnn_architecture import ARCHITECTURES

    tags = commands.add_parser(
        "tags", help="the top tags of a music-trained model (musicnn) for audio files",
        description="Tag audio files with musicnn's published taggers (Keras 3 port; weights fetched by the "
                    "set-up): consecutive 3 s patches at 16 kHz, tag probabilities averaged, one line per file. "
                    "Which tagger suits what: " + _tagger_guide())
    tags.add_argument("paths", nargs="*", metavar="PATH", help="audio files")
    tags.add_argument("--model", default=None, choices=tuple(ARCHITECTURES),
                      help=f"tagger (default {tagger_vocabulary.DEFAULT_TAGGER}, said on stderr when used unasked)")
    tags.add_argument("--list", action="store_true", help="print each tagger's tags and exit")
    tags.add_argument("--json", action="store_true", help="one JSON object per line and file")
    tags.add_argument("--top", type=int, default=3, help="tags shown per file (default 3)")
    tags.add_argument("--verbose", action="store_true",
                      help="let the deep-learning libraries print their start-up messages on stderr")
    return parser


@contextlib.contextmanager
def _native_stderr_hidden(hide: bool):
    """Send what native code writes to file descriptor 2 to /dev/null inside the block.

    TensorFlow's C++ start-up log (oneDNN, CUDA probing) ignores ``TF_CPP_MIN_LOG_LEVEL``
    and would bury this command's one-line messages; it is written while Keras is imported
    and a model loaded, so only that step is hidden. Our own messages are printed after.
    """
    if not hide:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _fail(message: str) -> None:
    print(f"genrestudy predict: {message}", file=sys.stderr, flush=True)


def _shown(path) -> str:
    """``path`` as printed on a line of text output: quoted and escaped (``repr``) when it holds a
    newline or another unprintable character that would split or garble the line."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _model_message(exc: Exception, model) -> str:
    """One line for a model that cannot be loaded, its path escaped as in :func:`_shown`."""
    message = str(exc)
    if model is not None:
        for form in {str(model), os.path.expanduser(str(model))}:
            message = message.replace(form, _shown(form))
    return message.splitlines()[0] if message else type(exc).__name__


class _Stream:
    """A command's output as each file finishes: its line on stdout (flushed at once), failures on stderr,
    and a progress bar over the files on stderr when stderr is a terminal (never in a pipe or a log)."""

    def __init__(self, command: str, total: int):
        self.command, self.total, self.done, self.failed = command, total, 0, 0
        self.bar = None
        if total > 1 and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=command, unit="file", file=sys.stderr, leave=False)

    def fail(self, message: str) -> None:
        self._write(f"genrestudy {self.command}: {message}", sys.stderr)

    def _write(self, text: str, file) -> None:
        if self.bar is not None:
            self.bar.write(text, file=file)  # clears the bar, writes the line, redraws the bar
            file.flush()
        else:
            print(text, file=file, flush=True)

    def result(self, text: str | None, error: str | None = None) -> None:
        """One file finished: its line (or its one-line failure on stderr)."""
        if error is not None:
            self.failed += 1
            self.fail(error)
        else:
            self._write(text, sys.stdout)
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def status(self) -> int:
        return EXIT_FILE_FAILED if self.failed else EXIT_OK


def _plural(n: int, word: str, plural: str | None = None) -> str:
    """``1 segment``, ``2 segments``; ``1 patch``, ``2 patches`` (``plural`` when not ``word + "s"``)."""
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def _predict(args, stream_for) -> int:
    # the methods register the kinds of model file they write (a KNN, ...) and how to read them
    from .. import methods
    from . import predict

    if args.top < 1:
        _fail(f"--top must be at least 1, got {args.top}")
        return EXIT_NO_MODEL
    try:
        # load_model reads the file's header before it imports Keras: a wrong --model fails at once
        with _native_stderr_hidden(not args.verbose):
            model = predict.load_model(args.model)
    except (OSError, ValueError) as exc:  # ModelFileError is a ValueError
        _fail(_model_message(exc, args.model))
        return EXIT_NO_MODEL
    if model.synthetic:
        _fail(f"warning: {model.describe().replace(str(model.path), _shown(model.path))}")
    stream = stream_for("predict", len(args.paths))
    for result in predict.iter_predictions(args.paths, model):
        if not result.ok:
            stream.result(None, f"{_shown(result.path)}: {result.error}")
        elif args.json:
            stream.result(json.dumps(result.to_dict()))
        else:
            # genre names come from the model file's header: escaped as file names are
            top = ", ".join(f"{_shown(genre)} {p:.3f}" for genre, p in result.top(args.top))
            stream.result(f"{_shown(result.path)}: {top} ({_plural(result.segments, 'segment')})")
    return stream.status()


def _tags(args, stream_for) -> int:
    """``genrestudy tags``: one line per file; exit 2 without the weights, 1 when a file failed."""
    from ..extractors import musicnn, tagger_vocabulary
    from ..data.audio import AudioError

    def fail(message: str) -> None:
        print(f"genrestudy tags: {message}", file=sys.stderr, flush=True)

    if args.list:
        try:
            lines = tagger_vocabulary.listing()
        except musicnn.WeightsMissing as exc:
            fail(str(exc))
            return EXIT_NO_MODEL
        for line in lines:
            print(line, flush=True)
        return EXIT_OK
    if not args.paths:
        fail("give audio files to tag, or --list to see each tagger's tags")
        return EXIT_NO_MODEL
    if args.top < 1:
        fail(f"--top must be at least 1, got {args.top}")
        return EXIT_NO_MODEL
    unasked = args.model is None
    args.model = args.model or tagger_vocabulary.DEFAULT_TAGGER
    try:
        with _native_stderr_hidden(not args.verbose):
            musicnn.load_model(args.model)
        if unasked:  # the default's vocabulary decides what it can say: one line on what it is
            fail(tagger_vocabulary.default_note())
    except musicnn.WeightsMissing as exc:
        fail(str(exc))
        return EXIT_NO_MODEL
    stream = stream_for("tags", len(args.paths))
    for path in args.paths:
        try:
            result = musicnn.tag_file(path, args.model)
        except (AudioError, OSError, ValueError) as exc:
            stream.result(None, f"{_shown(path)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        if args.json:
            stream.result(json.dumps(result.to_dict(args.top)))
        else:
            top = ", ".join(f"{tag} {p:.3f}" for tag, p in result.top(args.top))
            stream.result(f"{_shown(path)}: {top} ({args.model}, {_plural(result.patches, 'patch', 'patches')})")
    return stream.status()


def _run(args) -> int:
    """Run the command; Ctrl-C ends it with one line (exit 130), every finished file's line already out."""
    streams: list[_Stream] = []

    def stream_for(command: str, total: int) -> _Stream:
        streams.append(_Stream(command, total))
        return streams[-1]

    command = _tags if args.command == "tags" else _predict
    try:
        return command(args, stream_for)
    except KeyboardInterrupt:
        for stream in streams:
            stream.close()
        done = f" after {streams[-1].done} of {_plural(streams[-1].total, 'file')}" if streams else ""
        print(f"genrestudy {args.command}: interrupted{done}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        for stream in streams:
            stream.close()


def _closed_stdout(real_command: bool) -> int:
    """stdout's reader went away (``| head -1``): end quietly, as a tool killed by SIGPIPE does."""
    import signal

    # nothing more may reach the closed pipe, not even the interpreter's flush at exit
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a stdout without a file descriptor (captured in tests)
        fd = None
    if fd is not None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    if real_command and hasattr(signal, "SIGPIPE"):
        # the standard ending: the shell sees "killed by SIGPIPE" (status 141), as for head, grep or cat
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    # TensorFlow's C++ warnings after start-up would bury this command's one-line messages
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed why
        return int(exc.code or 0)
    try:
        return _run(args)
    except BrokenPipeError:
        return _closed_stdout(real_command=argv is None)


if __name__ == "__main__":
    sys.exit(main())
