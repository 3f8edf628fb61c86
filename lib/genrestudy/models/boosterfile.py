"""The LightGBM model text inside a hybrid model file, checked before LightGBM parses it.

LightGBM's C++ parser trusts its input: a truncated or damaged model text makes it read past
the end of the buffer (a segmentation fault or an abort, after hundreds of warning lines),
and a child index or category index out of range loads fine and crashes later, at predict
time. So the text is checked here against the structure LightGBM writes
(``GBDT::SaveModelToString``) before it is handed over:

* a header of ``key=value`` lines with ``num_class``, ``num_tree_per_iteration``,
  ``label_index``, ``max_feature_idx``, ``feature_names`` and ``feature_infos`` of
  ``max_feature_idx + 1`` items, and ``tree_sizes``;
* the trees, each exactly where ``tree_sizes`` puts it, ``Tree=<i>`` then at most 22
  ``key=value`` lines: numeric arrays of the lengths ``num_leaves`` implies, features
  below ``max_feature_idx``, decision types and category indices in range, and children
  that make one binary tree (every node reached once from the root, so prediction ends);
* ``end of trees``, and a ``parameters:`` section closed by ``end of parameters``.

A file written with a SHA-256 of its booster (:func:`genrestudy.models.modelfile.read_payload`)
is checked too: the hash proves the bytes are the ones written, this proves they are safe.
"""
from __future__ import annotations

import re

#: a LightGBM tree holds at most this many key=value lines (Tree::Tree(const char*))
MAX_TREE_LINES = 22
# numbers as LightGBM writes them (printf %.17g) and its parsers take without throwing
_INT = re.compile(r"^-?\d{1,10}$")
_FLOAT = re.compile(r"^-?(\d+(\.\d+)?([eE][-+]?\d+)?|inf|nan)$")
_INT32 = 2**31
_SMALLEST_NORMAL = 2.2250738585072014e-308
_PARAMETER = re.compile(r"^\[[A-Za-z0-9_]+: [^\n]*\]$")
# array fields of a tree: name -> (length: "n" for num_leaves or "n-1" for internal nodes, integer?)
_ARRAYS = {"split_feature": ("n-1", True), "split_gain": ("n-1", False), "threshold": ("n-1", False),
           "decision_type": ("n-1", True), "left_child": ("n-1", True), "right_child": ("n-1", True),
           "internal_value": ("n-1", False), "internal_weight": ("n-1", False), "internal_count": ("n-1", True),
           "leaf_value": ("n", False), "leaf_weight": ("n", False), "leaf_count": ("n", True),
           "leaf_const": ("n", False), "num_features": ("n", True)}
_CATEGORICAL, _MISSING_SHIFT = 1, 2  # decision_type bits: categorical, default-left, missing type (2 bits)


class BoosterTextError(ValueError):
    """LightGBM model text that LightGBM could not parse safely; ``str(err)`` is one line."""


