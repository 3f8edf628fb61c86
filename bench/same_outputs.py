"""Whether two runs of the study made the same tables and figures, file by file, byte for byte.

A change that should change nothing (a package moved into folders, a function split) is checked by
running the demo before and after it and comparing the two ``results/`` and ``figures/`` trees:

    python bench/same_outputs.py BEFORE_REPO AFTER_REPO [--measured PATTERN ...]

Files that hold measurements of the run itself (timings, memory: Table 8 and its figure, the
efficiency steps) differ between any two runs; name them with ``--measured`` (fnmatch patterns
relative to the tree) and they are listed apart, not counted as differences. Exits 1 when any other
file differs or is present in only one tree.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import sys
from pathlib import Path

TREES = ("results", "figures")
#: the demo's files that hold the run's own timings or memory (Table 8, the efficiency steps)
MEASURED = ("results/table08*", "results/table_efficiency*", "figures/fig*efficiency*", "figures/fig*table08*",
            "results/*timing*")


def digests(repo: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file in the repository's output trees (HTML copies left out)."""
    found = {}
    for tree in TREES:
        for path in sorted((repo / tree).rglob("*")):
            if path.is_file() and path.suffix != ".html":
                found[path.relative_to(repo).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def compare(before: Path, after: Path, measured=MEASURED) -> dict[str, list[str]]:
    """The files of the two runs sorted into ``same``, ``different``, ``measured``, ``only_before``, ``only_after``."""
    a, b = digests(before), digests(after)
    out = {"same": [], "different": [], "measured": [], "only_before": sorted(set(a) - set(b)),
           "only_after": sorted(set(b) - set(a))}
    for name in sorted(set(a) & set(b)):
        if a[name] == b[name]:
            out["same"].append(name)
        elif any(fnmatch.fnmatch(name, pattern) for pattern in measured):
            out["measured"].append(name)
        else:
            out["different"].append(name)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--measured", nargs="*", default=list(MEASURED))
    args = parser.parse_args(argv)
    for repo in (args.before, args.after):
        if not any((repo / tree).is_dir() for tree in TREES):
            parser.error(f"{repo} has no {' or '.join(TREES)} folder: run the study there first")
    found = compare(args.before, args.after, args.measured)
    for kind in ("different", "only_before", "only_after", "measured"):
        for name in found[kind]:
            print(f"{kind:12s} {name}")
    print(f"{len(found['same'])} files identical, {len(found['different'])} different, "
          f"{len(found['only_before']) + len(found['only_after'])} in one run only, "
          f"{len(found['measured'])} measured (timings, memory; not compared)")
    return 1 if found["different"] or found["only_before"] or found["only_after"] else 0


if __name__ == "__main__":
    sys.exit(main())
