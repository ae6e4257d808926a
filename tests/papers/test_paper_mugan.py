"""Integration: the MuGAN thesis (paper 002) through the real workflow. The default study (every
table and figure target) dry-runs; its DAG shows that zMuGAN's generators are inverted from the
original model alone and that MuGAN's GANs read training-time data only; a tiny study builds end to
end (per-class GANs, inversion ensemble, synthetic sets and their grids, Amnesiac's replayed update
log, tables with artefact time, the per-class heatmap, sample grid and sweep figures); a corrupt
generator file and a replay that differs from the original each fail with one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import dry_run_jobs, run_snakemake
from helpers import stage_job

pytestmark = pytest.mark.integration

TABLES = [f"mugan_table{i}" for i in range(3, 15)] + ["mugan_perclass"]
FIGURES = ["mugan_fig3", "mugan_fig8", "mugan_fig9", "mugan_fig10", "mugan_fig_size", "mugan_fig_zsize", "mugan_fig_lr",
           "mugan_fig_cost"]

# 200 filtered samples per class, lr 5e-3, impair batch 16: measured on this tiny setup, D_f 0 %
# with D_r 82 % (class 3) / 68 % (class 5); 40 per class at lr 3e-3 left D_f at 76 % (class 3)
MUGAN = {"method": "mugan", "gan_z_dim": 16, "gan_g_width": 8, "gan_d_width": 8, "gan_epochs": 15, "gan_batch_size": 16,
         "gan_lr": 2.0e-3, "samples_per_class": 200, "max_draw_factor": 500.0, "lr": 5.0e-3, "forget_batch_size": 16}
ZMUGAN = {"method": "zmugan", "inv_members": 2, "inv_steps": 200, "inv_batch_size": 32, "inv_dec_layers": 1,
          "samples_per_class": 20, "max_draw_factor": 100.0, "lr": 1.0e-3, "bn_train": False}


@pytest.fixture(scope="module")
def default_dry_run(tmp_path_factory):
    """`snakemake -n` of the thesis' paper page with the default (digits) study."""
    wd = tmp_path_factory.mktemp("mugan_dry")
    proc = run_snakemake(wd, {"device": "cpu"}, ["results/papers/mugan.md"], "-n")
    return proc.stdout


def test_every_table_and_figure_target_is_planned(default_dry_run):
    out = default_dry_run
    for t in TABLES + ["mugan_table1", "mugan_table2"]:  # Tables 1-2: rule report_paper_table (no run)
        assert f"results/tables/{t}.csv" in out, t
    for f in FIGURES:
        assert f"results/figures/{f}.png" in out, f
    jobs = dry_run_jobs(out)
    rules = {j["rule"] for j in jobs}
    assert {"train_gan", "train_kegnet", "make_synthetic", "record_update_log"} <= rules
    # the tables run with the locked tuned values (workflow/papers/mugan/study.lock.yaml), so the paper
    # page plans no tuning trial
    assert "tune" not in rules
    # artefacts are shared: one GAN per (dataset, seed, class), whatever the model; the size sweeps
    # add synthetic sets but no GAN or inversion member
    gans = {(j["wildcards"]["seed"], j["wildcards"]["cls"]) for j in jobs if j["rule"] == "train_gan"}
    assert len(gans) == sum(1 for j in jobs if j["rule"] == "train_gan") == 30  # seeds 0-2 x 10 classes
    members = [j for j in jobs if j["rule"] == "train_kegnet"]
    # 2 models x 3 seeds x 5 members x 2 inversion settings: the tuned rows' and the paper-exact rows'
    # (KegNet's code: classifier in train mode, standardised output)
    assert len(members) == 2 * 3 * 5 * 2 and len({j["wildcards"]["key"] for j in members}) == 2
    synth = [j for j in jobs if j["rule"] == "make_synthetic"]
    assert len({j["wildcards"]["key"] for j in synth if j["wildcards"]["kind"] == "gan"}) == 4  # the 4 sizes


