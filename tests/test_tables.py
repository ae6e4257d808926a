import math

import pandas as pd
import pytest

from unlearnbench.tables import aggregate, display_frame, plot_gaps, render_latex, render_markdown


def _records():
    base = {"dataset": "digits", "model": "cnn", "scenario": "class0"}
    vals = {
        "retrain": [{"acc_forget": 0.0, "acc_retain": 99.0, "time_s": 40.0}, {"acc_forget": 2.0, "acc_retain": 97.0, "time_s": 60.0}],
        "ft": [{"acc_forget": 10.0, "acc_retain": 95.0, "time_s": 5.0}, {"acc_forget": 20.0, "acc_retain": 93.0, "time_s": 5.0}],
    }
    recs = []
    for meth, runs in vals.items():
        for seed, m in enumerate(runs):
            recs.append({**base, "method": meth, "method_name": "retrain" if meth == "retrain" else "finetune",
                         "access": "retain", "seed": seed, "metrics": m})
    return recs


def test_aggregate_means_std_gaps():
    t = aggregate(_records(), ["acc_forget", "acc_retain"]).set_index(["method", "metric"])
    assert t.loc[("ft", "acc_forget"), "mean"] == 15.0
    assert t.loc[("ft", "acc_forget"), "std"] == pytest.approx(math.sqrt(50))  # ddof=1
    assert t.loc[("ft", "acc_forget"), "n"] == 2
    assert t.loc[("ft", "acc_forget"), "retrain_mean"] == 1.0
    assert t.loc[("ft", "acc_forget"), "gap"] == 14.0
    assert t.loc[("ft", "acc_retain"), "gap"] == 4.0
    assert t.loc[("ft", "avg_gap"), "mean"] == 9.0
    assert t.loc[("retrain", "avg_gap"), "mean"] == 0.0
    assert t.loc[("ft", "speedup"), "mean"] == 10.0  # 50 s / 5 s


def test_gap_is_per_dataset_model_scenario():
    recs = _records() + [{**r, "model": "vit", "metrics": {k: v + 50 for k, v in r["metrics"].items()}} for r in _records()]
    t = aggregate(recs, ["acc_forget"])
    ft_vit = t[(t.model == "vit") & (t.method == "ft") & (t.metric == "acc_forget")].iloc[0]
    assert ft_vit["retrain_mean"] == 51.0 and ft_vit["gap"] == 14.0


def test_render_markdown_latex_and_plot(tmp_path):
    tidy = aggregate(_records(), ["acc_forget", "acc_retain"])
    wide = display_frame(tidy, ["acc_forget", "acc_retain"], ua_convention="error")
    assert list(wide["Method"]) == ["retrain", "ft"]
    ft = wide.set_index("Method").loc["ft"]
    assert ft["UA (100−acc)"] == "85.00 ± 7.07 (14.00)"
    assert ft["RA"] == "94.00 ± 1.41 (4.00)"
    assert ft["Avg. gap"] == "9.00"
    md = render_markdown(wide, "T", "caption")
    assert "| retrain | retain |" in md.replace("| class0 ", "") and "caption" in md
    tex = render_latex(wide, "a_b")
    assert r"\begin{tabular}" in tex and r"a\_b" in tex and r"$\pm$" in tex
    out = tmp_path / "fig.png"
    plot_gaps(tidy, ["acc_forget", "acc_retain"], "T", str(out))
    assert out.read_bytes()[:4] == b"\x89PNG"
