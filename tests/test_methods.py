import numpy as np
import pytest
import torch

from helpers import make_setup
from unlearnbench.errors import AccessError, UserError
from unlearnbench.methods import Access, UnlearningMethod, build_unlearn_data, create_method, list_methods, register_method


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
    assert Access().label == "none (zero-shot)"
    assert Access(retain="subset", val=True).label == "retain-subset+val"


def test_unlearn_data_holds_only_declared_sets(setup):
    x, y, req = setup.x, setup.y, setup.request
    forget_only = build_unlearn_data(Access(forget=True), x, y, req["forget"], req["retain"], setup.split["val"], 10, [0], "class")
    assert forget_only._sets["retain"] is None and forget_only._sets["val"] is None
    assert len(forget_only.forget[1]) == len(req["forget"])
    with pytest.raises(AccessError, match="retain set"):
        forget_only.retain
    with pytest.raises(AccessError, match="val set"):
        forget_only.val
    retain_only = build_unlearn_data(Access(retain="full"), x, y, req["forget"], req["retain"], setup.split["val"], 10, [0], "class")
    with pytest.raises(AccessError, match="forget set"):
        retain_only.forget
    assert not (retain_only.retain[1] == 0).any()
    subset = build_unlearn_data(Access(retain="subset"), x, y, req["forget"], req["retain"], setup.split["val"], 10, [0], "class",
                                retain_per_class=5, seed=1)
    xs, ys = subset.retain
    assert sorted(np.bincount(ys.numpy(), minlength=10).tolist()) == [0] + [5] * 9
    zero = build_unlearn_data(Access(), x, y, req["forget"], req["retain"], setup.split["val"], 10, [0], "class")
    assert all(v is None for v in zero._sets.values())


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
        if name.startswith("_") or cls.kind == "reference" or create_method({"method": name}).needs:
            continue  # methods that need artefacts (unsir, clue) have their own access tests
        names.append(name)
    return names


@pytest.mark.parametrize("name", _artefact_free_methods())
def test_every_method_runs_within_its_declared_access(setup, name):
    """Run each registered method on data holding only what it declares: an undeclared read raises."""
    model, method, data = setup.run({"method": name})
    access = method.access()
    assert (data._sets["forget"] is not None) == access.forget
    assert (data._sets["retain"] is not None) == (access.retain is not None)
    assert (data._sets["val"] is not None) == access.val
    assert model(setup.x[:2]).shape == (2, 10)
