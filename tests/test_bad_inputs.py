"""Bad inputs a hostile user found, each refused with one actionable line before anything runs (config,
config files) or before the job writes (data files, request cards, checkpoints); degenerate settings
warn. Most cases call the library's checks directly; the `integration` ones go through Snakemake
like tests/test_reliability.py (start-up: one "config error ..." line; a job: one "error in rule
<rule>: <file> ..." line and no output).
"""

from __future__ import annotations

import copy
import glob
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, SNAKEMAKE, TINY_TARGET, run_snakemake, tiny_study_config

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.json")
TARGET, tiny = TINY_TARGET, tiny_study_config
DATA = "results/data/tiny_digits"
MODELS = "results/models/tiny_digits/tiny_cnn/tiny/s0"
RUN = "results/runs/tiny_digits/tiny_cnn/tiny/s0/class0"




def start_up(cfg: dict) -> dict:
    """What the Snakefile and common.smk do with the config at start-up, in-process: config.yaml with
    `cfg` on top (as --configfile), schema (with defaults), tuning trials, cross-checks."""
    from snakemake.utils import update_config, validate

    from unlearnbench.config import canonical_order, check_config, coerce_numbers
    from unlearnbench.tuning import add_tuning_trials

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, copy.deepcopy(cfg))
    coerce_numbers(config, SCHEMA)
    validate(config, schema=SCHEMA)
    add_tuning_trials(config)
    canonical_order(config)
    check_config(config)
    return config


def renamed(group: str, old: str, new: str):
    """Rename an entry and every study reference to it."""
    def change(cfg):
        cfg[group][new] = cfg[group].pop(old)
        for s in cfg["studies"].values():
            for key in ("methods", "scenarios"):
                s[key] = [new if x == old else x for x in s.get(key, [])]
    return change


def study(**kv):
    return lambda cfg: cfg["studies"]["tiny"].update(kv)


def scenario(spec: dict):
    """The tiny study on a new scenario `sc`."""
    return lambda c: (c.setdefault("scenarios", {}).update(sc=spec), c["studies"]["tiny"].update(scenarios=["sc"]))


def tuning_on(scenario: dict):
    return lambda c: (c.setdefault("scenarios", {}).update(t_sc=scenario),
                      c.update(tuning={"t": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny",
                                             "scenario": "t_sc", "seed": [7, 8, 9], "budget": 1,
                                             "methods": {"finetune": {"lr": [0.1]}}}}))