def _integer(value: str, what: str, *, low: int = 0, high: int | None = None) -> int:
    if not _number_ok(value, True) or int(value) < low or (high is not None and int(value) > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise BoosterTextError(f"{what} is {value[:40]!r}, expected an integer {span}")
    return int(value)


def _numbers(value: str, what: str, length: int, *, integer: bool, allow_empty: bool = False,
             grouped: bool = False) -> list:
    # a linear tree's per-leaf groups are separated by runs of spaces (one per leaf, empty or not)
    items = value.split() if grouped else value.split(" ") if value else []
    if len(items) != length and not (allow_empty and not items):
        raise BoosterTextError(f"{what} has {len(items)} values, expected {length}")
    bad = next((item for item in items if not _number_ok(item, integer)), None)
    if bad is not None:
        raise BoosterTextError(f"{what} holds {bad[:40]!r}, not {'an integer' if integer else 'a number'} "
                               "LightGBM reads")
    return [int(item) for item in items] if integer else [float(item) for item in items]


def _number_ok(item: str, integer: bool) -> bool:
    if integer:
        return bool(_INT.match(item)) and -_INT32 <= int(item) < _INT32
    if not _FLOAT.match(item):
        return False
    # std::stod throws (and LightGBM aborts) on a literal beyond double range, large or tiny
    value = abs(float(item))
    return item.lstrip("-") in ("inf", "nan") or (value != float("inf") and (value == 0 or value >= _SMALLEST_NORMAL))


def _read_header(lines: list[str]) -> dict[str, str]:
    header = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep and line not in ("tree", "average_output", ""):
            raise BoosterTextError(f"header line {line[:40]!r} is not key=value")
        if sep and "=" in value and key not in ("feature_names", "monotone_constraints"):
            raise BoosterTextError(f"header line {line[:40]!r} has more than one '='")
        header[key] = value
    missing = [k for k in ("num_class", "num_tree_per_iteration", "label_index", "max_feature_idx",
                           "feature_names", "feature_infos", "tree_sizes") if k not in header]
    if missing:
        raise BoosterTextError(f"header lacks {', '.join(missing)}")
    return header


def _check_topology(left: list[int], right: list[int], n: int, tree: int) -> None:
    """Every internal node and leaf reached exactly once from the root: one binary tree."""
    seen_nodes, seen_leaves, stack = set(), set(), [0]
    while stack:
        node = stack.pop()
        if node < 0:
            if ~node >= n or ~node in seen_leaves:
                raise BoosterTextError(f"tree {tree} reaches leaf {~node} twice or out of range")
            seen_leaves.add(~node)
            continue
        if node >= n - 1 or node in seen_nodes:
            raise BoosterTextError(f"tree {tree} reaches node {node} twice or out of range")
        seen_nodes.add(node)
        stack += [left[node], right[node]]
    if len(seen_leaves) != n:
        raise BoosterTextError(f"tree {tree} reaches {len(seen_leaves)} of its {n} leaves")


def _check_linear(fields: dict[str, str], n: int, n_features: int, tree: int) -> None:
    # a leaf with features but no coefficients (or the reverse) is indexed past its end at predict time
    missing = [k for k in ("leaf_const", "num_features", "leaf_features", "leaf_coeff") if k not in fields]
    if missing:
        raise BoosterTextError(f"linear tree {tree} lacks {', '.join(missing)}")
    counts = _numbers(fields.get("num_features", ""), f"tree {tree} num_features", n, integer=True,
                      allow_empty=True)
    if any(not 0 <= c <= n_features for c in counts):
        raise BoosterTextError(f"tree {tree} num_features holds a count out of range 0..{n_features}")
    total = sum(counts)
    for key in ("leaf_features", "leaf_coeff"):
        values = _numbers(fields[key], f"tree {tree} {key}", total, integer=key == "leaf_features", grouped=True)
        if key == "leaf_features" and any(not 0 <= v < n_features for v in values):
            raise BoosterTextError(f"tree {tree} leaf_features names a feature out of range")


def _check_tree(block: str, tree: int, n_features: int) -> None:
    """One tree's text (after its ``Tree=<i>`` line) as LightGBM's Tree constructor reads it."""
    lines = block.rstrip("\n").split("\n")
    if len(lines) > MAX_TREE_LINES or not block.endswith("\n\n"):
        raise BoosterTextError(f"tree {tree} is not {MAX_TREE_LINES} or fewer lines closed by a blank line")
    fields = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or not key:  # the C++ parser scans for '=' past the end of the text
            raise BoosterTextError(f"tree {tree} line {line[:40]!r} is not key=value")
        fields[key] = value
    for key in ("num_leaves", "num_cat", "leaf_value"):
        if key not in fields:
            raise BoosterTextError(f"tree {tree} lacks {key}")
    n = _integer(fields["num_leaves"], f"tree {tree} num_leaves", low=1, high=1 << 24)
    n_cat = _integer(fields["num_cat"], f"tree {tree} num_cat", high=n)
    arrays = {}
    for key, (size, integer) in _ARRAYS.items():
        if key in fields:
            length = n if size == "n" else n - 1
            arrays[key] = _numbers(fields[key], f"tree {tree} {key}", length, integer=integer,
                                   allow_empty=size == "n" and n == 1)
        elif n > 1 and key in ("split_feature", "threshold", "left_child", "right_child"):
            raise BoosterTextError(f"tree {tree} lacks {key}")
    if n > 1:
        if any(not 0 <= f < n_features for f in arrays["split_feature"]):
            raise BoosterTextError(f"tree {tree} splits on a feature out of range 0..{n_features - 1}")
        _check_topology(arrays["left_child"], arrays["right_child"], n, tree)
    _check_categories(fields, arrays, n_cat, tree)
    if "shrinkage" in fields:
        _numbers(fields["shrinkage"], f"tree {tree} shrinkage", 1, integer=False)
    if fields.get("is_linear", "0") not in ("0", "1"):
        raise BoosterTextError(f"tree {tree} is_linear is {fields['is_linear'][:40]!r}, expected 0 or 1")
    if fields.get("is_linear") == "1":
        _check_linear(fields, n, n_features, tree)


def _check_categories(fields: dict[str, str], arrays: dict, n_cat: int, tree: int) -> None:
    for position, kind in enumerate(arrays.get("decision_type", [])):
        if not 0 <= kind < 16 or (kind >> _MISSING_SHIFT) > 2:
            raise BoosterTextError(f"tree {tree} decision type {kind} is not one LightGBM writes")
        if kind & _CATEGORICAL:
            threshold = arrays["threshold"][position]
            if threshold != int(threshold) or not 0 <= threshold < n_cat:
                raise BoosterTextError(f"tree {tree} categorical split {position} names category set "
                                       f"{threshold}, the tree has {n_cat}")
    if n_cat:
        for key in ("cat_boundaries", "cat_threshold"):
            if key not in fields:
                raise BoosterTextError(f"tree {tree} has {n_cat} categorical splits but no {key}")
        bounds = _numbers(fields["cat_boundaries"], f"tree {tree} cat_boundaries", n_cat + 1, integer=True)
        if bounds[0] != 0 or any(b < a for a, b in zip(bounds, bounds[1:])):
            raise BoosterTextError(f"tree {tree} cat_boundaries do not rise from 0")
        _numbers(fields["cat_threshold"], f"tree {tree} cat_threshold", bounds[-1], integer=True)


def _check_trailer(trailer: str) -> None:
    """What follows ``end of trees``: feature importances, then the parameters section."""
    lines = trailer.split("\n")
    if "parameters:" not in lines:
        return
    start = lines.index("parameters:") + 1
    if "end of parameters" not in lines[start:]:
        raise BoosterTextError("its parameters section has no 'end of parameters' (truncated?)")
    stop = lines.index("end of parameters", start)
    bad = next((line for line in lines[start:stop] if line and not _PARAMETER.match(line)), None)
    if bad is not None:
        raise BoosterTextError(f"parameter line {bad[:40]!r} is not [name: value]")


def check_booster_text(data: bytes) -> str:
    """The model text in ``data`` if LightGBM can parse and predict with it safely.

    Parameters
    ----------
    data : bytes
        A LightGBM model as ``Booster.model_to_string()`` writes it (UTF-8).

    Returns
    -------
    str
        The decoded text.

    Raises
    ------
    BoosterTextError
        One line saying what is wrong (truncated, a damaged tree, not LightGBM text).

    Examples
    --------
    >>> check_booster_text(b"not a model")
    Traceback (most recent call last):
    ...
    genrestudy.models.boosterfile.BoosterTextError: it does not start with LightGBM's 'tree' line
    """
    if not data.startswith(b"tree\n"):
        raise BoosterTextError("it does not start with LightGBM's 'tree' line")
    if b"\0" in data or b"\r" in data:
        raise BoosterTextError("it holds NUL or carriage-return bytes LightGBM never writes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BoosterTextError(f"it is not UTF-8 text (byte {exc.start})") from None
    raw = data  # tree_sizes count bytes, not characters
    first = raw.find(b"\nTree=")
    end = raw.find(b"\nend of trees\n")
    if first < 0 or end < first:
        raise BoosterTextError("it has no trees followed by 'end of trees' (truncated?)")
    header = _read_header(raw[:first].decode().split("\n"))
    n_class = _integer(header["num_class"], "num_class", low=1, high=1 << 16)
    per_iteration = _integer(header["num_tree_per_iteration"], "num_tree_per_iteration", low=1, high=1 << 16)
    _integer(header["label_index"], "label_index")
    n_features = _integer(header["max_feature_idx"], "max_feature_idx", high=1 << 24) + 1
    for key in ("feature_names", "feature_infos"):
        if len(header[key].split(" ")) != n_features:
            raise BoosterTextError(f"{key} does not hold max_feature_idx + 1 = {n_features} items")
    if per_iteration not in (1, n_class):
        raise BoosterTextError(f"{per_iteration} trees per iteration for {n_class} classes")
    sizes = _numbers(header["tree_sizes"], "tree_sizes", len(header["tree_sizes"].split(" ")), integer=True)
    trees = raw[first + 1:end + 1]
    if not sizes or sum(sizes) != len(trees) or len(sizes) % per_iteration:
        raise BoosterTextError(f"tree_sizes add up to {sum(sizes)} bytes for {len(sizes)} trees; the text holds "
                               f"{len(trees)} bytes of trees (truncated or damaged)")
    offset = 0
    for index, size in enumerate(sizes):
        block = trees[offset:offset + size].decode("utf-8", errors="replace")
        title = f"Tree={index}\n"
        if not block.startswith(title):
            raise BoosterTextError(f"tree {index} is not where tree_sizes puts it")
        _check_tree(block[len(title):], index, n_features)
        offset += size
    _check_trailer(raw[end + len(b"\nend of trees\n"):].decode())
    return text
