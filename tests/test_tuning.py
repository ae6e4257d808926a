"""The tuning protocol: a separate cell (scenario + seed no table reports), the same budget for
every method, validation-only objective, and studies that run with the chosen values."""

import copy
import json

import pytest

from conftest import TINY_CONFIG, run_snakemake

pytestmark = pytest.mark.integration


def _config():
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["scenarios"] = {"tune_c5": {"type": "class", "classes": [5]}}
    cfg["methods"] = {"ft_tuned": {"method": "finetune", "tune": "tiny_tune"},
                      "ga_tuned": {"method": "gradient_ascent", "tune": "tiny_tune", "stop_forget_acc": 20.0}}
    cfg["tuning"] = {"tiny_tune": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenario": "tune_c5",
                                   "seed": 100, "budget": 2,
                                   "methods": {"ft_tuned": {"lr": [0.01, 0.1], "epochs": [1, 2]},
                                               "ga_tuned": {"lr": ["1e-4", "1e-3"]}}}}
    cfg["studies"] = {"tiny": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenarios": ["class0"],
                               "methods": ["original", "retrain", "ft_tuned", "ga_tuned"], "seeds": [0]}}
    return cfg


def test_tuned_values_come_from_the_tuning_cell(tmp_path):
    run_snakemake(tmp_path, _config(), ["results/tables/tiny.csv"])
    res = json.loads((tmp_path / "results/tuning/tiny_tune.json").read_text())
    assert {k: len(v) for k, v in res["trials"].items()} == {"ft_tuned": 2, "ga_tuned": 2}  # the same budget
    grid_ft = [{"epochs": e, "lr": lr} for lr in (0.01, 0.1) for e in (1, 2)]
    assert res["chosen"]["ft_tuned"] in grid_ft and res["chosen"]["ga_tuned"]["lr"] in (1e-4, 1e-3)
    for trials in res["trials"].values():  # scored on validation data, never on test data
        for t in trials:
            assert set(t) == {"overrides", "objective", "acc_val", "acc_val_forget"}
    assert res["cell"]["seed"] == 100 and res["cell"]["scenario"] == "tune_c5"
    runs = tmp_path / "results/runs/tiny_digits/tiny_cnn/tiny"
    assert {p.name for p in (runs / "s0/class0").iterdir()} == {"original", "retrain", "retrain_indep", "ft_tuned", "ga_tuned"}
    assert all(p.name.startswith("tune.") or p.name == "retrain" for p in (runs / "s100/tune_c5").iterdir())
    for inst in ("ft_tuned", "ga_tuned"):
        hp = json.loads((runs / "s0/class0" / inst / "unlearn.json").read_text())["hparams"]
        assert all(hp[k] == v for k, v in res["chosen"][inst].items()), inst


@pytest.mark.parametrize("change,message", [
    (lambda c: c["studies"]["tiny"].update(scenarios=["class0", "tune_c5"], seeds=[0, 100]), "reports the cell"),
    (lambda c: c["tuning"]["tiny_tune"].update(budget=5), "fewer than the budget"),
    (lambda c: c["tuning"]["tiny_tune"]["methods"].update(
        rl={"use_retain": [True, False]}) or c["methods"].update(rl={"method": "random_labels"}), "changes what the method reads"),
])
def test_bad_tuning_configs_are_one_line_errors(tmp_path, change, message):
    cfg = _config()
    change(cfg)
    proc = run_snakemake(tmp_path, cfg, ["results/tables/tiny.csv"], "-n", check=False)
    lines = [l for l in proc.stderr.splitlines() if l.startswith("config error")]
    assert proc.returncode != 0 and len(lines) == 1 and message in lines[0], proc.stderr[-1500:]


def test_a_tuned_artefact_setting_picks_the_chosen_candidate():
    """Tuning CLUE's mask fraction: the tuned run's job gets every candidate mask (kind@key) and
    uses the one whose key matches the chosen values."""
    from unlearnbench.config import artefact_key
    from unlearnbench.methods import create_method
    from unlearnbench.metrics.tuning import chosen_artefacts

    base = {"method": "clue", "mask_mode": "top_layer", "mask_fraction": 0.01}
    keys = {q: artefact_key(create_method({**base, "mask_fraction": q}), "mask") for q in (0.01, 0.05)}
    assert keys[0.01] != keys[0.05]
    inputs = {f"mask@{keys[q]}": f"mask_{q}.safetensors" for q in keys}
    assert chosen_artefacts({**base, "mask_fraction": 0.05}, inputs) == {"mask": "mask_0.05.safetensors"}
    assert chosen_artefacts({**base, "use_mask": False}, inputs) == {}
    import pytest

    from unlearnbench.errors import UserError

    with pytest.raises(UserError, match="no mask artefact with key"):
        chosen_artefacts({**base, "mask_fraction": 0.2}, inputs)
