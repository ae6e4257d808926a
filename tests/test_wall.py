"""The OS wall (unlearnbench/infra/wall.py): a walled job reads only its declared inputs, the Python
installation and the system libraries; writes only its private folder; starts no process; opens no
socket; and reads no other process's memory. The rogue method (tests/rogue_method.py) tries every
route found against the in-process hook, through Snakemake, with the warm runner on and off."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_CONFIG, run_snakemake
from unlearnbench.infra import wall

HERE = Path(__file__).parent
SUPPORT = wall.support()
needs_wall = pytest.mark.skipif("why" in SUPPORT, reason=f"this kernel offers {SUPPORT}")


@pytest.fixture(autouse=True)
def _own_state(monkeypatch):
    """walled() records the child's wall in this (test) process: keep it from other tests."""
    monkeypatch.setattr(wall, "_STATE", dict(wall._STATE))


def test_hidden_folders_are_cut_out_of_the_readable_trees(tmp_path):
    (tmp_path / "lib/pkg/data").mkdir(parents=True)
    (tmp_path / "lib/pkg/code.py").write_text("")
    (tmp_path / "lib/other").mkdir()
    listed = []
    got = wall._expand(str(tmp_path / "lib"), [str(tmp_path / "lib/pkg/data")], listed)
    assert sorted(got) == [str(tmp_path / "lib/other"), str(tmp_path / "lib/pkg/code.py")]
    assert sorted(listed) == [str(tmp_path / "lib"), str(tmp_path / "lib/pkg")]  # names only, for imports


def test_the_embedded_dataset_and_the_roots_are_hidden():
    hidden = wall.hidden_data(["results", "/srv/data"])
    import sklearn

    assert os.path.realpath(os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data")) in hidden
    assert os.path.realpath("results") in hidden and "/srv/data" in hidden and "/usr/share/datasets" in hidden
    dirs, files, _ = wall._readable([], hidden)
    assert not any(wall._under(p, h) for p in dirs + files for h in hidden)


def _in_wall(tmp_path, body, reads=()):
    """Run body(outputs) behind the wall in a fork; returns (exit code, output dict)."""
    out = {"result": str(tmp_path / "out" / "result.json")}
    code = wall.walled(list(reads), wall.hidden_data([str(tmp_path / "results")]), out, body)
    return code, out


@needs_wall
def test_a_walled_job_reads_its_inputs_and_nothing_else_and_its_outputs_arrive(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "declared.txt").write_text("ok")
    (tmp_path / "results" / "secret.txt").write_text("secret")

    def body(out):
        found = {"declared": open(tmp_path / "results/declared.txt").read()}
        for name, path in [("secret", tmp_path / "results/secret.txt"), ("home", Path(__file__))]:
            try:
                found[name] = open(path).read()[:10]
            except PermissionError:
                found[name] = "refused"
        import torch  # the libraries still work behind it

        found["torch"] = float(torch.nn.Linear(3, 1)(torch.ones(2, 3)).sum().detach() * 0) == 0.0
        found["state"] = wall.state()
        Path(out["result"]).write_text(json.dumps(found))

    code, out = _in_wall(tmp_path, body, reads=[str(tmp_path / "results" / "declared.txt")])
    got = json.loads(Path(out["result"]).read_text())
    assert code == 0 and got["declared"] == "ok" and got["secret"] == "refused" and got["home"] == "refused"
    assert got["torch"] is True and got["state"]["enforced"] is True and wall.state()["enforced"] is True


@needs_wall
def test_a_failed_walled_job_leaves_no_output(tmp_path):
    def body(out):
        Path(out["result"]).write_text("half")
        raise SystemExit(3)

    code, out = _in_wall(tmp_path, body)
    assert code == 3 and not Path(out["result"]).exists()


def test_where_the_kernel_offers_no_wall_the_job_says_so(tmp_path, monkeypatch):
    def no_landlock(*a, **k):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(wall, "_landlock", no_landlock)

    def body(out):
        Path(out["result"]).write_text(json.dumps(wall.state()))

    code, out = _in_wall(tmp_path, body)
    st = json.loads(Path(out["result"]).read_text())
    assert code == 0 and st["enforced"] is False and "no Landlock" in st["why"]
    assert wall.state()["enforced"] is False  # the parent knows it too (provenance)


def _rogue_config() -> dict:
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["training"]["tiny"]["epochs"] = 1
    cfg["methods"] = {"rogue": {"method": "rogue"}}
    cfg["studies"] = {"rogue": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenarios": ["class0"],
                                "methods": ["retrain", "rogue"], "seeds": [0], "noise_floor": False}}
    return cfg


