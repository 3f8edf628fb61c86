"""The ``genrestudy`` console command.

``genrestudy predict PATH... [--model MODEL] [--json] [--top K]`` prints each file's most
probable genres (mean of its segments' probabilities), one line per file; with ``--json``
one JSON object per line and file: ``{"path", "genre", "probabilities", "segments"}``.
A file that cannot be predicted gets one line on stderr and the others go on. A file name
holding a newline or other unprintable character is shown quoted and escaped (``repr``), so
every file keeps one line, and so is a genre name of the model's header holding one (an
escape sequence never reaches the terminal); ``--json`` escapes them the JSON way.

``genrestudy tags PATH... [--model MSD_musicnn] [--json] [--top K]`` prints the top tags of
musicnn's music-trained tagger (:mod:`genrestudy.musicnn`) per file, the same way.

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


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="genrestudy", description="Music genre classification study tools.")
    parser.add_argument("--version", action="version", version=f"genrestudy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict", help="predict the genre of audio files",
        description="Predict the genre of audio files (wav, au, flac, ogg, mp3; any length of at least one "
                    "segment, any sample rate, mono or stereo) with a genrestudy model.")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="audio files")
    predict.add_argument("--model", default=None,
                         help="model file: an end-to-end .keras (notebook 04) or a hybrid .zip (notebook 03); "
                              "default: data/models/resnet50_end_to_end.keras")
    predict.add_argument("--json", action="store_true", help="one JSON object per line and file")
    predict.add_argument("--top", type=int, default=3, help="genres shown per file without --json (default 3)")
    predict.add_argument("--verbose", action="store_true",
                         help="let the deep-learning libraries print their start-up messages on stderr")
    tags = commands.add_parser(
        "tags", help="the top tags of a music-trained model (musicnn) for audio files",
        description="Tag audio files with musicnn's published taggers (Keras 3 port; weights fetched by the "
                    "set-up): consecutive 3 s patches at 16 kHz, tag probabilities averaged, one line per file.")
    tags.add_argument("paths", nargs="+", metavar="PATH", help="audio files")
    tags.add_argument("--model", default="MSD_musicnn", choices=("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"),
                      help="tagger (default MSD_musicnn)")
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


def _predict(args) -> int:
    # the methods register the kinds of model file they write (a KNN, ...) and how to read them
    from . import methods, predict  # noqa: F401

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
    failed = 0
    for result in predict.predict_files(args.paths, model, progress=sys.stderr.isatty() and len(args.paths) > 1):
        if not result.ok:
            failed += 1
            _fail(f"{_shown(result.path)}: {result.error}")
            continue
        if args.json:
            print(json.dumps(result.to_dict()), flush=True)
        else:
            # genre names come from the model file's header: escaped as file names are
            top = ", ".join(f"{_shown(genre)} {p:.3f}" for genre, p in result.top(args.top))
            print(f"{_shown(result.path)}: {top} ({result.segments} segments)", flush=True)
    return EXIT_FILE_FAILED if failed else EXIT_OK


def _tags(args) -> int:
    """``genrestudy tags``: one line per file; exit 2 without the weights, 1 when a file failed."""
    from . import musicnn
    from .audio import AudioError

    def fail(message: str) -> None:
        print(f"genrestudy tags: {message}", file=sys.stderr, flush=True)

    if args.top < 1:
        fail(f"--top must be at least 1, got {args.top}")
        return EXIT_NO_MODEL
    try:
        with _native_stderr_hidden(not args.verbose):
            musicnn.load_model(args.model)
    except musicnn.WeightsMissing as exc:
        fail(str(exc))
        return EXIT_NO_MODEL
    failed = 0
    for path in args.paths:
        try:
            result = musicnn.tag_file(path, args.model)
        except (AudioError, OSError, ValueError) as exc:
            failed += 1
            fail(f"{_shown(path)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        if args.json:
            print(json.dumps(result.to_dict(args.top)), flush=True)
        else:
            top = ", ".join(f"{tag} {p:.3f}" for tag, p in result.top(args.top))
            print(f"{_shown(path)}: {top} ({args.model}, {result.patches} patches)", flush=True)
    return EXIT_FILE_FAILED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    # TensorFlow's C++ warnings after start-up would bury this command's one-line messages
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed why
        return int(exc.code or 0)
    return _tags(args) if args.command == "tags" else _predict(args)


if __name__ == "__main__":
    sys.exit(main())
