"""A genetic algorithm choosing KNN's k, as the source study ran it, on DEAP's operators.

4-bit chromosomes, fitness = validation accuracy (memoised per k), elitism, roulette-wheel
selection, one-point crossover, bit-flip mutation, generational replacement; every setting is
a field of :class:`GASettings` (the source's by default).
"""
from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from .knn import K_VALUES, KChoice, KnnProblem, best_k


@dataclass(frozen=True)
class GASettings:
    """Every setting of the GA that chooses k (the source study's by default).

    Attributes
    ----------
    population : int
        Individuals per generation, 3..15. The first generation holds distinct k drawn
        without replacement, which is why the population cannot exceed the 15 values of k.
    generations : int
        Generations after the first (the run always makes all of them: the source's
        "maximum generations" with no other stopping rule).
    crossover_probability : float
        Chance that a pair of selected parents is recombined (``deap.tools.cxOnePoint``).
    mutation_probability : float
        Chance that each **bit** of each offspring flips (``deap.tools.mutFlipBit``'s
        ``indpb``): an offspring changes with probability 1 − 0.9⁴ ≈ 34 %.
    bits : int
        Chromosome length: the 4-bit binary code of k, most significant bit first. The code
        *is* k (0001 = 1 … 1111 = 15); the spare code 0000 decodes to no k: such an
        individual is infeasible, its fitness 0 (no fit made), so roulette never picks it.
    selection, crossover, mutation, elitism : str
        The ``deap.tools`` operators: roulette-wheel selection, one-point crossover,
        bit-flip mutation, and a one-member ``HallOfFame`` (the best individual found so far),
        copied unchanged into the next generation once when the population is odd and twice
        when even (:attr:`elites`), as the source states ("elitism copies the best individual
        once or twice"). Copying the *two best distinct* individuals instead would be another
        GA; see docs/DEVIATIONS.md.
    """

    population: int = 10
    generations: int = 20
    crossover_probability: float = 0.8
    mutation_probability: float = 0.1
    bits: int = 4
    selection: str = "selRoulette"
    crossover: str = "cxOnePoint"
    mutation: str = "mutFlipBit"
    elitism: str = "HallOfFame"

    def __post_init__(self):
        from deap import tools

        if not 3 <= self.population <= len(K_VALUES):
            raise ValueError(f"population {self.population} is outside 3..{len(K_VALUES)}: the first generation "
                             f"holds distinct values of k, and there are {len(K_VALUES)}")
        problems = [f"{name}={getattr(self, name)!r}" for name, ok in {
            "generations": self.generations >= 1,
            "crossover_probability": 0 <= self.crossover_probability <= 1,
            "mutation_probability": 0 <= self.mutation_probability <= 1,
            "bits": 2 ** self.bits - 1 == max(K_VALUES)}.items() if not ok]
        problems += [f"{name}={getattr(self, name)!r} (not in deap.tools)" for name in
                     ("selection", "crossover", "mutation", "elitism") if not hasattr(tools, getattr(self, name))]
        if problems:
            raise ValueError(f"invalid GA settings {', '.join(problems)}")

    @property
    def elites(self) -> int:
        """Copies of the best individual passed unchanged to the next generation: 1 (odd
        population) or 2 (even), so that the offspring pair up for crossover."""
        return 1 if self.population % 2 else 2

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def encode(k: int, bits: int = 4) -> list[int]:
    """The chromosome of ``k``: its binary code, most significant bit first."""
    return [int(b) for b in format(int(k), f"0{bits}b")]


def decode(chromosome) -> int | None:
    """The k of a chromosome; None for the spare code 0000."""
    value = int("".join(str(int(b)) for b in chromosome), 2)
    return value or None


