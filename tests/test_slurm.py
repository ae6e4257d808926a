"""The Slurm profile, run for real on a one-node Slurm cluster started on this machine
(tests/slurm/cluster.sh: Debian's slurm-wlm + slurmdbd + munge + mariadb). Skipped, with the reason
printed, when the machine cannot start Slurm (no root, no apt, daemons refuse to start)."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, TINY_CONFIG

pytestmark = pytest.mark.integration
PROFILE = REPO / "workflow" / "profiles" / "slurm"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("slurm")
    proc = subprocess.run(["bash", str(REPO / "tests/slurm/cluster.sh"), "start", str(d)], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        reason = (proc.stdout.strip().splitlines() or [proc.stderr.strip()[-300:]])[-1]
        print(f"Slurm test skipped: {reason}")
        pytest.skip(reason)
    import getpass

    env = {**os.environ, "SLURM_CONF": proc.stdout.strip().splitlines()[-1], "PYTHONPATH": str(REPO / "workflow")}
    env.setdefault("USER", getpass.getuser())  # the plugin looks up the account of $USER
    yield env
    subprocess.run(["bash", str(REPO / "tests/slurm/cluster.sh"), "stop", str(d)], capture_output=True, timeout=60)


def _config():
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["training"]["tiny"]["epochs"] = 2
    cfg["methods"] = {"finetune": {"method": "finetune", "epochs": 1, "tune": None}}  # config.yaml tunes it on digits
    cfg["studies"] = {"tiny": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenarios": ["class0"],
                               "methods": ["original", "retrain", "finetune"], "seeds": [0], "noise_floor": False}}
    return cfg


def _snakemake(work: Path, env: dict, cfg: dict, *extra: str, timeout: int = 900, background: bool = False):
    work.mkdir(parents=True, exist_ok=True)
    (work / "c.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", str(work / "c.yaml"),
           "--workflow-profile", str(PROFILE), "results/tables/tiny.csv", *extra]
    if background:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _sacct(env: dict) -> list[dict]:
    out = subprocess.run(["sacct", "-a", "-X", "-P", "-n", "--starttime", "now-2hours", "-o",
                          "JobID,JobName,State,AllocCPUS,ReqMem,Timelimit,Comment"], env=env, capture_output=True,
                         text=True).stdout
    keys = ["id", "name", "state", "cpus", "mem", "time", "comment"]
    return [dict(zip(keys, l.split("|"))) for l in out.splitlines() if l.strip()]


def test_profile_runs_the_study_through_sbatch(cluster, tmp_path):
    before = {j["id"] for j in _sacct(cluster)}
    proc = _snakemake(tmp_path / "w", cluster, _config())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (tmp_path / "w/results/tables/tiny.md").exists()
    time.sleep(2)
    jobs = [j for j in _sacct(cluster) if j["id"] not in before]
    assert jobs, "no job went through sbatch"
    assert all(j["state"] == "COMPLETED" for j in jobs), jobs
    # every remote rule asked for what the rules and the profile declare: threads 1 (THREADS),
    # memory and time from the profile's default-resources / set-resources
    prof = yaml.safe_load(PROFILE.joinpath("config.yaml").read_text())
    log = proc.stdout + proc.stderr
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == len(jobs), log[-3000:]
    mems = {int(re.sub(r"\D", "", j["mem"])) for j in jobs}
    allowed = {prof["default-resources"]["mem_mb"]} | {v["mem_mb"] for v in prof["set-resources"].values() if "mem_mb" in v}
    assert mems <= allowed, (mems, allowed)
    assert {j["cpus"] for j in jobs} == {"1"}
    # a group job (unlearn + evaluate) asks for the sum of its members' runtimes
    runtimes = {prof["default-resources"]["runtime"]} | {v["runtime"] for v in prof["set-resources"].values() if "runtime" in v}
    allowed_min = runtimes | {a + b for a in runtimes for b in runtimes}
    limits = {j["time"] for j in jobs}
    assert limits <= {f"{m // 60:02d}:{m % 60:02d}:00" for m in allowed_min}, limits
    # trivial rules ran locally (not one sbatch job each), unlearn + evaluate went as one group job
    assert not re.search(r"rule (data_view|make_split|report_study)[^\n]*\n[^\n]*SLURM", log)


def test_a_failing_cluster_job_names_its_log_and_a_rerun_resumes(cluster, tmp_path):
    cfg = _config()
    work = tmp_path / "w"
    assert _snakemake(work, cluster, cfg, "--omit-from", "train_retrain").returncode == 0  # all but the retrain
    split = work / "results/data/tiny_digits/split.json"
    text, st = split.read_text(), split.stat()
    split.write_text(text.replace("[", "[99999, ", 1))  # an out-of-range index: the retrain job fails
    os.utime(split, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: the finished original stays valid
    proc = _snakemake(work, cluster, cfg)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "error in rule train_retrain:" in out and "outside the archive" in out, out[-3000:]
    assert "results/logs/train_retrain/" in out  # where to look
    split.write_text(text)
    os.utime(split, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = _snakemake(work, cluster, cfg)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "train_original" not in re.findall(r"rule (\w+):", again.stdout + again.stderr)  # resumed, not redone


def test_scancel_of_a_running_job_ends_the_run(cluster, tmp_path):
    cfg = _config()
    cfg["training"]["tiny"]["epochs"] = 60  # a job that runs long enough to be cancelled
    proc = _snakemake(tmp_path / "w", cluster, cfg, background=True)
    t0 = time.time()
    job = None
    while time.time() - t0 < 300 and job is None:
        running = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=cluster, capture_output=True, text=True).stdout.split()
        if "RUNNING" in running:
            job = running[running.index("RUNNING") - 1]
        time.sleep(1)
    assert job, "no job started"
    subprocess.run(["scancel", job], env=cluster, check=True)
    try:
        out, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("Snakemake kept waiting after scancel")
    assert proc.returncode != 0 and "Error" in out
