"""Reliability battery: bad input never reaches a traceback, leaves no output, and names the problem
in one line; interrupted runs resume to byte-identical artefacts; pickle payloads never execute.

Three groups:
- config mistakes, caught at start-up (`snakemake -n`): one "config error ..." line, nothing written;
- broken data files, artefacts and checkpoints, caught by the job that reads them: one
  "error in rule <rule>: <file> ..." line, the job's outputs absent;
- CLI mistakes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SNAKEMAKE, TINY_TARGET, run_snakemake, tiny_study_config

pytestmark = pytest.mark.integration

TARGET, tiny = TINY_TARGET, tiny_study_config
RUN = "results/runs/tiny_digits/tiny_cnn/tiny/s0/class0"
MODELS = "results/models/tiny_digits/tiny_cnn/tiny/s0"


def with_(path: str, value):
    def change(cfg):
        keys = path.split(".")
        node = cfg
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return change


def study(**kv):
    return lambda cfg: cfg["studies"]["tiny"].update(kv)


# --------------------------------------------------------------------------- config mistakes
CONFIG_CASES = [
    ("unknown top-level key", with_("bogus", 1), "Additional properties are not allowed ('bogus'"),
    ("unknown hyperparameter", with_("methods.finetune", {"method": "finetune", "lrr": 1}), "has no hyperparameter 'lrr'"),
    ("unknown method", with_("methods.x", {"method": "nonexistent"}), "unknown unlearning method 'nonexistent'"),
    ("forget class out of range", with_("scenarios.class0", {"type": "class", "classes": [12]}), "forget class 12 is out of range"),
    ("unknown architecture", with_("models.m", {"arch": "resnet9000"}), "unknown arch 'resnet9000'"),
    ("unknown architecture argument", with_("models.tiny_cnn", {"arch": "smallcnn", "widht": 8}), "has no argument 'widht'"),
    ("recipe lr not a number", with_("training.tiny.lr", "fast"), "config error at training.tiny.lr"),
    ("recipe optimizer unknown", with_("training.tiny.optimizer", "lion"), "config error at training.tiny.optimizer"),
    ("study without retrain", study(methods=["original", "finetune"]), "must include a 'retrain' instance"),
    ("negative method lr", with_("methods.finetune.lr", -0.1), "lr must be > 0"),
    ("method epochs 0", with_("methods.finetune.epochs", 0), "epochs must be >= 1"),
    ("method batch_size 0", with_("methods.finetune.batch_size", 0), "batch_size must be >= 1"),
    ("method optimizer unknown", with_("methods.finetune.optimizer", "lion"), "optimizer must be one of sgd, adam, adamw"),
    ("method epochs not an integer", with_("methods.finetune.epochs", 2.5), "epochs must be an integer"),
    ("method boolean as a number", with_("methods.rl", {"method": "random_labels", "use_retain": 3}), "must be true or false"),
    ("UNSIR passes", with_("methods.u", {"method": "unsir", "passes": "IXR"}), "passes must be a non-empty string of I"),
    ("CLUE mask fraction", with_("methods.c", {"method": "clue", "mask_mode": "top_global", "mask_fraction": 0.0}),
     "mask_fraction must be > 0"),
    ("unknown extra", study(extras=["nope"]), "unknown extra 'nope'"),
    ("unknown scenario", study(scenarios=["nope"]), "names unknown scenario 'nope'"),
    ("unknown dataset", study(dataset="nope"), "names unknown dataset 'nope'"),
    ("empty seeds", study(seeds=[]), "config error at studies.tiny.seeds"),
    ("method without random support", lambda c: (c["methods"].update(u={"method": "unsir"}),
                                                c["studies"]["tiny"].update(methods=["original", "retrain", "u"],
                                                                            scenarios=["random10"])),
     "does not support random forgetting"),
    ("random scenario without size", with_("scenarios.r", {"type": "random"}), "config error at scenarios.r"),
    ("device unknown", with_("device", "tpu"), "config error at device"),
    ("threads 0", with_("threads", 0), "config error at threads"),
    ("image size too small", with_("datasets.tiny_digits.image_size", 2), "config error at datasets.tiny_digits.image_size"),
    ("imagefolder without path", with_("datasets.f", {"source": "imagefolder"}), "needs a 'path'"),
    ("unknown figure kind", with_("figures.f", {"kind": "pie", "study": "tiny"}), "unknown figure kind 'pie'"),
    ("paper naming an unknown study", with_("papers.p", {"studies": ["nope"]}), "names unknown study 'nope'"),
    ("pruned model with unknown base", with_("models.sp", {"base": "nope", "prune": {"sparsity": 0.95}}),
     "names unknown base model 'nope'"),
    ("pruning sparsity 1", with_("models.sp", {"base": "tiny_cnn", "prune": {"sparsity": 1.0}}), "config error at models.sp"),
    ("tuning budget above grid", lambda c: c.update(tuning={"t": {"dataset": "tiny_digits", "model": "tiny_cnn",
                                                              "training": "tiny", "scenario": "class0", "seed": [7, 8, 9], "budget": 3,
                                                              "methods": {"finetune": {"lr": [0.1]}}}}),
     "fewer than the budget"),
    ("tuning on a reported cell", lambda c: (c.update(tuning={"t": {"dataset": "tiny_digits", "model": "tiny_cnn",
                                                                "training": "tiny", "scenario": "class0", "seed": [0, 7, 8],
                                                                "budget": 1, "methods": {"finetune": {"lr": [0.1]}}}}),
                                             c["methods"]["finetune"].update(tune="t")), "reports seed 0 of tiny_digits"),
    ("tuning on one seed", lambda c: c.update(tuning={"t": {"dataset": "tiny_digits", "model": "tiny_cnn",
                                                           "training": "tiny", "scenario": "class0", "seed": [7],
                                                           "budget": 1, "methods": {"finetune": {"lr": [0.1]}}}}),
     "tune on at least 3 seeds"),
    ("method instance name with underscore", with_("methods._x", {"method": "finetune"}), "may not start with '_'"),
]


@pytest.mark.parametrize("name,change,message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_mistakes_are_one_line_start_up_errors(tmp_path, name, change, message):
    cfg = tiny()
    change(cfg)
    proc = run_snakemake(tmp_path, cfg, [TARGET], "-n", check=False)
    lines = [l for l in proc.stderr.splitlines() if l.startswith("config error")]
    assert proc.returncode != 0, name
    assert len(lines) == 1 and message in lines[0], proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_a_figure_that_selects_nothing_never_blocks_a_table(tmp_path):
    """An overlay narrowed the study: the figure is left out with a warning, the table builds."""
    cfg = tiny()
    cfg["figures"] = {"f": {"kind": "pred_hist", "study": "tiny", "select": {"methods": ["x"]}},
                      "g": {"kind": "pred_hist", "study": "tiny", "select": {"setups": [3]}}}
    cfg["papers"] = {"p": {"studies": ["tiny"], "figures": ["f", "g"]}}
    proc = run_snakemake(tmp_path, cfg, [TARGET, "results/papers/p.md"], "-n")
    assert "warning: figures.f is left out: its selection matches no run of study 'tiny'" in proc.stderr
    assert "warning: figures.g is left out: setup index 3 (the study has 1) of study 'tiny'" in proc.stderr
    assert "report_study" in proc.stdout and "report_figure" not in proc.stdout


def test_a_study_moved_to_other_data_names_the_settings_scaled_for_the_old(tmp_path):
    cfg = tiny()
    cfg["studies"]["tiny"]["scaled"] = {"for": "tiny_digits", "settings": ["methods.finetune.epochs", "training.tiny.epochs"],
                                        "why": "808 images"}
    assert "warning" not in run_snakemake(tmp_path / "same", cfg, [TARGET], "-n").stderr
    cfg["datasets"]["fashion"] = {"source": "fashionmnist", "image_size": 28, "channels": 1}
    cfg["studies"]["tiny"]["dataset"] = "fashion"
    proc = run_snakemake(tmp_path / "moved", cfg, [TARGET], "-n", check=False)
    assert ("warning: studies.tiny runs on fashion, but methods.finetune.epochs, training.tiny.epochs were scaled for "
            "tiny_digits (808 images)") in proc.stderr
    cfg["studies"]["tiny"]["scaled"]["settings"] = ["methods.finetune.epoch"]
    proc = run_snakemake(tmp_path / "typo", cfg, [TARGET], "-n", check=False)
    assert "config error" in proc.stderr and "methods.finetune.epoch is not a setting" in proc.stderr


@pytest.mark.parametrize("override", ["methods={finetune: {method: finetune, lr: 1e-3, epochs: 1}}",
                                      "methods={finetune: {method: finetune, lr: '0.1', epochs: '1'}}"])
def test_numbers_written_as_strings_are_numbers(tmp_path, override):
    """`lr: 1e-3` (a string to PyYAML) and nested --config overrides (strings) are accepted."""
    cfg = tiny()
    cfg["training"]["tiny"]["lr"] = "5e-2"
    proc = run_snakemake(tmp_path, cfg, [TARGET], "-n", "--config", override, check=False)
    assert proc.returncode == 0, proc.stderr[-1500:]


# --------------------------------------------------------------------------- broken files
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("built")
    # every job in its own process: the kill tests' reruns (warm runner on) must match it byte for byte
    run_snakemake(work, tiny(), [TARGET], env={"UNLEARNBENCH_WARM": "0"})
    return work


def _copy(built: Path, tmp: Path) -> Path:
    dst = tmp / "w"
    shutil.copytree(built, dst, symlinks=True)
    return dst


def _write_npz(path: Path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _pickle_bomb(path: Path, marker: Path):
    """A pickle that creates `marker` when unpickled."""
    import pickle

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps(Bomb()))


def _split_edit(key, fn):
    def edit(w):
        import json

        p = w / "results/data/tiny_digits/split.json"
        s = json.loads(p.read_text())
        s[key] = fn(s)
        p.write_text(json.dumps(s))
    return edit


def _request_edit(fn):
    def edit(w):
        import json

        p = w / "results/data/tiny_digits/forget/class0.json"
        r = json.loads(p.read_text())
        fn(r)
        p.write_text(json.dumps(r))
    return edit


def _corrupt(rel, data=b"\x00garbage"):
    return lambda w: (w / rel).write_bytes(data)


FILE_CASES = [
    ("split: duplicate index", _split_edit("train", lambda s: s["train"] + s["train"][:1]), f"{MODELS}/original.safetensors",
     "train_original", "twice"),
    ("split: out-of-range index", _split_edit("train", lambda s: s["train"] + [10 ** 6]), f"{MODELS}/original.safetensors",
     "train_original", "outside the archive"),
    ("split: train and test overlap", _split_edit("test", lambda s: s["test"] + s["train"][:1]), f"{MODELS}/original.safetensors",
     "train_original", "is in both train and test"),
    ("split: not JSON", _corrupt("results/data/tiny_digits/split.json", b"{nope"), f"{MODELS}/original.safetensors",
     "train_original", "is not valid JSON"),
    ("split: missing key", _split_edit("train", lambda s: None) if False else
     (lambda w: (w / "results/data/tiny_digits/split.json").write_text('{"val": [], "test": []}')),
     f"{MODELS}/original.safetensors", "train_original", "is not a split file"),
    ("request: forget and retain overlap", _request_edit(lambda r: r["retain"].append(r["forget"][0])),
     f"{MODELS}/retrain_class0.safetensors", "train_retrain", "in both the forget and the retain set"),
    ("request: does not cover the split", _request_edit(lambda r: r["retain"].pop()),
     f"{MODELS}/retrain_class0.safetensors", "train_retrain", "do not cover exactly the training split"),
    ("request: forget set of the wrong class", _request_edit(lambda r: (r["forget"].append(r["retain"].pop(0)))),
     f"{MODELS}/retrain_class0.safetensors", "train_retrain", "not exactly the training samples"),
    ("archive: not a zip", _corrupt("results/data/tiny_digits/data.npz"), "results/data/tiny_digits/split.json",
     "make_split", "is not a readable .npz archive"),
    ("archive: missing arrays", lambda w: _write_npz(w / "results/data/tiny_digits/data.npz", x=np.zeros((2, 1, 8, 8), np.uint8)),
     "results/data/tiny_digits/split.json", "make_split", "is not a dataset archive"),
    ("archive: pickle payload", lambda w: _pickle_bomb(w / "results/data/tiny_digits/data.npz", w / "PWNED"),
     "results/data/tiny_digits/split.json", "make_split", "is not a readable .npz archive"),
    ("checkpoint: garbage", _corrupt(f"{MODELS}/original.safetensors"), f"{RUN}/finetune/model.safetensors",
     "unlearn", "is corrupt or not a safetensors file"),
    ("checkpoint: pickle payload", lambda w: _pickle_bomb(w / f"{MODELS}/original.safetensors", w / "PWNED"),
     f"{RUN}/finetune/model.safetensors", "unlearn", "is corrupt or not a safetensors file"),
    ("checkpoint: foreign safetensors", lambda w: _foreign_safetensors(w / f"{MODELS}/original.safetensors"),
     f"{RUN}/finetune/model.safetensors", "unlearn", "was not written by unlearnbench"),
    ("checkpoint: other architecture", lambda w: _other_architecture(w / f"{MODELS}/original.safetensors"),
     f"{RUN}/finetune/model.safetensors", "unlearn", "does not fit model"),
    ("data view: not a view", lambda w: _write_npz(w / "results/data/tiny_digits/access/class0/retain.npz", x=np.zeros(1)),
     f"{RUN}/finetune/model.safetensors", "unlearn", "is not a data view"),
    ("outputs: garbage logits", _corrupt(f"{MODELS}/retrain_class0.outputs.npz"), f"{RUN}/finetune/metrics.json",
     "evaluate", "is not a readable .npz archive"),
]


def _foreign_safetensors(path: Path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(path), metadata={"framework": "somebody else"})


def _other_architecture(path: Path):
    import torch

    from unlearnbench.io import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(path)
    state = {k: torch.zeros(3) if v.ndim else v for k, v in state.items()}
    save_checkpoint(path, state, meta)


@pytest.mark.parametrize("name,corrupt,target,rule,message", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_broken_files_give_one_line_and_no_output(built, tmp_path, name, corrupt, target, rule, message):
    w = _copy(built, tmp_path)
    corrupt(w)
    if (w / target).exists():
        (w / target).unlink()  # make the job that reads the broken file run
    proc = run_snakemake(w, tiny(), [target], check=False)
    err = proc.stderr + proc.stdout
    # one distinct error line (the default profile's show-failed-logs prints the job's log again)
    lines = sorted({l for l in err.splitlines() if l.startswith(f"error in rule {rule}:")})
    assert proc.returncode != 0, name
    assert len(lines) == 1 and message in lines[0], err[-2500:]
    assert "Traceback" not in err
    assert not (w / target).exists()
    assert not (w / "PWNED").exists()  # no pickle was executed
    leftovers = [p for p in (w / "results").rglob(".*.tmp")]
    assert not leftovers, leftovers


def test_imagefolder_with_a_non_image_file(tmp_path):
    from PIL import Image

    root = tmp_path / "data" / "faces"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    (root / "a" / "broken.png").write_bytes(b"not a png")
    cfg = tiny()
    cfg["data_root"] = str(tmp_path / "data")
    cfg["datasets"]["faces"] = {"source": "imagefolder", "path": "faces", "image_size": 8, "channels": 1}
    proc = run_snakemake(tmp_path / "w", cfg, ["results/data/faces/data.npz"], check=False)
    lines = sorted({l for l in (proc.stderr + proc.stdout).splitlines() if l.startswith("error in rule prepare_dataset:")})
    assert proc.returncode != 0 and len(lines) == 1 and "broken.png is not a readable image" in lines[0], proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "w/results/data/faces/data.npz").exists()


def test_missing_dataset_names_the_expected_files(tmp_path):
    cfg = tiny()
    cfg["data_root"] = str(tmp_path / "nodata")
    cfg["studies"]["tiny"]["dataset"] = "cifar10"
    proc = run_snakemake(tmp_path, cfg, ["results/data/cifar10/data.npz"], check=False)
    assert proc.returncode != 0 and "error in rule prepare_dataset: cifar10 not found under" in proc.stderr
    assert "cifar-10-batches-py" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results/data/cifar10/data.npz").exists()


def test_pickle_in_pretrained_vit_weights_never_executes(tmp_path):
    from unlearnbench.errors import UserError
    from unlearnbench.models import build_model

    bomb, marker = tmp_path / "vit.pt", tmp_path / "PWNED"
    _pickle_bomb(bomb, marker)
    with pytest.raises(UserError) as e:
        build_model("vit", in_channels=1, num_classes=10, image_size=8, patch_size=4, embed_dim=16, depth=1,
                    num_heads=2, pretrained_path=str(bomb))
    assert "\n" not in str(e.value) and not marker.exists()


# --------------------------------------------------------------------------- CLI
def test_bootstrap_unknown_command_is_one_line():
    proc = subprocess.run([sys.executable, str(REPO / "bootstrap.py"), "tabel1"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "unknown command 'tabel1'" in proc.stderr


def test_unknown_target_is_one_snakemake_line(tmp_path):
    proc = run_snakemake(tmp_path, tiny(), ["results/tables/nope.csv"], "-n", check=False)
    out = proc.stdout + proc.stderr  # Snakemake 9 logs to stdout
    assert proc.returncode != 0 and "MissingRuleException" in out and "Traceback" not in out


# --------------------------------------------------------------------------- interrupted runs
def _files(work: Path) -> dict[str, bytes]:
    from helpers import is_timing_file

    out = {}
    for p in sorted((work / "results").rglob("*")):
        rel = p.relative_to(work).as_posix()
        if p.is_file() and not is_timing_file(p) and "/logs/" not in f"/{rel}":
            out[rel] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def reference(built):
    return _files(built)


def _start(work: Path) -> subprocess.Popen:
    import yaml

    work.mkdir(parents=True, exist_ok=True)
    (work / "test_config.yaml").write_text(yaml.safe_dump(tiny(), sort_keys=False))
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--configfile",
           str(work / "test_config.yaml"), "--cores", "2", TARGET]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "workflow")})


def _wait_for(work: Path, pattern: str, timeout: float = 300) -> None:
    t0 = time.time()
    while not list(work.glob(pattern)):
        if time.time() - t0 > timeout:
            raise AssertionError(f"{pattern} never appeared")
        time.sleep(0.2)


@pytest.mark.parametrize("how,when", [("SIGTERM", "results/data/tiny_digits/split.json"),
                                      ("SIGKILL", f"{MODELS}/original.safetensors"),
                                      ("SIGKILL", f"{MODELS}/retrain_class0.safetensors"),
                                      ("job", f"{MODELS}/original.safetensors")])
def test_interrupted_run_resumes_to_identical_artefacts(tmp_path, reference, how, when):
    """Kill Snakemake (SIGTERM / SIGKILL of the whole process group) or one running job's process
    once `when` exists, rerun, and compare every artefact byte for byte with an uninterrupted run
    (whose jobs ran in their own processes, these in warm-runner forks: unlearnbench/infra/warm.py)."""
    work = tmp_path / "w"
    proc = _start(work)
    _wait_for(work, when)
    if how == "job":  # kill the job processes (python scripts), not Snakemake
        subprocess.run(["pkill", "-KILL", "-f", f"{work}/.snakemake/scripts"], check=False)
        proc.wait(timeout=300)
    else:
        os.killpg(proc.pid, getattr(signal, how))
        proc.wait(timeout=120)
    if how != "job":  # a killed Snakemake leaves its lock: the README's recovery is --unlock, then the same command
        run_snakemake(work, tiny(), [TARGET], "--unlock")
    run_snakemake(work, tiny(), [TARGET])  # the rerun completes (rerun-incomplete is on in the default profile)
    got = _files(work)
    assert set(got) == set(reference), sorted(set(got) ^ set(reference))[:10]
    diff = [k for k in reference if got[k] != reference[k]]
    assert not diff, diff[:10]


def test_outputs_get_the_usual_permissions(built):
    """Atomic writes go through mkstemp (mode 0600); outputs get 0666 minus the umask instead."""
    mask = os.umask(0)
    os.umask(mask)
    files = [p for p in (built / "results").rglob("*") if p.is_file() and "logs" not in p.parts]
    assert files and all(p.stat().st_mode & 0o777 == 0o666 & ~mask for p in files), \
        [(str(p), oct(p.stat().st_mode & 0o777)) for p in files if p.stat().st_mode & 0o777 != 0o666 & ~mask][:5]
