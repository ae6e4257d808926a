import copy

import numpy as np
import pytest
import torch

from helpers import build_unlearn_data, make_setup
from unlearnbench.errors import AccessError, UserError
from unlearnbench.methods import Access, UnlearningMethod, create_method, list_methods, register_method


@pytest.fixture(scope="module")
def setup():
    return make_setup()


def test_registry_has_spine_methods():
    assert {"original", "retrain", "finetune", "gradient_ascent", "random_labels"} <= set(list_methods())


def test_unknown_method_and_hyperparameters():
    with pytest.raises(UserError, match="unknown unlearning method"):
        create_method({"method": "magic"})
    with pytest.raises(UserError, match="no hyperparameter 'lrr'"):
        create_method({"method": "finetune", "lrr": 1})
    with pytest.raises(UserError, match="must be a number"):
        create_method({"method": "finetune", "lr": "fast"})
    m = create_method({"method": "finetune", "epochs": 2})
    assert m.hp["epochs"] == 2 and m.hp["lr"] == 0.02


def test_access_labels():
    assert create_method({"method": "finetune"}).access().label == "retain"
    assert create_method({"method": "gradient_ascent"}).access().label == "forget"
    assert create_method({"method": "random_labels", "use_retain": True}).access().label == "forget+retain"
    assert create_method({"method": "unsir", "retain_per_class": 7}).access().label == "retain-subset (7/class)"
    assert Access().label == "none (zero-shot)"
    assert Access(retain="subset", fraction=0.3, val=True).label == "retain-subset (0.3)+val"
    with pytest.raises(UserError, match="exactly one of per_class and fraction"):
        Access(retain="subset")


def test_hyperparameters_are_checked_and_coerced_once():
    assert create_method({"method": "finetune", "lr": "1e-3"}).hp["lr"] == 1e-3  # PyYAML reads 1e-3 as a string
    assert create_method({"method": "finetune", "epochs": "3"}).hp["epochs"] == 3
    for bad, msg in [({"lr": -0.1}, "lr must be > 0"), ({"epochs": 0}, "epochs must be >= 1"),
                     ({"batch_size": 0}, "batch_size must be >= 1"), ({"optimizer": "lion"}, "optimizer must be one of"),
                     ({"epochs": 2.5}, "epochs must be an integer")]:
        with pytest.raises(UserError, match=msg):
            create_method({"method": "finetune", **bad})
    with pytest.raises(UserError, match="passes must be a non-empty string of I"):
        create_method({"method": "unsir", "passes": "IXR"})


def test_unlearn_data_holds_only_declared_sets(setup):
    x, y, req = setup.x, setup.y, setup.request
    args = (x, y, req["forget"], req["retain"], setup.split["val"], 10, [0], "class")
    forget_only = build_unlearn_data(Access(forget=True), *args)
    assert set(forget_only._sets) == {"forget"}
    assert torch.equal(forget_only.forget[1], y[torch.as_tensor(req["forget"])])
    with pytest.raises(AccessError, match="retain set"):
        forget_only.retain
    with pytest.raises(AccessError, match="val set"):
        forget_only.val
    retain_only = build_unlearn_data(Access(retain="full"), *args)
    with pytest.raises(AccessError, match="forget set"):
        retain_only.forget
    assert len(retain_only.retain[1]) == len(req["retain"]) and not (retain_only.retain[1] == 0).any()
    subset = build_unlearn_data(Access(retain="subset", per_class=5), *args, seed=1)
    _, ys = subset.retain
    assert sorted(np.bincount(ys.numpy(), minlength=10).tolist()) == [0] + [5] * 9
    other_seed = build_unlearn_data(Access(retain="subset", per_class=5), *args, seed=2)
    assert not torch.equal(subset.retain[0], other_seed.retain[0])  # the subset is drawn with the run seed
    zero = build_unlearn_data(Access(), *args)
    assert zero._sets == {}


def test_a_method_reading_undeclared_data_fails(setup):
    @register_method("_sneaky_test_method")
    class Sneaky(UnlearningMethod):
        def access(self):
            return Access(forget=True)

        def unlearn(self, model, data, ctx):
            data.retain  # not declared
            return model

    with pytest.raises(AccessError):
        setup.run({"method": "_sneaky_test_method"})


@pytest.mark.parametrize("spec", [
    {"method": "finetune", "lr": 0.1, "epochs": 3},
    {"method": "gradient_ascent", "stop_forget_acc": 20.0},
    {"method": "random_labels", "lr": 1e-3, "epochs": 5},
])
def test_methods_forget_without_destroying(setup, spec):
    before_f = setup.accuracy(setup.model, setup.request["forget"])
    before_t = setup.accuracy(setup.model, setup.test_retain())
    model, _, _ = setup.run(spec)
    after_f = setup.accuracy(model, setup.request["forget"])
    after_t = setup.accuracy(model, setup.test_retain())
    assert before_f > 80
    assert after_f < before_f - 30, f"{spec['method']} did not forget: {before_f:.1f} -> {after_f:.1f}"
    assert after_t > 50, f"{spec['method']} destroyed the model: test-retain {before_t:.1f} -> {after_t:.1f}"


