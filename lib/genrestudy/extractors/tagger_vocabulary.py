"""What each of musicnn's taggers can say: its tags, and which music it suits, read off the tag lists.

The two training sets gave the taggers different vocabularies: the Million Song Dataset's
(``MSD_*``) are last.fm genres and decades of popular music and hold no "classical", so a
Brahms symphony can only come out "jazz, instrumental, oldies"; MagnaTagATune's (``MTT_*``)
name classical music, instruments and voices. Nothing here is typed by hand: every sentence
is built from :attr:`genrestudy.extractors.musicnn_architecture.Architecture.labels` (no Keras needed).

>>> "classical" in tags("MTT_musicnn") and "classical" not in tags("MSD_musicnn")
True
"""
from __future__ import annotations

import re

from .musicnn_architecture import ARCHITECTURES

#: the tagger ``genrestudy tags`` uses unless told otherwise
DEFAULT_TAGGER = "MSD_musicnn"
#: the data set each checkpoint's name prefix stands for
DATASETS = {"MSD": "Million Song Dataset (last.fm tags)", "MTT": "MagnaTagATune"}
#: examples of a vocabulary's own tags shown in help texts
EXAMPLES = 8


def tags(model: str) -> list[str]:
    """The tagger's tags, in its output order."""
    return list(ARCHITECTURES[model].labels)


def dataset(model: str) -> str:
    return model.split("_")[0]


def only_in(model: str) -> list[str]:
    """Tags of ``model`` that the other data set's taggers lack (in ``model``'s order)."""
    others = {tag.lower() for name in ARCHITECTURES if dataset(name) != dataset(model) for tag in tags(name)}
    return [tag for tag in tags(model) if tag.lower() not in others]


def suits(model: str) -> str:
    """One clause on what ``model`` can name that the other taggers cannot, from the tag lists."""
    own = only_in(model)
    decades = sorted((tag for tag in own if re.fullmatch(r"\d0s", tag)), key=lambda tag: (tag < "50s", tag))
    rest = [tag for tag in own if tag not in decades]
    shown = ", ".join(rest[:EXAMPLES]) + (", ..." if len(rest) > EXAMPLES else "")
    eras = f"; the decades {', '.join(decades)}" if decades else ""
    return f"{len(own)} tags the {_other(model)} taggers lack ({shown}{eras})"


def _other(model: str) -> str:
    return "/".join(sorted({dataset(name) for name in ARCHITECTURES} - {dataset(model)}))


def guide() -> str:
    """A paragraph for ``genrestudy tags --help`` and the README: which tagger suits what."""
    parts = []
    for prefix in sorted({dataset(name) for name in ARCHITECTURES}):
        model = next(name for name in ARCHITECTURES if dataset(name) == prefix)
        parts.append(f"{prefix}_* ({DATASETS.get(prefix, prefix)}): {suits(model)}")
    has_classical = sorted(name for name in ARCHITECTURES if "classical" in [t.lower() for t in tags(name)])
    return ("; ".join(parts) + f". Only {', '.join(has_classical)} can say 'classical'. "
            f"`genrestudy tags --list` prints every tagger's tags.")


def default_note() -> str:
    """The one line ``genrestudy tags`` prints when it uses :data:`DEFAULT_TAGGER` unasked."""
    classical = "classical" in [t.lower() for t in tags(DEFAULT_TAGGER)]
    better = next((name for name in ARCHITECTURES if "classical" in [t.lower() for t in tags(name)]), None)
    advice = ("" if classical or better is None else
              f"; it has no 'classical' tag: for classical music or instruments use --model {better}")
    return (f"tagging with {DEFAULT_TAGGER} (the default: {DATASETS[dataset(DEFAULT_TAGGER)]}, "
            f"{len(tags(DEFAULT_TAGGER))} tags{advice}; --list shows every tagger's tags)")


def listing() -> list[str]:
    """One line per tagger: its name, data set, tag count and every tag."""
    return [f"{name} ({DATASETS.get(dataset(name), dataset(name))}, {len(tags(name))} tags): {', '.join(tags(name))}"
            for name in ARCHITECTURES]