NAME_RULE = "is not allowed (names become file paths)"
START_UP_CASES = [
    ("method listed twice", study(methods=["original", "retrain", "finetune", "finetune"]),
     "studies.tiny.methods: method 'finetune' is listed twice; list each once"),
    ("seed listed twice", study(seeds=[0, 0]), "studies.tiny.seeds: seed 0 is listed twice; list each once"),
    ("scenario listed twice", study(scenarios=["class0", "class0"]), "studies.tiny.scenarios: scenario 'class0' is listed twice"),
    ("study named ../../evil", lambda c: c["studies"].update({"../../evil": c["studies"].pop("tiny")}),
     f"studies: the name '../../evil' {NAME_RULE}"),
    ("method named with a space", renamed("methods", "finetune", "fine tune"), f"methods: the name 'fine tune' {NAME_RULE}"),
    ("scenario named ../x", lambda c: (c.setdefault("scenarios", {}).update({"../x": {"type": "class", "classes": [1]}}),
                                       c["studies"]["tiny"].update(scenarios=["../x"])), f"scenarios: the name '../x' {NAME_RULE}"),
    ("figure named a/b", lambda c: c.update(figures={"a/b": {"kind": "pred_hist", "study": "tiny"}}),
     f"figures: the name 'a/b' {NAME_RULE}"),
    ("paper named .hidden", lambda c: c.update(papers={".hidden": {"studies": ["tiny"]}}), f"papers: the name '.hidden' {NAME_RULE}"),
    ("dataset named x..y", lambda c: c["datasets"].update({"x..y": {"source": "digits", "image_size": 8, "channels": 1}}),
     f"datasets: the name 'x..y' {NAME_RULE}"),
    ("method instance name with underscore", lambda c: c["methods"].update(_x={"method": "finetune"}),
     "methods._x: instance names may not start with '_'"),
    ("random scenario naming class 12", scenario({"type": "random", "fraction": 0.5, "classes": [12]}),
     "scenarios.sc: forget class 12 is out of range for dataset tiny_digits (classes 0..9)"),
    ("tuning scenario naming class 12", tuning_on({"type": "class", "classes": [12]}),
     "scenarios.t_sc: forget class 12 is out of range for dataset tiny_digits (classes 0..9)"),
    ("class scenario forgetting every class", scenario({"type": "class", "classes": list(range(10))}),
     "scenarios.sc: forgets every class of dataset tiny_digits; leave at least one to retain"),
    ("relearn metric its extras do not measure",
     lambda c: (c.update(relearn_variants={"steps": {"definitions": ["steps"]}}),
                c["studies"]["tiny"].update(metrics=["acc_forget", "ain_epochs"], extras=["relearn.steps"])),
     "studies.tiny: metric ain_epochs needs a relearn extra that measures epochs"),
    ("relearn metric without a relearn extra", study(metrics=["acc_forget", "relearn_steps"]),
     "studies.tiny: metric relearn_steps needs a relearn extra that measures steps"),
    ("noise floor naming a method", study(noise_floor="finetune"),
     "studies.tiny.noise_floor: 'finetune' is not a retrain instance with replica >= 1"),
    ("noise-floor seed cycle missing a seed",
     lambda c: (c["methods"].update(xs={"method": "retrain", "replica": 1, "seed_cycle": [0, 1]}),
                c["studies"]["tiny"].update(seeds=[0, 2], noise_floor="xs")),
     "studies.tiny: seed 2 is not in methods.xs.seed_cycle [0, 1]"),
    ("seed cycle on the gold retrain", lambda c: c["methods"].update(xs={"method": "retrain", "seed_cycle": [0, 1]}),
     "method 'retrain': seed_cycle makes a noise-floor row; give it with replica: 1"),
    ("seed cycle of one seed", lambda c: c["methods"].update(xs={"method": "retrain", "replica": 1, "seed_cycle": [3]}),
     "method 'retrain': seed_cycle must list two or more distinct integer seeds, got [3]"),
]


@pytest.mark.parametrize("name,change,message", START_UP_CASES, ids=[c[0] for c in START_UP_CASES])
def test_start_up_refuses(name, change, message):
    from unlearnbench.errors import UserError

    cfg = tiny()
    change(cfg)
    with pytest.raises(UserError) as e:
        start_up(cfg)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_every_shipped_config_passes_the_name_and_duplicate_checks():
    from unlearnbench.config import check_names

    for f in [REPO / "config.yaml", *sorted((REPO / "workflow" / "papers").glob("*/*.yaml"))]:
        check_names(yaml.safe_load(f.read_text()) or {})
    start_up(tiny())  # the tiny config over config.yaml: no error


def test_a_batch_covering_the_training_set_warns_at_start_up_and_in_the_job(capsys):
    import torch

    from unlearnbench.training import train

    cfg = tiny()
    start_up(cfg)
    assert "warning" not in capsys.readouterr().err
    cfg["training"]["tiny"]["batch_size"] = 100000
    start_up(cfg)
    err = capsys.readouterr().err
    assert err.count("warning: training.tiny: batch_size 100000 is at least the ~1293 training images of dataset "
                     "tiny_digits") == 1, err
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x, y = torch.rand(10, 1, 2, 2), torch.arange(10) % 2
    for _ in range(2):  # a second call in the same process (a method's loop) does not repeat it
        train(model, x, y, {"epochs": 2, "batch_size": 100000, "lr": 0.01}, 0, torch.device("cpu"), desc="original")
    err = capsys.readouterr().err
    assert err.count("warning: original: batch_size 100000 is at least the 10 training samples: one optimiser step "
                     "per epoch (2 in all); lower batch_size") == 1, err