def test_random_labels_never_assigns_the_true_label():
    from unlearnbench.methods.random_labels import random_other_labels
    from unlearnbench.runtime import generator

    y = torch.arange(10).repeat(50)
    new = random_other_labels(y, 10, generator(0))
    assert not (new == y).any() and set(new.tolist()) == set(range(10))


def test_same_seed_same_model(setup):
    a, _, _ = setup.run({"method": "finetune", "epochs": 1}, seed=3)
    b, _, _ = setup.run({"method": "finetune", "epochs": 1}, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def _artefact_free_methods():
    from unlearnbench.methods import get_method

    names = []
    for name in list_methods():
        cls = get_method(name)
        if name.startswith("_") or cls.kind == "reference" or create_method({"method": name}).needs():
            continue  # methods that need artefacts (unsir, clue, ...) have their own access tests
        names.append(name)
    return names


class _Recording:
    """UnlearnData wrapper that records which sets a method read."""

    def __init__(self, data):
        self._data, self.read = data, set()

    def __getattr__(self, name):
        if name in ("forget", "retain", "val"):
            self.read.add(name)
        return getattr(self._data, name)


@pytest.mark.parametrize("name", _artefact_free_methods())
def test_every_method_runs_within_its_declared_access(setup, name):
    """Each registered method, given only its declared sets: it reads nothing else, it reads what
    it declares (so the declaration is not an over-claim), and it changes the model's outputs."""
    import copy

    from unlearnbench.methods import get_method

    method = create_method({"method": name, **get_method(name).smoke})
    access = method.access()
    data = _Recording(setup.data_for(method))
    model = method.unlearn(copy.deepcopy(setup.model), data, setup.context())
    declared = {k for k, v in (("forget", access.forget), ("retain", access.retain is not None), ("val", access.val)) if v}
    assert data.read == declared, f"{name} declares {declared} but read {data.read}"
    xf, _ = setup.rd.tensors(setup.rd.forget[:64])
    with torch.no_grad():
        assert not torch.allclose(model(xf), setup.model(xf)), f"{name} left the forget outputs unchanged"


# --------------------------------------------------------------------------- every method through the workflow
def _registered() -> list[str]:
    from unlearnbench.methods import get_method

    return [n for n in list_methods() if not n.startswith("_") and get_method(n).kind != "reference"]


@pytest.fixture(scope="module")
def registry_build(tmp_path_factory):
    """One tiny study with one instance of every registered method at its smoke settings, artefact
    methods included (GANs, inversions, noise, masks, attackers, update logs): built by the workflow,
    so each unlearn job reads only its declared files (the sandbox refuses anything else)."""
    from conftest import TINY_CONFIG, run_snakemake
    from unlearnbench.methods import get_method

    wd = tmp_path_factory.mktemp("registry")
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["methods"].update({f"c_{n}": {"method": n, **get_method(n).smoke} for n in _registered()})
    cfg["studies"] = {"conformance": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny",
                                      "scenarios": ["class0"], "seeds": [0], "noise_floor": False,
                                      "methods": ["original", "retrain"] + [f"c_{n}" for n in _registered()]}}
    run_snakemake(wd, cfg, ["results/tables/conformance.csv"])
    return wd


@pytest.mark.integration
@pytest.mark.parametrize("name", _registered())
def test_every_registered_method_runs_in_the_workflow_within_its_access(registry_build, name):
    """Parametrised over the registry (as timm tests every registered model): the method's unlearn
    job ran inside its declared access — its inputs are the original, the request card, exactly its
    declared data views and its artefacts — and it changed the model's outputs on the forget set."""
    import json

    from unlearnbench.io import read_npz
    from unlearnbench.methods import get_method

    method = create_method({"method": name, **get_method(name).smoke})
    run = registry_build / "results/runs/tiny_digits/tiny_cnn/tiny/s0/class0" / f"c_{name}"
    info = json.loads((run / "unlearn.json").read_text())
    access = method.access()
    # a retain subset that asks for more than a class holds is labelled "retain (all)"
    assert info["access"] == access.label or (access.retain == "subset" and "retain (all)" in info["access"]), \
        (info["access"], access.label)
    inputs = json.loads((run / "model.safetensors.prov.json").read_text())["inputs"]
    data_inputs = sorted(p for p in inputs if "/data/" in p)
    views = {f"{v}.npz" for v in access.views(0).values()}
    assert {p.rsplit("/", 1)[-1] for p in data_inputs if "/access/" in p} == views, data_inputs
    assert all("/access/" in p or p.endswith(".card.json") for p in data_inputs), data_inputs  # never the archive or split
    assert len([p for p in inputs if "/artefacts/" in p and not p.endswith(".json")]) >= (1 if method.needs() else 0)
    forget = json.loads((registry_build / "results/data/tiny_digits/forget/class0.json").read_text())["forget"]
    after = read_npz(run / "outputs.npz")["logits"][forget]
    before = read_npz(registry_build / "results/models/tiny_digits/tiny_cnn/tiny/s0/original.outputs.npz")["logits"][forget]
    assert not np.allclose(after, before), f"{name} left the forget outputs unchanged"
