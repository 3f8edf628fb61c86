"""Table 7 and Table 8 assembly, bootstrap intervals, the findings paragraph, results/README.md."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrestudy import methods
from genrestudy.report import evaluation, findings, plots, reports, table7, table8


PAPER_MD = Path(__file__).resolve().parent.parent / "docs" / "PAPER.md"


def _paper_md_rows(heading: str) -> dict[str, list[float]]:
    """The rows of the first pipe table under ``heading`` in docs/PAPER.md: first cell -> its numbers."""
    text = PAPER_MD.read_text().split(heading, 1)[1]
    rows = {}
    for line in text.splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("|") and not cells[0].startswith("---"):
            rows[cells[0]] = [float(v) for c in cells[1:] for v in re.findall(r"\d+\.\d+|\d+", c)]
    return rows


def _proba(y_pred, n_classes):
    proba = np.full((len(y_pred), n_classes), 0.05)
    proba[np.arange(len(y_pred)), y_pred] = 0.9
    return proba


def test_perfect_predictions_get_an_exact_accuracy_interval_and_no_collapsed_one():
    y = np.repeat(np.arange(3), 6)
    tracks = np.repeat(np.arange(6), 3)  # three segments per track, one label per track
    rows = table7.score_with_ci(_proba(y, 3), y, tracks, n_resamples=50)
    assert [r["level"] for r in rows] == ["segment", "track"]
    assert (rows[0]["n"], rows[1]["n"], rows[0]["n_tracks"], rows[1]["n_tracks"]) == (18, 6, 6, 6)
    for row in rows:
        # 6 of 6 tracks right: Clopper-Pearson's 95 % interval is [0.025 ** (1/6), 1], not [1, 1]
        assert row["accuracy"] == 100.0 and row["accuracy_ci_high"] == 100.0
        assert row["accuracy_ci_low"] == pytest.approx(100 * 0.025 ** (1 / 6))
        for metric in table7.METRICS[1:]:  # a bootstrap of a perfect score collapses: no interval is shown
            assert row[metric] == 100.0 and np.isnan(row[f"{metric}_ci_low"]) and np.isnan(row[f"{metric}_ci_high"])


def test_exact_interval_is_clopper_pearson():
    from scipy.stats import binomtest

    for k, n in ((10, 10), (0, 10), (7, 10), (55, 60)):
        ci = binomtest(k, n).proportion_ci(method="exact")
        assert evaluation.exact_interval(k, n) == pytest.approx((ci.low, ci.high))
    assert evaluation.exact_interval(10, 10)[0] == pytest.approx(0.6915, abs=1e-4)  # the "about 69"
    with pytest.raises(ValueError, match="successes"):
        evaluation.exact_interval(11, 10)


def test_scores_match_the_evaluation_module_and_intervals_bracket_them():
    rng = np.random.default_rng(0)
    tracks = np.repeat(np.arange(40), 5)
    y = tracks % 4
    y_pred = np.where(rng.random(len(y)) < 0.7, y, rng.integers(0, 4, len(y)))
    proba = _proba(y_pred, 4)
    seg, trk = table7.score_with_ci(proba, y, tracks, n_resamples=200, seed=1)
    expected = evaluation.classification_metrics(y, y_pred, labels=np.arange(4))
    for metric in table7.METRICS:
        assert seg[metric] == pytest.approx(100 * expected[metric])
        assert seg[f"{metric}_ci_low"] < seg[metric] < seg[f"{metric}_ci_high"]
    votes = evaluation.track_level_predictions(proba, y, tracks)
    right = int((votes["y_true"] == votes["y_pred"]).sum())
    assert trk["accuracy"] == pytest.approx(100 * right / 40)
    # accuracy's intervals are exact over the 40 test tracks (segment level: its share of 40 tracks)
    assert (trk["accuracy_ci_low"], trk["accuracy_ci_high"]) == pytest.approx(
        tuple(100 * v for v in evaluation.exact_interval(right, 40)))
    assert (seg["accuracy_ci_low"], seg["accuracy_ci_high"]) == pytest.approx(
        tuple(100 * v for v in evaluation.exact_interval(expected["accuracy"] * 40, 40)))


def test_an_interval_that_excludes_its_point_is_not_reported():
    # ten tracks, one per genre: the bootstrap's weighted precision is biased upwards by resamples
    # that drop genres, and its percentile interval [65.8, 86.5] misses the point 63.8
    rng = np.random.default_rng(1)
    tracks = np.repeat(np.arange(10), 10)
    y = tracks % 10
    pred = np.where(rng.random(100) < 0.6, y, rng.integers(0, 10, 100))
    segment = table7.score_with_ci(np.eye(10)[pred] + 0.01, y, tracks, n_resamples=200)[0]
    assert segment["precision_weighted"] == pytest.approx(63.8, abs=0.05)
    assert np.isnan(segment["precision_weighted_ci_low"]) and np.isnan(segment["precision_weighted_ci_high"])
    for metric in table7.METRICS:  # every interval shown contains its point
        low, high = segment[f"{metric}_ci_low"], segment[f"{metric}_ci_high"]
        assert (np.isnan(low) and np.isnan(high)) or low <= segment[metric] <= high
    shown = table7.compact(table7.table07([pd.DataFrame([{"protocol": "track", "key": "hybrid_grid", "method": "m",
                                                           "source": table7.OUR_SOURCE, **segment}])]), "track")
    assert shown.loc[0, "precision"] == "63.8"  # the point alone, no interval


def test_score_with_ci_refuses_misaligned_input():
    with pytest.raises(ValueError, match="probabilities"):
        table7.score_with_ci(np.ones((5, 3)) / 3, np.zeros(4, int), np.arange(4))


def _ours(protocol, accuracy):
    rows = []
    for key, name in PAPER_METHODS.items():
        for level, shift in (("segment", 0.0), ("track", 2.0)):
            row = {"protocol": protocol, "key": key, "method": name, "source": table7.OUR_SOURCE, "level": level, "n": 100}
            for metric in table7.METRICS:
                value = accuracy[key] + shift
                row.update({metric: value, f"{metric}_ci_low": value - 5, f"{metric}_ci_high": value + 5})
            rows.append(row)
    return pd.DataFrame(rows)


PAPER_METHODS = {m.key: m.name for m in methods.registered() if m.paper}
PAPER_ACC = {"hybrid_grid": 90.0, "hybrid_random": 88.0, "end_to_end": 92.0, "retrained_grid": 89.0,
             "retrained_random": 87.0}
TRACK_ACC = {k: v - 20.0 for k, v in PAPER_ACC.items()}


def test_table07_keeps_the_papers_rows_apart_and_ordered():
    table = table7.table07([_ours("paper", PAPER_ACC), _ours("track", TRACK_ACC)])
    assert len(table) == 2 * 2 * 5 + 5
    paper_rows = table[table["source"] == table7.PAPER_SOURCE]
    assert len(paper_rows) == 5 and set(paper_rows["protocol"]) == {"paper"}
    assert paper_rows["level"].eq("segment").all() and paper_rows["n"].isna().all()
    # every restated number is docs/PAPER.md's Table 7, method by method (not the code's constants again)
    documented = _paper_md_rows("### Results (Table 7")
    assert set(paper_rows["method"]) == set(documented) - {"method"}
    for _, row in paper_rows.iterrows():
        metrics = ["accuracy", "precision_weighted", "recall_weighted", "f1_weighted"]
        assert [row[m] for m in metrics] == documented[row["method"]], row["method"]
    # each paper row right after our row of the same method, paper protocol, segment level
    for i in paper_rows.index:
        above = table.loc[i - 1]
        assert (above["method"], above["protocol"], above["level"], above["source"]) == (
            table.loc[i, "method"], "paper", "segment", table7.OUR_SOURCE)
    assert list(dict.fromkeys(table["protocol"])) == ["paper", "track"]
    assert list(table.columns[:6]) == ["protocol", "level", "key", "method", "source", "n"]
    with pytest.raises(ValueError, match="no rows"):
        table7.table07([])


def _run(key, y_pred, n_classes, rows):
    return methods.MethodRun(key=key, name=key.replace("_", " "), rows=rows, proba=_proba(y_pred, n_classes),
                             report={})


def _claims_runs(n_tracks=60, track_protocol_tracks=10, seed=0):
    """Five segments per track; under `paper` every track is in test, under `track` the first few."""
    rng = np.random.default_rng(seed)
    tracks = np.repeat(np.arange(n_tracks), 5)
    y = tracks % 3
    good = np.where(rng.random(len(y)) < 0.9, y, (y + 1) % 3)
    poor = np.where(rng.random(len(y)) < 0.4, y, (y + 1) % 3)
    rows = np.arange(len(y))
    few = rows[tracks < track_protocol_tracks]
    runs = {"paper": {"hybrid_grid": _run("hybrid_grid", good, 3, rows),
                      "hybrid_random": _run("hybrid_random", good, 3, rows),  # identical predictions
                      "end_to_end": _run("end_to_end", poor, 3, rows)},  # a clear gap
            "track": {"hybrid_grid": _run("hybrid_grid", good[few], 3, few),
                      "end_to_end": _run("end_to_end", (y[few] + 1) % 3, 3, few)}}  # all wrong
    return runs, y, tracks


def test_claims_are_paired_over_tracks_corrected_and_refused_below_the_minimum():
    runs, y, tracks = _claims_runs()
    frame = findings.claims(runs, y, tracks).set_index(["protocol", "comparison"])
    same = frame.loc[("paper", "Grid − Random Search (hybrid)")]
    assert (same["difference"], same["p"], same["n_tracks"]) == (0.0, 1.0, 60)
    assert same["ci_low"] < -5 and same["ci_high"] > 5  # conservative, never zero wide
    assert same["decision"].startswith("no difference shown")
    gap = frame.loc[("paper", "Grid-Search hybrid − end-to-end")]
    per_track = (findings.per_track_accuracy(runs["paper"]["hybrid_grid"], y, tracks)
                 - findings.per_track_accuracy(runs["paper"]["end_to_end"], y, tracks))
    assert gap["difference"] == pytest.approx(100 * per_track.mean())
    assert gap["ci_low"] > 0 and gap["p_holm"] < 0.05 and gap["decision"] == "claimed: hybrid_grid higher"
    # track protocol: end-to-end wrong on all 10 tracks, the hybrid nearly right: a 10-track gap of
    # about 90 points, still not tested (fewer than MIN_TEST_TRACKS)
    small = frame.loc[("track", "Grid-Search hybrid − end-to-end")]
    assert small["n_tracks"] == 10 < findings.MIN_TEST_TRACKS and small["difference"] > 80
    assert np.isnan(small["p"]) and small["decision"] == f"not tested: 10 shared test tracks < {findings.MIN_TEST_TRACKS}"
    # one method under two protocols: paired on the 10 tracks both test sets hold, so not tested either
    across = frame.loc[("paper − track", "hybrid grid: paper − track protocol")]
    assert across["n_tracks"] == 10 and across["test"] == "none"
    # Holm over the tested family: adjusted p never below the raw p, and as by hand
    tested = frame[np.isfinite(frame["p"])]
    assert len(tested) == 2 and (tested["p_holm"] >= tested["p"]).all()
    assert findings.holm([0.01, 0.04, 0.03, np.nan]) == pytest.approx([0.03, 0.06, 0.06, np.nan], nan_ok=True)


def test_a_ten_track_perfect_score_is_no_claim():
    # the case: 10 of 10 against 0 of 10 gives [100, 100]-wide percentile intervals; here the
    # interval is exact and the comparison is refused for too few tracks
    a, b = pd.Series(1.0, index=range(10)), pd.Series(0.0, index=range(10))
    result = findings.compare_paired(a, b, test=False)
    assert result["difference"] == 1.0 and result["ci_low"] == pytest.approx(2 * 0.0125 ** 0.1 - 1)
    assert result["ci_high"] == 1.0 and np.isnan(result["p"])
    tested = findings.compare_paired(a.reindex(range(40), fill_value=1.0), b.reindex(range(40), fill_value=0.0))
    assert tested["p"] < 1e-3 and tested["ci_low"] > 0.7


def test_findings_are_a_table_of_claims_and_a_few_sentences():
    runs, y, tracks = _claims_runs()
    frame = findings.claims(runs, y, tracks)
    table = table7.table07([_ours("paper", PAPER_ACC), _ours("track", TRACK_ACC)])
    weights = {"MSD musicnn + LightGBM": "published music-trained weights",
               "ResNet-50 end-to-end": "random init (no pretrained weights)"}
    text = findings.findings(table, frame, synthetic=True, weights=weights)
    prose, _, table_md = text.partition("\n\n")
    assert prose.startswith("On the SYNTHETIC demo data")
    assert f"{len(frame)} comparisons of segment accuracy were declared" in prose and "2 had at least 30" in prose
    assert "1 is claimed: Grid-Search hybrid − end-to-end under `paper` (+" in prose
    assert "published music-trained weights: MSD musicnn + LightGBM" in prose
    assert "reflects their weights" in prose and "the differences below" not in prose
    assert prose.count(".") < 12  # a few sentences, not one per comparison
    lines = table_md.splitlines()
    assert lines[0].startswith("| comparison | protocol | test tracks | difference (points) [interval]")
    assert len(lines) == 2 + len(frame)
    assert sum("not tested: 10 shared test tracks" in line for line in lines) == len(frame) - 2
    none = findings.findings(table, frame[~frame["decision"].str.startswith("claimed")], synthetic=False)
    assert "No difference is claimed." in none and "SYNTHETIC" not in none and "weights" not in none.split("\n")[0]


def test_methods_say_which_weights_they_start_from():
    from types import SimpleNamespace

    registry, demo = methods.REGISTRY, SimpleNamespace(weights=None)
    assert methods.starting_weights(registry["end_to_end"], demo) == "random init (no pretrained weights)"
    assert methods.starting_weights(registry["hybrid_grid"], SimpleNamespace(weights="imagenet")) == "ImageNet weights"
    assert methods.starting_weights(registry["hybrid_grid"], SimpleNamespace(weights="/a/b/w.h5")) == "weights from w.h5"
    musicnn = [cls for key, cls in registry.items() if "musicnn" in key or "msd" in key]
    assert musicnn and all(methods.starting_weights(cls, demo) == "published music-trained weights" for cls in musicnn)
    assert methods.starting_weights(registry["spectral_knn"], demo) == "no pretrained network"


def test_scope_says_what_the_run_can_show_from_its_facts():
    table = table7.table07([_ours("paper", PAPER_ACC), _ours("track", TRACK_ACC)])
    table.loc[(table["protocol"] == "track") & (table["level"] == "track"), "n"] = 10
    text = findings.scope(table, synthetic=True, weights={"ResNet-50 end-to-end": "random init (no pretrained weights)"})
    assert "SYNTHETIC demo clips" in text and "random init (no pretrained weights): ResNet-50 end-to-end" in text
    assert "- Protocol `track`: 10 test tracks (fewer than the minimum of 30: no comparison on them is claimed)" in text
    assert "at least 31 points wide" in text  # 1 - 0.025 ** (1/10) = 30.8 %
    assert "- Protocol `paper`: 100 test tracks (at least the minimum of 30 for a comparison)" in text


def _step(seconds, peak, before, **extra):
    return {"seconds": seconds + 1, "peak_rss_mb": peak, "rss_before_mb": before, "step_rss_mb": peak - before,
            "result": {"seconds": seconds, **extra}}


def _latency(median, batch_size=1):
    return {"batch_size": batch_size, "repeats": 30, "median_s": median, "q1_s": median * 0.9,
            "q3_s": median * 1.2, "iqr_s": median * 0.3}


def _efficiency():
    latencies = {("end_to_end", "batch1"): _latency(0.02), ("hybrid", "batch1"): _latency(0.08),
                 ("end_to_end", "batched"): _latency(0.01, 10), ("hybrid", "batched"): _latency(0.04, 10),
                 ("end_to_end", "file"): _latency(0.2), ("hybrid", "file"): _latency(0.5)}
    how = {"end_to_end_fit": "e2e how", "lightgbm_fit": "lgb how", "extraction": "ext how", "latency": "lat how"}
    return dict(end_to_end_fit=_step(60.0, 1500.0, 700.0, gpu_peak_mb=None),
                lightgbm_fit=_step(2.0, 900.0, 700.0), extraction=_step(30.0, 1300.0, 700.0),
                latencies=latencies, settings=how, hardware="test CPU")


def test_efficiency_table_puts_measurements_and_the_papers_side_by_side():
    table = table8.efficiency_table(**_efficiency()).set_index("measure")
    train = table.loc["training time (fit alone)"]
    assert (train["end_to_end"], train["hybrid"], train["ratio"]) == (60.0, 2.0, 30.0)
    assert train["paper_end_to_end"] == 65.8529 and train["paper_ratio"] == pytest.approx(65.8529 / 0.9373)
    assert "e2e how" in train["how"] and "lgb how" in train["how"]
    ram = table.loc["peak RAM of the step's process (RSS)"]
    assert (ram["end_to_end"], ram["hybrid"], ram["paper_hybrid"]) == (1500.0, 900.0, 45.49)
    assert table.loc["peak RAM above the imports", "end_to_end"] == 800.0
    assert table.loc["feature extraction peak RAM (RSS)", "paper_hybrid"] == 1145.52
    batched = table.loc["prediction time per sample, batched (median)"]
    assert (batched["end_to_end"], batched["paper_end_to_end"]) == (0.01, 0.004406)
    assert np.isnan(table.loc["prediction time per sample, batch of 1 (median)", "paper_end_to_end"])
    assert np.isnan(table.loc["prediction time per sample, batched (interquartile range)", "ratio"])
    assert table.loc["audio file to genre, per file (median)", "hybrid"] == 0.5
    assert "peak GPU memory of the fit" not in table.index  # no GPU measured: no row
    assert (table["hardware"] == "test CPU").all()
    # the paper's columns are docs/PAPER.md's Table 8 (not the code's constants restated)
    documented = _paper_md_rows("### Efficiency (Table 8")
    assert [train["paper_end_to_end"], train["paper_hybrid"]] == documented["training time"][:2]
    assert [ram["paper_end_to_end"], ram["paper_hybrid"]] == documented["RAM"][:2]
    assert table.loc["feature extraction peak RAM (RSS)", "paper_hybrid"] == documented["RAM"][2]
    assert [batched["paper_end_to_end"], batched["paper_hybrid"]] == documented["prediction time per sample"]


def test_efficiency_table_shows_gpu_memory_when_measured_and_needs_every_latency():
    given = _efficiency()
    given["end_to_end_fit"]["result"]["gpu_peak_mb"] = 3000.0
    table = table8.efficiency_table(**given).set_index("measure")
    assert table.loc["peak GPU memory of the fit", "end_to_end"] == 3000.0
    del given["latencies"][("hybrid", "file")]
    with pytest.raises(ValueError, match="latencies must have the keys"):
        table8.efficiency_table(**given)


def test_fig12_has_three_log_panels_drawing_the_tables_numbers():
    given = _efficiency()
    given["settings"]["end_to_end_fit"] = "REDUCED: 2 epochs"
    table = table8.efficiency_table(**given)
    fig = plots.plot_efficiency(table)
    axes = fig.get_axes()
    assert len(axes) == 3 and all(ax.get_yscale() == "log" for ax in axes)
    rows = table.set_index("measure")
    for ax, measure in zip(axes, ["training time (fit alone)", "peak RAM of the step's process (RSS)",
                                  "prediction time per sample, batched (median)"]):
        heights = [bar.get_height() for bar in ax.patches]
        row = rows.loc[measure]
        assert heights == pytest.approx([row["end_to_end"], row["hybrid"], row["paper_end_to_end"],
                                         row["paper_hybrid"]]), measure
    # the reduced end-to-end fit is hatched and labelled on the panels it measured, the others not
    assert axes[0].patches[0].get_hatch() == "//" and axes[0].patches[1].get_hatch() is None
    # its latency is the reduced network's too (Table 8 carries the fit's flag to the latency rows)
    assert [t.get_text() for t in axes[0].texts] == ["REDUCED"] == [t.get_text() for t in axes[2].texts]
    assert not axes[1].patches[1].get_hatch()
    with pytest.raises(ValueError, match="no row"):
        plots.plot_efficiency(pd.DataFrame({"measure": ["other"]}))


def test_results_index_gathers_every_table(study_dirs):
    with pytest.raises(FileNotFoundError, match="no tables"):
        reports.write_results_index()
    reports.save_table("table01_dataset", pd.DataFrame({"genre": ["blues"], "tracks": [3]}), synthetic=True)
    reports.save_table("table08_efficiency", pd.DataFrame({"measure": ["x"], "value": [1.5]}))
    path = reports.write_results_index(findings_text="Accuracy fell by 12 points.")
    text = path.read_text()
    assert path == study_dirs["results"] / "README.md"
    assert "can and cannot show" not in text  # no scope given, none invented
    scope = findings.scope(table7.table07([_ours("track", TRACK_ACC)]), synthetic=True,
                           weights={"ResNet-50 end-to-end": "random init (no pretrained weights)"})
    lines = reports.write_results_index(findings_text="x", scope_text=scope).read_text().splitlines()
    # what the demo can and cannot show comes first, right under the heading
    assert lines[0] == "# results/" and lines[2].startswith("**What this run can and cannot show**")
    assert any("SYNTHETIC demo clips" in line for line in lines[:6])
    assert any(line.startswith("- Weights: random init") for line in lines[:8])
    path = reports.write_results_index(findings_text="Accuracy fell by 12 points.")
    text = path.read_text()
    assert "## Findings (Table 7)\n\nAccuracy fell by 12 points." in text
    assert "- [table01_dataset](table01_dataset.md)" in text and "[CSV](table08_efficiency.csv)" in text
    assert "| blues | 3 |" in text and "SYNTHETIC" in text and "\n# table01_dataset" not in text
    reports.write_results_index()
    assert "README" not in "".join(line for line in path.read_text().splitlines() if line.startswith("- ["))




def test_bootstrap_metrics_agree_with_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(3)
    for _ in range(30):
        t = rng.integers(0, 5, 40)
        p = np.where(rng.random(40) < 0.5, t, rng.integers(0, 6, 40))  # a class predicted but never true
        for metric in table7.METRICS[1:]:
            kind, average = metric.split("_")
            # macro F1 over the genres the truth holds (a genre only ever predicted is not a class)
            labels = np.unique(t) if average == "macro" else None
            expected = precision_recall_fscore_support(t, p, labels=labels, average=average, zero_division=0)[
                {"precision": 0, "recall": 1, "f1": 2}[kind]]
            assert evaluation._metric_statistic(metric)(t, p) == pytest.approx(expected)


def test_compact_table7_has_the_papers_layout_and_the_figures_draw(study_dirs):
    table = table7.table07([_ours("paper", PAPER_ACC), _ours("track", TRACK_ACC)])
    compact = table7.compact(table, "paper")
    assert list(compact.columns) == ["method", "source", "accuracy", "precision", "recall", "F1", "macro F1",
                                     "track accuracy"]
    first = compact.iloc[0]
    assert (first["source"], first["accuracy"], first["track accuracy"]) == (table7.OUR_SOURCE, "90.0 [85.0, 95.0]",
                                                                             "92.0 [87.0, 97.0]")
    assert compact.iloc[1]["source"] == table7.PAPER_SOURCE and compact.iloc[1]["accuracy"] == "81.2"
    assert (table7.compact(table, "track")["source"] == table7.OUR_SOURCE).all()
    # saved from synthetic data, the paper's own rows are stamped as restated, ours as synthetic
    saved = pd.read_csv(reports.save_table("table07_paper", compact, synthetic=True))
    restated = reports.is_restated(saved["source"])
    assert restated.sum() == len(PAPER_METHODS) and (saved.loc[restated, "method"] == list(PAPER_METHODS.values())).all()
    assert (saved.loc[restated, "data"] == reports.REPORTED_NOTE).all()
    assert (saved.loc[~restated, "data"] == reports.SYNTHETIC_NOTE).all() and (~restated).sum() == len(PAPER_METHODS)
    with pytest.raises(ValueError, match="no rows for protocol 'filtered'"):
        table7.compact(table, "filtered")
    forest = plots.plot_forest(table)
    assert len(forest.axes) == 2 and len(forest.axes[0].collections) >= 1  # the paper's points on 'paper'
    effect = plots.plot_protocol_effect(table)
    assert [t.get_text() for t in effect.axes[0].get_xticklabels()] == ["paper", "track"]