# --------------------------------------------------------------------------- config files
def _bomb(levels: int, n: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * n) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


CONFIGFILE_CASES = [
    ("alias bomb", _bomb(9).encode(), "expands to more than 100000 values through YAML aliases"),
    ("alias bomb in a figure's options", ("figures:\n  f:\n    kind: pred_hist\n    study: tiny\n    options:\n"
                                          + "".join(f"      {l}\n" for l in _bomb(9).splitlines())).encode(),
     "expands to more than 100000 values"),
    ("recursive alias", b"a: &x [1, *x]\n", "alias *x (line 1) refers to a collection that contains it"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "is binary (NUL byte at offset 8), not YAML text"),
    ("latin-1", "studies: {caf\xe9: {}}\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9 at offset 13); save it as UTF-8"),
    ("larger than 1 MiB", b"a: 1\n" + b"#" * (1 << 20), "is larger than 1 MiB"),
    ("nested a million levels", b"a: " + b"[" * 10 ** 6, "nests more than 64 levels deep"),
    ("nested 100 levels", b"a: " + b"[" * 100 + b"]" * 100, "nests more than 64 levels deep"),
    ("not YAML", b"a: [1, 2\n", "is not valid YAML"),
]


@pytest.mark.parametrize("name,content,message", CONFIGFILE_CASES, ids=[c[0] for c in CONFIGFILE_CASES])
def test_config_file_checks(tmp_path, name, content, message):
    from unlearnbench.configfile import check_config_file
    from unlearnbench.errors import UserError

    f = tmp_path / "overlay.yaml"
    f.write_bytes(content)
    t0 = time.perf_counter()
    with pytest.raises(UserError) as e:
        check_config_file(f)
    assert message in str(e.value) and str(f) in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert time.perf_counter() - t0 < 2


def test_shipped_config_files_pass_and_json_is_accepted(tmp_path):
    from unlearnbench.configfile import check_config_file, command_line_configfiles, command_line_problem

    for f in [REPO / "config.yaml", *sorted((REPO / "workflow" / "papers").glob("*/*.yaml"))]:
        check_config_file(f)
    (tmp_path / "c.json").write_text(json.dumps({"threads": 1}))
    check_config_file(tmp_path / "c.json")
    assert command_line_configfiles(["-n", "--configfile", "a.yaml", "b.yaml", "--cores", "1", "--configfile=c.yaml",
                                     "--", "--configfile", "t"]) == ["a.yaml", "b.yaml", "c.yaml"]
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe")
    assert command_line_problem(["--configfile", "bad.yaml", "missing.yaml"], tmp_path).startswith(
        f"config error: config file {tmp_path / 'bad.yaml'} is not UTF-8 text")
    assert command_line_problem(["--configfile", "missing.yaml", "c.json"], tmp_path) is None


def _snakemake_with(work: Path, configfile: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", str(configfile),
           "--cores", "1", *extra, "--", TARGET]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO / "workflow")})