def test_zero_shot_rules_read_no_data(default_dry_run):
    jobs = dry_run_jobs(default_dry_run)
    data_like = re.compile(r"(data\.npz|split\.json|/access/|/forget/)")
    kegnet = [j for j in jobs if j["rule"] == "train_kegnet"]
    assert kegnet and all(j["input"] == [f"results/models/{j['wildcards']['dataset']}/{j['wildcards']['model']}/"
                                         f"{j['wildcards']['training']}/s{j['wildcards']['seed']}/original.safetensors"]
                          for j in kegnet)
    inv = [j for j in jobs if j["rule"] == "make_synthetic" and j["wildcards"]["kind"] == "inversion"]
    assert inv and not any(data_like.search(p) for j in inv for p in j["input"])
    assert all(sum("/kegnet_" in p for p in j["input"]) == 5 for j in inv)
    # the GANs are trained by the data owner on the training data (archive + split), never on a view
    gan = [j for j in jobs if j["rule"] == "train_gan"]
    assert all(sorted(p.rsplit("/", 1)[-1] for p in j["input"]) == ["data.npz", "split.json"] for j in gan)
    # at deletion time neither method reads a real sample: no dataset, split, index file or data
    # view among the unlearn job's inputs (the request card names the classes, without indices)
    for name in ("mugan_vgg_mugan", "mugan_vgg_zmugan", "mugan_allcnn_zmugan"):
        runs = [j for j in jobs if j["rule"] == "unlearn" and j["wildcards"].get("method") == name]
        assert runs, name
        for j in runs:
            real = [p for p in j["input"] if "/access/" in p or p.endswith(("data.npz", "split.json"))
                    or re.search(r"/forget/[^/]+(?<!\.card)\.json$", p)]
            assert not real, (name, real)
            assert any("synthetic_" in p for p in j["input"]) and any(p.endswith(".card.json") for p in j["input"])


def _tiny(tiny_config, mugan_lr=5.0e-3):
    cfg = dict(tiny_config)
    cfg["methods"] = {"tiny_mugan": {**MUGAN, "lr": mugan_lr}, "tiny_zmugan": ZMUGAN,
                      "tiny_amnesiac": {"method": "amnesiac", "repair_steps": 20}}
    cfg["studies"] = {"mugan_tiny": {
        "title": "tiny MuGAN table", "dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny",
        "scenarios": ["mugan_c3", "mugan_c5"], "methods": ["original", "retrain", "tiny_mugan", "tiny_zmugan",
                                                           "tiny_amnesiac"],
        "seeds": [0], "noise_floor": False,
        "metrics": ["acc_test_forget", "acc_test_retain_classmean", "mia_entropy_lr"]}}
    cfg["figures"] = {
        "mugan_tiny_heat": {"kind": "class_heatmap", "study": "mugan_tiny",
                            "select": {"methods": ["retrain", "tiny_mugan", "tiny_zmugan"]}},
        "mugan_tiny_grid": {"kind": "synthetic_grid", "study": "mugan_tiny",
                            "select": {"scenarios": ["mugan_c3"], "methods": ["tiny_mugan", "tiny_zmugan"]}},
        "mugan_tiny_sweep": {"kind": "sweep_lines", "studies": ["mugan_tiny"],
                             "options": {"x_label": "samples per class", "log_x": False,
                                         "values": {"tiny_zmugan": ZMUGAN["samples_per_class"],
                                                    "tiny_mugan": MUGAN["samples_per_class"]}}}}
    cfg["papers"] = {"mugan": {"studies": ["mugan_tiny"],
                               "figures": ["mugan_tiny_heat", "mugan_tiny_grid", "mugan_tiny_sweep"]}}
    return cfg


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    from conftest import TINY_CONFIG
    import copy

    wd = tmp_path_factory.mktemp("mugan_tiny")
    run_snakemake(wd, _tiny(copy.deepcopy(TINY_CONFIG)), ["results/papers/mugan.md"])
    return wd