@contextlib.contextmanager
def _seeded(seed: int):
    """DEAP's operators draw from the ``random`` module: seed it for one run, then restore it."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _deap_types():
    from deap import base, creator

    if not hasattr(creator, "GenrestudyKFitness"):
        creator.create("GenrestudyKFitness", base.Fitness, weights=(1.0,))
        creator.create("GenrestudyKChromosome", list, fitness=creator.GenrestudyKFitness)
    return creator.GenrestudyKChromosome


def _toolbox(settings: GASettings):
    from deap import base, tools

    toolbox = base.Toolbox()
    toolbox.register("select", getattr(tools, settings.selection))
    toolbox.register("mate", getattr(tools, settings.crossover))
    toolbox.register("mutate", getattr(tools, settings.mutation), indpb=settings.mutation_probability)
    return toolbox


def _vary(offspring: list, toolbox, settings: GASettings) -> None:
    """Crossover of consecutive pairs, then bit-flip mutation; a changed individual loses its fitness."""
    def changed(individual, before: list) -> None:
        if list(individual) != before and individual.fitness.valid:
            del individual.fitness.values

    for a, b in zip(offspring[::2], offspring[1::2]):
        if random.random() < settings.crossover_probability:
            before = (list(a), list(b))
            toolbox.mate(a, b)
            changed(a, before[0])
            changed(b, before[1])
    for individual in offspring:
        before = list(individual)
        toolbox.mutate(individual)
        changed(individual, before)


def ga_knn(problem: KnnProblem, settings: GASettings = GASettings(), *, seed: int = 0) -> KChoice:
    """Choose k with a genetic algorithm on validation accuracy (see :class:`GASettings`).

    Each generation: :attr:`GASettings.elites` copies of the best individual found so far (a
    one-member DEAP ``HallOfFame``) pass unchanged; the rest are drawn by roulette wheel from the current
    generation, paired for one-point crossover and mutated bit by bit. Fitness is memoised
    per k, so an evaluation of a k already fitted costs no fit. The chosen k is the best of
    every k evaluated (the smallest on a tie, as the plain choice).

    Examples
    --------
    >>> choice = ga_knn(problem, GASettings(population=5, generations=10), seed=0)   # doctest: +SKIP
    >>> choice.k in K_VALUES and choice.distinct_k <= min(choice.evaluations, 15)    # doctest: +SKIP
    True
    """
    from deap import tools

    chromosome, toolbox = _deap_types(), _toolbox(settings)
    accuracies: dict[int, float] = {}
    counts = {"evaluations": 0}

    def evaluate(individual) -> None:
        k = decode(individual)
        counts["evaluations"] += 1
        if k is not None and k not in accuracies:
            accuracies[k] = problem.valid_accuracy(k)
        individual.fitness.values = (0.0 if k is None else accuracies[k],)

    def record(generation: int, population: list) -> dict:
        values = [ind.fitness.values[0] for ind in population]
        return {"generation": generation, "best": max(values), "mean": float(np.mean(values)),
                "best_k": best_k(accuracies), "evaluations": counts["evaluations"], "distinct_k": len(accuracies),
                "population_k": tuple(decode(ind) for ind in population)}

    started = time.perf_counter()
    with _seeded(seed):
        population = [chromosome(encode(k, settings.bits)) for k in random.sample(K_VALUES, settings.population)]
        for individual in population:
            evaluate(individual)
        elite = getattr(tools, settings.elitism)(1)
        elite.update(population)
        history = [record(0, population)]
        for generation in range(1, settings.generations + 1):
            n_offspring = settings.population - settings.elites
            chosen = toolbox.select(population, n_offspring)
            # roulette picks nothing when every fitness is 0: then every individual is as good
            chosen += random.choices(population, k=n_offspring - len(chosen))
            offspring = [toolbox.clone(individual) for individual in chosen]
            _vary(offspring, toolbox, settings)
            for individual in offspring:
                if not individual.fitness.valid:
                    evaluate(individual)
            population = [toolbox.clone(elite[0]) for _ in range(settings.elites)] + offspring
            elite.update(population)
            history.append(record(generation, population))
    k = best_k(accuracies)
    return KChoice("GA", k, accuracies[k], evaluations=counts["evaluations"], distinct_k=len(accuracies),
                   seconds=time.perf_counter() - started, settings=settings, seed=int(seed),
                   history=pd.DataFrame(history))


def ga_grid(populations=(5, 10, 15), generations=(10, 20, 30), **overrides) -> list[GASettings]:
    """The source's runs: every population × maximum generations (9 by default)."""
    return [GASettings(population=p, generations=g, **overrides) for p in populations for g in generations]


def ga_runs(problem: KnnProblem, settings: list[GASettings], seeds, *, progress: bool = True) -> list[KChoice]:
    """One GA run per setting and seed."""
    from ..progress import progress_bar

    jobs = [(s, int(seed)) for s in settings for seed in seeds]
    runs = [ga_knn(problem, s, seed=seed) for s, seed in progress_bar(jobs, desc="GA runs", enabled=progress)]
    if progress:
        print(f"{len(runs)} GA runs in {sum(r.seconds for r in runs):.1f} s; k chosen: "
              f"{sorted(pd.Series([r.k for r in runs]).value_counts().to_dict().items())} (k: runs)")
    return runs


def agreement(runs: list[KChoice], enumerated: KChoice) -> pd.DataFrame:
    """Where the GA differs from enumerating k: per setting, over its seeds, the share of runs that
    fitted all 15 values of k (then the GA *is* an enumeration, at a higher cost) and the share that
    chose the enumerated k, with the mean cost (fitness evaluations, distinct fits, seconds)."""
    rows = [{"setting": run.label, "seed": run.seed, "covered_every_k": run.distinct_k == len(K_VALUES),
             "found_enumerated_k": run.k == enumerated.k, "fitness_evaluations": run.evaluations,
             "distinct_k_fitted": run.distinct_k, "seconds": run.seconds} for run in runs]
    return (pd.DataFrame(rows).groupby("setting", sort=False)
            .agg(runs=("seed", "size"), covered_every_k=("covered_every_k", "mean"),
                 found_enumerated_k=("found_enumerated_k", "mean"), fitness_evaluations=("fitness_evaluations", "mean"),
                 distinct_k_fitted=("distinct_k_fitted", "mean"), seconds=("seconds", "mean"))
            .reset_index().assign(enumerated_k=enumerated.k, enumeration_fits=enumerated.distinct_k,
                                  enumeration_seconds=enumerated.seconds))