@pytest.mark.integration
def test_an_alias_bomb_overlay_is_one_line_at_start_up(tmp_path):
    """Snakemake loads --configfile itself (cheap: aliases stay shared references); the Snakefile
    refuses the file before anything walks it (it took 9.5 min and 7.5 GB: the schema error's
    pretty-printed config)."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb(9))
    t0 = time.perf_counter()
    proc = _snakemake_with(tmp_path / "w", bomb, "-n")
    lines = [l for l in proc.stderr.splitlines() if l.startswith("config error")]
    assert proc.returncode != 0 and len(lines) == 1 and "expands to more than 100000 values" in lines[0], proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr + proc.stdout and time.perf_counter() - t0 < 60
    assert not (tmp_path / "w" / "results").exists()


@pytest.mark.integration
@pytest.mark.parametrize("content,message", [
    ("studies: {caf\xe9: {}}\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9 at offset 13); save it as UTF-8"),
    (b"a: " + b"[" * 5000 + b"]" * 5000, "nests more than 64 levels deep (line 1)"),
], ids=["latin-1", "nested 5000 levels"])
def test_an_overlay_snakemake_cannot_read_is_one_line_through_bootstrap(tmp_path, content, message):
    """Snakemake reads --configfile before the Snakefile runs: a UnicodeDecodeError or RecursionError
    traceback there; bootstrap.py checks the files first."""
    bad = tmp_path / "overlay.yaml"
    bad.write_bytes(content)
    proc = subprocess.run([sys.executable, str(REPO / "bootstrap.py"), "run", "--configfile", str(bad), "-n", TARGET],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip() == f"config error: config file {bad} {message}"


# these reach Snakemake's start-up exactly as test_reliability's CONFIG_CASES do
SNAKEMAKE_START_UP = [c for c in START_UP_CASES if c[0] in ("method listed twice", "seed listed twice", "study named ../../evil",
                                                              "method named with a space")]


@pytest.mark.integration
@pytest.mark.parametrize("name,change,message", SNAKEMAKE_START_UP, ids=[c[0] for c in SNAKEMAKE_START_UP])
def test_start_up_refusals_are_one_config_error_line(tmp_path, name, change, message):
    cfg = tiny()
    change(cfg)
    work = tmp_path / "a" / "b" / "w"  # ../../evil from results/tables would land in tmp_path/a
    proc = run_snakemake(work, cfg, [TARGET], check=False)
    lines = [l for l in proc.stderr.splitlines() if l.startswith("config error")]
    assert proc.returncode != 0 and len(lines) == 1 and message in lines[0], proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (work / "results").exists() and sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


# --------------------------------------------------------------------------- data files, cards
def _npz(path: Path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _archive(n: int = 4, **over) -> dict:
    d = {"x": np.zeros((n, 1, 8, 8), np.uint8), "y": np.arange(n) % 2, "is_test": np.zeros(n, bool),
         "mean": np.full(1, 0.5, np.float32), "std": np.full(1, 0.2, np.float32), "class_names": np.asarray(["a", "b"])}
    return {**d, **over}


def _view(n: int = 4, **over) -> dict:
    return {"x": np.zeros((n, 1, 8, 8), np.uint8), "y": np.arange(n) % 2, "index": np.arange(n),
            "covers_all": np.asarray(True), **over}


def _nan_images():
    x = np.zeros((4, 1, 8, 8), np.float32)
    x[1, 0, 2, 3] = np.nan
    return x


FILE_CHECKS = [
    ("archive with zero rows", "read_archive", "data.npz", _archive(0), "holds no images; delete it and rerun rule prepare_dataset"),
    ("archive with NaN mean", "read_archive", "data.npz", _archive(mean=np.full(1, np.nan, np.float32)), "mean holds non-finite values"),
    ("archive with std 0", "read_archive", "data.npz", _archive(std=np.zeros(1, np.float32)), "std holds a value <= 0"),
    ("view with NaN pixels", "load_view", "retain.npz", _view(x=_nan_images()),
     "the images hold NaN or infinite values (a view holds uint8 pixels); delete it and rerun rule data_view"),
    ("view of float pixels", "load_view", "retain.npz", _view(x=np.zeros((4, 1, 8, 8), np.float32)),
     "is not a data view (x float32[4, 1, 8, 8], y int64[4]; expected uint8 images [N, C, H, W] and N integer labels)"),
    ("view with fewer labels", "load_view", "retain.npz", _view(y=np.zeros(3, np.int64)), "is not a data view"),
]


@pytest.mark.parametrize("name,fn,fname,arrays,message", FILE_CHECKS, ids=[c[0] for c in FILE_CHECKS])
def test_broken_data_files_are_one_line(tmp_path, name, fn, fname, arrays, message):
    from unlearnbench import data
    from unlearnbench.errors import UserError

    path = tmp_path / fname
    _npz(path, **arrays)
    with pytest.raises(UserError) as e:
        getattr(data, fn)(str(path))
    assert str(e.value).startswith(str(path)) and message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_split_scikit_learn_cannot_stratify_is_one_line():
    from unlearnbench.data import make_split
    from unlearnbench.errors import UserError

    y = np.asarray([0, 0, 0, 0, 1])
    with pytest.raises(UserError) as e:
        make_split(y, np.zeros(5, bool), 0.1, 0.2, 0)
    assert str(e.value).startswith("cannot split the dataset's 5 images (val_fraction 0.1, test_fraction 0.2): ")
    assert "\n" not in str(e.value)


CARD_CASES = [
    ("class 12 of 10", {"type": "class", "forget_classes": [12], "num_classes": 10},
     "forget class 12 is out of range (classes 0..9); delete it and rerun rule make_forget_request"),
    ("negative class", {"type": "class", "forget_classes": [-1], "num_classes": 10}, "forget class -1 is out of range"),
    ("classes not integers", {"type": "class", "forget_classes": ["3"], "num_classes": 10}, "forget_classes must be a list"),
    ("no num_classes", {"type": "class", "forget_classes": [3]}, "is not a request card"),
    ("class request without classes", {"type": "class", "forget_classes": [], "num_classes": 10}, "names no forget class"),
]


@pytest.mark.parametrize("name,card,message", CARD_CASES, ids=[c[0] for c in CARD_CASES])
def test_request_card_checks(name, card, message):
    from unlearnbench.data import check_card
    from unlearnbench.errors import UserError

    with pytest.raises(UserError) as e:
        check_card(card, "forget/class0.card.json")
    assert str(e.value).startswith("forget/class0.card.json") and message in str(e.value)
    check_card({"type": "random", "forget_classes": [], "num_classes": 10}, "x")  # a random request names none


# --------------------------------------------------------------------------- checkpoints against the config
def _checkpoint(path: Path, spec: dict, image_size: int = 8, num_classes: int = 10) -> None:
    from unlearnbench.models.checkpoint import model_meta, new_model, save_model

    d = {"x": np.zeros((1, 1, image_size, image_size), np.uint8), "class_names": np.arange(num_classes),
         "mean": np.full(1, 0.5, np.float32), "std": np.full(1, 0.2, np.float32)}
    save_model(path, new_model(d, spec), model_meta(d, spec, kind="original", seed=0))


CKPT_CASES = [
    ("a ResNet-20 as the smallcnn", {"arch": "resnet20"},
     "holds a resnet20 model, but the config's model is a smallcnn (width=8); delete it and rerun"),
    ("a smallcnn of another width", {"arch": "smallcnn", "width": 16},
     "holds a smallcnn with width=16, but the config's model has width=8; delete it and rerun"),
]


@pytest.mark.parametrize("name,spec,message", CKPT_CASES, ids=[c[0] for c in CKPT_CASES])
def test_a_checkpoint_of_another_model_entry_is_one_line(tmp_path, name, spec, message):
    from unlearnbench.errors import UserError
    from unlearnbench.models.checkpoint import load_model

    path = tmp_path / "original.safetensors"
    _checkpoint(path, spec)
    with pytest.raises(UserError) as e:
        load_model(path, expect={"arch": "smallcnn", "width": 8})
    assert str(e.value) == f"checkpoint {path} {message} (or fix the config's models entry)", str(e.value)
    load_model(path, expect=spec)  # the entry it was built from
    if spec.get("width") == 16:
        load_model(path, expect={"arch": "smallcnn"})  # width 16 is smallcnn's default


@pytest.mark.integration
def test_unlearning_refuses_an_original_of_another_model_entry_before_writing(tmp_path, built):
    """run_unlearn given the config's model entry (`model_spec`, see the report: the rule script passes it)."""
    from unlearnbench.errors import UserError
    from unlearnbench.methods import create_method
    from unlearnbench.pipeline import run_unlearn
    from unlearnbench.runtime import Job

    original = tmp_path / "original.safetensors"
    _checkpoint(original, {"arch": "resnet20"})
    out = {k: str(tmp_path / "out" / f) for k, f in (("ckpt", "model.safetensors"), ("info", "unlearn.json"),
                                                     ("time", "model.time.json"))}
    spec = {"method": "finetune", "epochs": 1}
    with pytest.raises(UserError) as e:
        run_unlearn(Job(out=out, device="cpu"), create_method(spec), spec, original=str(original),
                    card=str(built / f"{DATA}/forget/class0.card.json"),
                    views={"retain": str(built / f"{DATA}/access/class0/retain.npz")}, artefacts={},
                    model_spec={"arch": "smallcnn", "width": 8})
    assert "holds a resnet20 model, but the config's model is a smallcnn (width=8)" in str(e.value)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- through the jobs
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("built")
    run_snakemake(work, tiny(), [TARGET])
    return work