def test_tiny_study_builds_with_artefact_time_and_access(tiny_build):
    wd = tiny_build
    df = pd.read_csv(wd / "results/tables/mugan_tiny.csv")
    cell = df.set_index(["scenario", "method", "metric"])["mean"]
    access = df.drop_duplicates("method").set_index("method")["access"]
    assert access["tiny_mugan"] == "generator (no real data)" and access["tiny_zmugan"] == "none (zero-shot)"
    assert access["tiny_amnesiac"] == "retain"
    for sc in ("mugan_c3", "mugan_c5"):
        assert cell[(sc, "original", "acc_test_forget")] > 80
        assert cell[(sc, "retrain", "acc_test_forget")] == 0
        for m in ("tiny_mugan", "tiny_zmugan", "tiny_amnesiac"):
            for k in ("acc_test_forget", "acc_test_retain_classmean"):
                assert np.isfinite(cell[(sc, m, k)]), (sc, m, k)
            # the MIA is computed (its attack's own balanced accuracy is recorded); an attack at
            # chance level is shown as n/a (NaN mean) by the tables, as for every paper
            mia = df[(df.scenario == sc) & (df.method == m) & (df.metric == "mia_entropy_lr")].iloc[0]
            assert np.isfinite(mia["attack_bacc"]) and (np.isfinite(mia["mean"]) or mia["at_chance_seeds"] >= 1)
        # MuGAN forgets the class from generated samples alone and keeps most of the rest
        assert cell[(sc, "tiny_mugan", "acc_test_forget")] < cell[(sc, "original", "acc_test_forget")] - 30
        assert cell[(sc, "tiny_mugan", "acc_test_retain_classmean")] > 60
    cost = pd.read_csv(wd / "results/tables/mugan_tiny.cost.csv").set_index(["scenario", "method", "metric"])["mean"]
    gan_times = [json.loads(p.read_text())["seconds"] for p in (wd / "results/artefacts").rglob("_gans/s0/*/class*.time.json")]
    assert len(gan_times) == 10
    for m in ("tiny_mugan", "tiny_zmugan", "tiny_amnesiac"):
        assert cost[("mugan_c3", m, "time_artefacts_s")] > 0
        assert cost[("mugan_c3", m, "time_s")] > cost[("mugan_c3", m, "time_step_s")]
    assert cost[("mugan_c3", "tiny_mugan", "time_artefacts_s")] >= sum(gan_times)  # the GANs' training is counted
    md = (wd / "results/tables/mugan_tiny.md").read_text()
    assert "tiny MuGAN table" in md and "n = 1" in md


def test_tiny_synthetic_sets_are_files_with_grids(tiny_build):
    wd = tiny_build
    art = wd / "results/artefacts/tiny_digits/tiny_cnn/tiny/s0"
    gan_sets = sorted(art.glob("synthetic_gan_*.npz"))
    inv_sets = sorted(art.glob("synthetic_inversion_*.npz"))
    assert len(gan_sets) == 1 and len(inv_sets) == 1  # shared by both scenarios
    for path, n in ((gan_sets[0], MUGAN["samples_per_class"]), (inv_sets[0], ZMUGAN["samples_per_class"])):
        z = np.load(path, allow_pickle=False)
        assert np.bincount(z["y"], minlength=10).tolist() == [n] * 10
        assert z["x"].shape[1:] == (1, 8, 8) and 0 <= z["x"].min() and z["x"].max() <= 1
        info = json.loads(path.with_suffix(".json").read_text())
        assert all(0 < r["accept_rate"] <= 1 for r in info["per_class"])
        grid = wd / "results/figures/synthetic/tiny_digits/tiny_cnn/tiny/s0" / (path.stem.replace("synthetic_", "") + ".png")
        assert grid.read_bytes()[:4] == b"\x89PNG"
    members = sorted(art.glob("kegnet_*/member*.safetensors"))
    assert [p.name for p in members] == ["member0.safetensors", "member1.safetensors"]
    log_info = json.loads(next(art.glob("update_log_*/classes3.json")).read_text())
    assert log_info["replay_identical"] and 0 < log_info["n_recorded"] <= log_info["n_steps"]
    assert (next(art.glob("update_log_*/classes5.json")))  # one log per forget request's classes


def test_tiny_figures_and_paper_page(tiny_build):
    wd = tiny_build
    heat = pd.read_csv(wd / "results/figures/mugan_tiny_heat.csv")
    assert set(heat["forget_class"]) == {3, 5} and set(heat["method"]) == {"retrain", "tiny_mugan", "tiny_zmugan"}
    r = heat[heat.method == "retrain"].set_index(["forget_class", "class"])["accuracy"]
    assert r[(3, 3)] == 0 and r[(5, 5)] == 0 and r[(3, 5)] > 50
    grid = pd.read_csv(wd / "results/figures/mugan_tiny_grid.csv")
    assert set(grid["method"]) == {"tiny_mugan", "tiny_zmugan"} and (grid["samples"] > 0).all()
    lines = pd.read_csv(wd / "results/figures/mugan_tiny_sweep.csv")
    assert sorted(set(lines["x"])) == [ZMUGAN["samples_per_class"], MUGAN["samples_per_class"]]
    page = (wd / "results/papers/mugan.md").read_text()
    assert "tiny MuGAN table" in page and "../figures/mugan_tiny_heat.png" in page
    # Tables 1-2 (declared access, parameter counts) come first, with their CSV
    assert page.index("### MuGAN Table 1") < page.index("### MuGAN Table 2") < page.index("tiny MuGAN table")
    assert "`results/tables/mugan_table2.csv` (tidy)" in page and "mugan_table2.tex" not in page


