"""The LightGBM searches of a profile's run, counted as the search cache runs them (:mod:`genrestudy.run.plan_work`).

A search's fits and boosting rounds follow the halving schedule of :func:`genrestudy.models.search.run_search`;
:class:`SearchLedger` counts a search two notebooks share once, and a winner's refit or retrain once
(:mod:`genrestudy.models.winner_fits` caches them), as the run does.
"""
from __future__ import annotations

#: the halving factor of the study's searches (:func:`genrestudy.models.search.run_search`'s default), and one
#: that needs a third of their rounds, shown beside it (``bench/tune.py`` checks its halving gap)
STUDY_FACTOR, FEWER_ROUNDS_FACTOR = 3, 5


def search_rounds(n_candidates: int, *, mode: str, num_boost_round: int, factor: int = STUDY_FACTOR) -> tuple[int, int]:
    """(fits, boosting rounds at most) of one search, as :func:`genrestudy.models.search.run_search` runs it
    (halving on rounds with warm starts: a survivor trains only the rounds it lacks)."""
    from ..models import search

    if mode == "exhaustive":
        return n_candidates, n_candidates * num_boost_round
    first = search.default_min_resources(n_candidates, num_boost_round, factor=factor, resource="rounds")
    schedule = search.halving_schedule(n_candidates, min_resources=first, max_resources=num_boost_round,
                                       factor=factor)
    fits = rounds = previous = 0
    for alive, resources in schedule:
        fits += alive
        rounds += alive * (resources - previous)
        previous = resources
    return fits, rounds


def n_candidates(method: str, budget: int) -> int:
    from ..models import search

    full = 1
    for values in search.TABLE2_GRID.values():
        full *= len(values)
    return min(int(budget), full) if method == "grid" else int(budget)


class SearchLedger:
    """The searches of the whole run, keyed as the search cache keys them (protocol, method, seed, settings)."""

    def __init__(self):
        self.seen: set = set()
        self.asked_rounds = 0
        self.run_rounds = 0
        self.fewer_rounds = 0   # the searches run at FEWER_ROUNDS_FACTOR instead
        self.exhaustive_rounds = 0   # the searches run exhaustively (every candidate to the full rounds)
        self.fits: set = set()   # the winners' refits and retrains, cached as winner_fits caches them

    def winner_fit(self, *key) -> bool:
        """Whether the refit or retrain ``key`` is trained here (False: an earlier notebook's is read back)."""
        fresh = key not in self.fits
        self.fits.add(key)
        return fresh

    def ask(self, protocol: str, method: str, seed: int, p: dict, features: str = "study") -> tuple[int, int, bool]:
        n = n_candidates(method, p["budget"])
        fits, rounds = search_rounds(n, mode=p["search_mode"], num_boost_round=int(p["num_boost_round"]))
        key = (protocol, method, int(seed), n, p["search_mode"], int(p["num_boost_round"]), features,
               p.get("early_stopping_rounds"), p.get("max_bin"), p.get("data"), p.get("weights"))
        fresh = key not in self.seen
        self.seen.add(key)
        self.asked_rounds += rounds
        self.run_rounds += rounds if fresh else 0
        if fresh:
            self.fewer_rounds += search_rounds(n, mode=p["search_mode"], num_boost_round=int(p["num_boost_round"]),
                                               factor=FEWER_ROUNDS_FACTOR)[1]
            self.exhaustive_rounds += n * int(p["num_boost_round"])
        return fits, rounds, fresh
