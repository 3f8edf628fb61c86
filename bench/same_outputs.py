"""Whether two runs of the study made the same tables and figures, file by file, byte for byte.

A change that should change nothing (a package moved into folders, a function split) is checked by
running the demo before and after it and comparing the two ``results/`` and ``figures/`` trees:

    python bench/same_outputs.py BEFORE_REPO AFTER_REPO [--measured PATTERN ...]

What differs between any two runs of the same code is set apart, not counted as a difference:

* files that are measurements of the run itself (Table 8 and its figure, cost-axis figures): named
  by ``--measured`` (fnmatch patterns relative to the tree);
* in a CSV table, the columns that hold measurements (seconds, memory, throughput) or the path of a
  cache entry (named by a key of the data's file times): every other column must be equal, as text;
  its Markdown copy is the same table and is not compared again;
* in an SVG figure, the date and the random clip-path ids matplotlib writes: the rest must be equal.

Exits 1 when any other file differs or is present in only one tree.
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import io
import re
import sys
from pathlib import Path

TREES = ("results", "figures")
#: the demo's files that hold the run's own timings or memory (Table 8, the efficiency steps)
MEASURED = ("results/table08*", "results/table_efficiency*", "figures/fig*efficiency*", "figures/fig*table08*",
            "figures/fig*_vs_cost*", "results/*timing*")
#: CSV columns that hold the run's own measurements, or paths named by cache keys
RUN_COLUMNS = re.compile(r"seconds|_s_per_|_ms_|ms_per|per_second|rss|_mb$|memory|file$")
_SVG_NOISE = re.compile(rb"<dc:date>[^<]*</dc:date>|(?<=id=\")[0-9a-z]+(?=\")|(?<=#)[0-9a-z]+(?=[\")])")
#: files made only of tables compared one by one (their CSVs)
GATHERED = ("results/README.md",)


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    return (rows[0], rows[1:]) if rows else ([], [])


def same_content(a: Path, b: Path) -> tuple[bool, list[str]]:
    """Whether two files say the same, leaving out what any run makes differently; with the columns left out."""
    if a.suffix == ".csv":
        (head_a, rows_a), (head_b, rows_b) = _table(a), _table(b)
        if head_a != head_b or len(rows_a) != len(rows_b):
            return False, []
        run = [i for i, name in enumerate(head_a) if RUN_COLUMNS.search(name)]
        keep = [i for i in range(len(head_a)) if i not in run]
        same = all([r[i] for i in keep] == [s[i] for i in keep] for r, s in zip(rows_a, rows_b))
        return same, [head_a[i] for i in run]
    if a.suffix == ".svg":
        return _SVG_NOISE.sub(b"", a.read_bytes()) == _SVG_NOISE.sub(b"", b.read_bytes()), []
    return a.read_bytes() == b.read_bytes(), []


def digests(repo: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file in the repository's output trees (HTML copies left out)."""
    found = {}
    for tree in TREES:
        for path in sorted((repo / tree).rglob("*")):
            if path.is_file() and path.suffix != ".html":
                found[path.relative_to(repo).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def compare(before: Path, after: Path, measured=MEASURED) -> dict[str, list[str]]:
    """The files of the two runs sorted into ``same`` (byte for byte), ``equal`` (leaving out what any run
    makes differently), ``different``, ``measured``, ``only_before``, ``only_after``, ``tables`` (Markdown
    copies judged with their CSVs); ``left_out``: the CSV columns not compared."""
    a, b = digests(before), digests(after)
    out = {"same": [], "equal": [], "different": [], "measured": [], "only_before": sorted(set(a) - set(b)),
           "only_after": sorted(set(b) - set(a)), "left_out": set(), "tables": []}
    for name in sorted(set(a) & set(b)):
        if (name.endswith(".md") and name[:-3] + ".csv" in a) or name in GATHERED:
            out["tables"].append(name)   # a table's Markdown copy, or all of them: judged with their CSVs
            continue
        kind = "same" if a[name] == b[name] else None
        if kind is None and any(fnmatch.fnmatch(name, pattern) for pattern in measured):
            kind = "measured"
        if kind is None:
            equal, columns = same_content(before / name, after / name)
            out["left_out"] |= set(columns)
            kind = "equal" if equal else "different"
        out[kind].append(name)
    out["left_out"] = sorted(out["left_out"])
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
        for name in sorted(set(found[kind])):
            print(f"{kind:12s} {name}")
    print(f"columns not compared (the run's measurements, cache-keyed paths): {', '.join(found['left_out']) or 'none'}")
    print(f"{len(found['same'])} files identical, {len(found['equal'])} equal but for the run's measurements "
          f"and SVG noise, {len(found['different'])} different, "
          f"{len(found['only_before']) + len(found['only_after'])} in one run only, "
          f"{len(found['measured'])} measured (timings, memory; not compared), "
          f"{len(found['tables'])} Markdown copies of tables judged with their CSVs")
    return 1 if found["different"] or found["only_before"] or found["only_after"] else 0


if __name__ == "__main__":
    sys.exit(main())