def test_tiny_changes_reuse_artefacts_and_bad_inputs_fail_in_one_line(tiny_build, tiny_config):
    wd = tiny_build
    # another unlearning lr reruns unlearning only: GANs, synthetic sets and the log are reused
    dry = run_snakemake(wd, _tiny(tiny_config, mugan_lr=1.0e-3), ["results/tables/mugan_tiny.csv"], "-n")
    assert "rule unlearn:" in dry.stdout
    for rule in ("train_gan", "train_kegnet", "make_synthetic", "record_update_log", "train_original"):
        assert f"rule {rule}:" not in dry.stdout, rule
    # a corrupt GAN file: make_synthetic fails with one line naming the file
    art = wd / "results/artefacts/tiny_digits/_gans/s0"
    gan = next(art.glob("*/class4.safetensors"))
    gan.write_bytes(b"\x00" * 64)
    proc = run_snakemake(wd, _tiny(tiny_config), ["results/tables/mugan_tiny.csv"], "--forcerun", "make_synthetic",
                         check=False)
    assert proc.returncode != 0
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.startswith("error in rule make_synthetic:")]
    assert lines and "class4.safetensors" in lines[0], (proc.stdout + proc.stderr)[-3000:]


def test_update_log_replay_must_match_the_original(tiny_build, tmp_path):
    from unlearnbench.errors import UserError
    from unlearnbench.methods.amnesiac.update_log import run_record_update_log

    wd = tiny_build
    from conftest import TINY_CONFIG

    recipe = dict(TINY_CONFIG["training"]["tiny"])
    args = dict(data=str(wd / "results/data/tiny_digits/data.npz"), split=str(wd / "results/data/tiny_digits/split.json"),
                original=str(wd / "results/models/tiny_digits/tiny_cnn/tiny/s0/original.safetensors"), classes=[3],
                settings={"log_buffers": False}, model_spec=TINY_CONFIG["models"]["tiny_cnn"])
    job = stage_job(0, log=tmp_path / "log.safetensors", info=tmp_path / "log.json", time=tmp_path / "log.time.json")
    with pytest.raises(UserError) as e:  # another batch size = another training run than the original's
        run_record_update_log(job, recipe={**recipe, "batch_size": 32}, **args)
    assert "differs from" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "log.safetensors").exists()


def test_a_collapsed_inversion_member_hands_its_share_to_the_others():
    """One ensemble member that cannot produce a class (as member 4 of a VGG's ensemble did for
    class 1 on digits) must not sink the synthetic set; the class fails only if every member does."""
    import torch
    from torch import nn

    from unlearnbench.errors import UserError
    from unlearnbench.parts.synthetic import make_synthetic

    class Brightness(nn.Module):  # predicts the class from the mean pixel (class c <-> c / 9)
        def forward(self, x):
            return -(x.mean((1, 2, 3))[:, None] * 9 - torch.arange(10.0)[None]) ** 2

    class Member(nn.Module):  # conditional stand-in; classes in `broken` come out as class 0
        noise_dim = 2

        def __init__(self, broken=()):
            super().__init__()
            self.broken = torch.tensor(list(broken) or [-1])

        def forward(self, labels, z):
            c = labels.argmax(1)
            c = torch.where(torch.isin(c, self.broken), torch.zeros_like(c), c).float()
            return (c / 9).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).contiguous()

    s = {"samples_per_class": 10, "max_draw_factor": 2.0, "sample_batch": 8}
    cpu = torch.device("cpu")
    a, info = make_synthetic(Brightness(), [Member(), Member(broken=(5,)), Member()], "inversion", 10, s, 0, cpu)
    assert np.bincount(a["y"]).tolist() == [10] * 10
    assert np.bincount(a["source"][a["y"] == 5], minlength=3).tolist() == [4, 0, 6]
    # the last member collapsed: its share goes round the ensemble again
    b, _ = make_synthetic(Brightness(), [Member(), Member(), Member(broken=(5,))], "inversion", 10, s, 0, cpu)
    assert np.bincount(b["source"][b["y"] == 5], minlength=3).tolist() == [7, 3, 0]
    assert 0 < info["per_class"][5]["accept_rate"] < 1
    with pytest.raises(UserError) as e:
        make_synthetic(Brightness(), [Member(broken=(5,))] * 3, "inversion", 10, s, 0, cpu)
    assert "class 5" in str(e.value) and "0 of 10" in str(e.value) and "\n" not in str(e.value)