def _edit_card(w: Path):
    p = w / f"{DATA}/forget/class0.card.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "forget_classes": [12]}))


def _edit_view(w: Path, **over):
    p = w / f"{DATA}/access/class0/retain.npz"
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    _npz(p, **{**arrays, **{k: f(arrays) for k, f in over.items()}})


def _replace_original(w: Path, spec: dict, image_size: int = 8):
    _checkpoint(w / f"{MODELS}/original.safetensors", spec, image_size=image_size)


JOB_CASES = [
    ("card naming class 12", _edit_card, f"{RUN}/finetune/model.safetensors", "unlearn",
     f"{DATA}/forget/class0.card.json: forget class 12 is out of range (classes 0..9)"),
    ("retain view of the wrong shape", lambda w: _edit_view(w, x=lambda a: np.repeat(np.repeat(a["x"], 2, 2), 2, 3)),
     f"{RUN}/finetune/model.safetensors", "unlearn",
     f"{DATA}/access/class0/retain.npz holds images of shape [1, 16, 16], but the model {MODELS}/original.safetensors takes [1, 8, 8]"),
    ("retain view with NaN pixels", lambda w: _edit_view(w, x=lambda a: np.where(np.arange(64).reshape(1, 1, 8, 8) == 5, np.nan,
                                                                                 a["x"].astype(np.float32))),
     f"{RUN}/finetune/model.safetensors", "unlearn", f"{DATA}/access/class0/retain.npz: the images hold NaN or infinite values"),
    ("a ResNet-20 of other data as the original", lambda w: _replace_original(w, {"arch": "resnet20"}, image_size=16),
     f"{RUN}/finetune/model.safetensors", "unlearn",
     f"checkpoint {MODELS}/original.safetensors holds a resnet20 model, but the config's model is a smallcnn (width=8)"),
    ("a ResNet-20 of the same data as the original", lambda w: _replace_original(w, {"arch": "resnet20"}),
     f"{RUN}/finetune/model.safetensors", "unlearn",
     f"checkpoint {MODELS}/original.safetensors holds a resnet20 model, but the config's model is a smallcnn (width=8)"),
    ("a smallcnn of another width as the original", lambda w: _replace_original(w, {"arch": "smallcnn", "width": 16}),
     f"{RUN}/finetune/model.safetensors", "unlearn",
     f"checkpoint {MODELS}/original.safetensors holds a smallcnn with width=16, but the config's model has width=8"),
    ("archive with zero rows", lambda w: _npz(w / f"{DATA}/data.npz", **_archive(0)), f"{DATA}/split.json", "make_split",
     f"{DATA}/data.npz holds no images"),
]


@pytest.mark.integration
@pytest.mark.parametrize("name,corrupt,target,rule,message", JOB_CASES, ids=[c[0] for c in JOB_CASES])
def test_bad_files_stop_the_job_that_reads_them(built, tmp_path, name, corrupt, target, rule, message):
    w = tmp_path / "w"
    shutil.copytree(built, w, symlinks=True)
    corrupt(w)
    if (w / target).exists():
        (w / target).unlink()
    proc = run_snakemake(w, tiny(), [target], check=False)
    err = proc.stderr + proc.stdout
    lines = sorted({l for l in err.splitlines() if l.startswith("error in rule ")})
    assert proc.returncode != 0, name
    assert len(lines) == 1 and lines[0].startswith(f"error in rule {rule}: ") and message in lines[0], err[-2500:]
    assert "Traceback" not in err and not (w / target).exists()
    assert not list((w / "results").rglob(".*.tmp"))
