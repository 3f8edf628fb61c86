"""Table 7 and Table 8 assembly, bootstrap intervals, the findings paragraph, results/README.md."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from genrestudy import evaluation, findings, methods, plots, reports, table7, table8


def _proba(y_pred, n_classes):
    proba = np.full((len(y_pred), n_classes), 0.05)
    proba[np.arange(len(y_pred)), y_pred] = 0.9
    return proba


def test_perfect_predictions_score_100_with_a_degenerate_interval():
    y = np.repeat(np.arange(3), 6)
    tracks = np.repeat(np.arange(6), 3)  # three segments per track, one label per track
    rows = table7.score_with_ci(_proba(y, 3), y, tracks, n_resamples=50)
    assert [r["level"] for r in rows] == ["segment", "track"]
    assert rows[0]["n"] == 18 and rows[1]["n"] == 6
    for row in rows:
        for metric in table7.METRICS:
            assert row[metric] == row[f"{metric}_ci_low"] == row[f"{metric}_ci_high"] == 100.0


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
        assert seg[f"{metric}_ci_low"] <= seg[metric] <= seg[f"{metric}_ci_high"]
        assert seg[f"{metric}_ci_high"] - seg[f"{metric}_ci_low"] > 1.0  # a real interval, not a point
    votes = evaluation.track_level_predictions(proba, y, tracks)
    assert trk["accuracy"] == pytest.approx(100 * (votes["y_true"] == votes["y_pred"]).mean())


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
    assert paper_rows.set_index("method").loc["ResNet-50 end-to-end", "accuracy"] == 82.50
    assert paper_rows.set_index("method").loc["ResNet-50 + LightGBM (Grid Search)", "f1_weighted"] == 81.13
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


def test_findings_claim_a_difference_only_when_its_paired_interval_excludes_zero():
    rng = np.random.default_rng(0)
    tracks = np.repeat(np.arange(60), 5)
    y = tracks % 3
    good = np.where(rng.random(len(y)) < 0.9, y, (y + 1) % 3)
    poor = np.where(rng.random(len(y)) < 0.4, y, (y + 1) % 3)
    rows = np.arange(len(y))
    runs = {"paper": {"hybrid_grid": _run("hybrid_grid", good, 3, rows),
                      "hybrid_random": _run("hybrid_random", good, 3, rows),  # identical predictions
                      "end_to_end": _run("end_to_end", poor, 3, rows)}}  # a clear gap
    diffs = findings.paired_differences(runs, y, tracks, n_resamples=300).set_index("comparison")
    same = diffs.loc["Grid − Random Search (hybrid)"]
    assert (same["difference"], same["ci_low"], same["ci_high"], same["resolved"]) == (0.0, 0.0, 0.0, False)
    gap = diffs.loc["Grid-Search hybrid − end-to-end"]
    assert gap["resolved"] and gap["ci_low"] > 30 and gap["paired"]
    table = table7.table07([_ours("paper", PAPER_ACC), _ours("track", TRACK_ACC)])
    across = findings.protocol_differences(table)
    assert len(across) == 10 and not across["paired"].any()
    assert across.set_index(["a", "level"]).loc[("end_to_end", "segment"), "difference"] == pytest.approx(20.0)
    text = findings.findings(table, pd.concat([diffs.reset_index(), across]), synthetic=True)
    assert text.startswith("On the SYNTHETIC demo data")
    assert "Grid − Random Search (hybrid): +0.0 points [+0.0, +0.0], not resolved" in text
    assert "Grid-Search hybrid − end-to-end: +" in text and ", a difference (paired bootstrap" in text
    assert "independent test sets, intervals combined" in text and "track-grouped" in text
    assert "leakage-free" not in text


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


def test_efficiency_table_shows_gpu_memory_when_measured_and_needs_every_latency():
    given = _efficiency()
    given["end_to_end_fit"]["result"]["gpu_peak_mb"] = 3000.0
    table = table8.efficiency_table(**given).set_index("measure")
    assert table.loc["peak GPU memory of the fit", "end_to_end"] == 3000.0
    del given["latencies"][("hybrid", "file")]
    with pytest.raises(ValueError, match="latencies must have the keys"):
        table8.efficiency_table(**given)


def test_fig12_has_three_log_panels():
    fig = plots.plot_efficiency(table8.efficiency_table(**_efficiency()))
    axes = fig.get_axes()
    assert len(axes) == 3 and all(ax.get_yscale() == "log" for ax in axes)
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


def test_compact_table7_has_the_papers_layout_and_the_figures_draw():
    table = table7.table07([_ours("paper", PAPER_ACC), _ours("track", TRACK_ACC)])
    compact = table7.compact(table, "paper")
    assert list(compact.columns) == ["method", "source", "accuracy", "precision", "recall", "F1", "macro F1",
                                     "track accuracy"]
    first = compact.iloc[0]
    assert (first["source"], first["accuracy"], first["track accuracy"]) == ("ours", "90.0 [85.0, 95.0]",
                                                                             "92.0 [87.0, 97.0]")
    assert compact.iloc[1]["source"] == "paper" and compact.iloc[1]["accuracy"] == "81.2"
    assert (table7.compact(table, "track")["source"] == "ours").all()
    with pytest.raises(ValueError, match="no rows for protocol 'filtered'"):
        table7.compact(table, "filtered")
    forest = plots.plot_forest(table)
    assert len(forest.axes) == 2 and len(forest.axes[0].collections) >= 1  # the paper's points on 'paper'
    effect = plots.plot_protocol_effect(table)
    assert [t.get_text() for t in effect.axes[0].get_xticklabels()] == ["paper", "track"]