RUN = "results/runs/tiny_digits/tiny_cnn/tiny/s0/class0/rogue"
DATA = "results/data/tiny_digits"
GOLD = "results/models/tiny_digits/tiny_cnn/tiny/s0/retrain_class0.safetensors"


@needs_wall
@pytest.mark.integration
@pytest.mark.parametrize("warm", ["1", "0"], ids=["warm-runner-on", "warm-runner-off"])
def test_the_rogue_method_reaches_nothing_undeclared_by_any_route(tmp_path, warm):
    cfg = _rogue_config()
    env = {"UNLEARNBENCH_WARM": warm, "UNLEARNBENCH_METHOD_MODULES": "rogue_method",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "workflow"), str(HERE)])}
    run_snakemake(tmp_path, cfg, [GOLD, f"{DATA}/access/class0/retain.npz"], env=env)
    n_retain = len(json.loads((tmp_path / f"{DATA}/forget/class0.json").read_text())["retain"])
    holder = subprocess.Popen([sys.executable, "-c", "import numpy as np, sys, time; x = np.load(sys.argv[1])['x'].copy();"
                               " print('ready', flush=True); time.sleep(300)", str(tmp_path / f"{DATA}/access/class0/retain.npz")],
                              stdout=subprocess.PIPE, text=True)  # a concurrent job holding the retain set
    try:
        assert holder.stdout.readline().strip() == "ready"
        steal = tmp_path / "rogue-steal.py"
        steal.write_text(f"import shutil; shutil.copy({str(tmp_path / DATA)!r} + '/access/class0/retain.npz', "
                         f"{str(tmp_path / 'rogue-warm-copy')!r})\n")
        facts = {"steal_script": str(steal), "retain": f"{DATA}/access/class0/retain.npz", "archive": f"{DATA}/data.npz", "split": f"{DATA}/split.json",
                 "request": f"{DATA}/forget/class0.json", "gold": GOLD, "tmp": str(tmp_path), "holder_pid": holder.pid,
                 "n_retain": n_retain, "dataset": cfg["datasets"]["tiny_digits"], "data_root": "data"}
        run_snakemake(tmp_path, cfg, [f"{RUN}/unlearn.json"], env={**env, "ROGUE_FACTS": json.dumps(facts)})
    finally:
        holder.kill()
    info = json.loads((tmp_path / RUN / "unlearn.json").read_text())
    routes = info["info"]["routes"]
    assert routes.pop("in-process hook") == "1 hook(s) switched off"  # every route below met the OS wall alone
    assert routes.pop("gc: arrays of retain size") == "0"
    fds = routes.pop("descriptors it inherited")  # stdin/out/err and its log: no socket, no data file
    assert "socket:" not in fds and "results/data" not in fds and "results/models" not in fds, fds
    reached = {k: v for k, v in routes.items() if not v.startswith("blocked")}
    assert reached == {}, reached
    assert len(routes) == 29 and not any("AccessError" in v for v in routes.values())
    assert sorted(p.name for p in tmp_path.glob("rogue-*")) == ["rogue-steal.py"] and not (tmp_path / "results/rogue-leak.txt").exists()
    assert info["access"] == "forget"  # enforced: no "(declared, not enforced)"
    prov = json.loads((tmp_path / RUN / "model.safetensors.prov.json").read_text())
    assert prov["wall"]["enforced"] is True and prov["wall"]["landlock_abi"] >= 1 and prov["wall"]["seccomp"] is True
