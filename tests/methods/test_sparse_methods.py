"""Every registered method keeps the pruned weights of a 95 %-sparse original at exactly zero through
unlearning (issue 10). Each method runs through `pipeline.unlearn_keeping_mask`, the function the
unlearn job uses, on a tiny digits SmallCNN pruned by the prune_original stage
(`parts.pruning.run_prune_original`: OMP 95 %, rewind to epoch 2, retrain with the mask), with
`{"method": name, **cls.smoke}` (plus cheap artefact settings where smoke leaves them expensive).
Methods that read artefacts get them from their own stage functions (the functions the artefact
rules call) at tiny settings, made against the sparse original; Amnesiac's update log is the
exception: its stage (`run_record_update_log`) replays a dense original's training only, so the log
here is recorded (same `UpdateLog` recorder) while the sparse model trains with its mask.

Checked per method: the number of exact zeros at the pruned positions equals the number of pruned
positions before and after unlearning, every forward pass during unlearning computes with zeros
there, the surviving weights did change (the method did something), and the model still answers.
"""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import stage_job, unlearn_data
from unlearnbench.data import RequestData, make_split, prepare_dataset, to_float
from unlearnbench.io import write_json, write_npz
from unlearnbench.methods import Context, create_method, get_method, list_methods
from unlearnbench.models.checkpoint import load_model, model_meta, new_model, save_model
from unlearnbench.parts.pruning import enforce_mask, load_mask, mask_violations, omp_mask, run_prune_original
from unlearnbench.pipeline import run_data_view, run_make_forget_request, unlearn_keeping_mask
from unlearnbench.runtime import seed_everything
from unlearnbench.training import train

CPU = torch.device("cpu")
DATASET = {"source": "digits", "image_size": 8, "channels": 1, "val_fraction": 0.1, "test_fraction": 0.2}
SPEC = {"arch": "smallcnn", "width": 16}
RECIPE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 8, "batch_size": 64,
          "schedule": "cosine"}
SPARSITY = 0.95
FORGET_CLASS = 0

# Cheap artefact settings for methods whose smoke hyperparameters leave the artefact expensive
# (each artefact stage function runs at these settings).
TINY = {
    "mugan": {"gan_z_dim": 16, "gan_g_width": 16, "gan_d_width": 16, "gan_epochs": 15, "gan_batch_size": 16,
              "gan_lr": 2e-3, "samples_per_class": 2, "max_draw_factor": 2000.0, "sample_batch": 256},
    "zmugan": {"inv_members": 1, "inv_steps": 120, "inv_batch_size": 32, "inv_dec_layers": 1, "inv_width": 16,
               "samples_per_class": 2, "max_draw_factor": 2000.0, "sample_batch": 256},
    "uisps": {"inv_samples": 8, "inv_iters": 20},
    "sps": {"inv_samples": 8, "inv_iters": 20},
    "unsir": {"noise_steps": 3, "noise_batch": 16},
    "clue": {"epochs": 1},
    "amnesiac": {"repair_steps": 5},
}


def _methods() -> list[str]:
    return [n for n in list_methods() if not n.startswith("_") and get_method(n).kind != "reference"]


def _spec(name: str) -> dict:
    cls = get_method(name)
    spec = {"method": name, **cls.smoke}
    spec.update({k: v for k, v in TINY.get(name, {}).items() if k in cls.defaults})
    return spec


class World:
    """Files as the workflow writes them: archive, split, request, views, dense and sparse originals."""

    def __init__(self, root):
        self.root = root
        d = prepare_dataset(DATASET, "unused")
        split = make_split(d["y"], d["is_test"], DATASET["val_fraction"], DATASET["test_fraction"], seed=0)
        self.data, self.split = str(root / "data.npz"), str(root / "split.json")
        write_npz(self.data, **d)
        write_json(self.split, {k: v.tolist() for k, v in split.items()})
        x, y = to_float(d["x"]), torch.from_numpy(d["y"]).long()
        tr = torch.as_tensor(split["train"])
        seed_everything(0, 1)  # as train_original
        dense = new_model(d, SPEC)
        train(dense, x[tr], y[tr], RECIPE, 0, CPU)
        self.dense = str(root / "dense.safetensors")
        save_model(self.dense, dense, model_meta(d, SPEC, kind="original", seed=0))
        self.original = str(root / "original.safetensors")
        self.mask_file = str(root / "original.mask.safetensors")
        run_prune_original(stage_job(0, ckpt=self.original, mask=self.mask_file, info=root / "original.json",
                                     time=root / "original.time.json"),
                           self.data, self.split, self.dense, DATASET, SPEC, RECIPE, {"sparsity": SPARSITY, "rewind_epoch": 2})
        self.mask = load_mask(self.mask_file)[0]
        self.request, card = str(root / "request.json"), str(root / "card.json")
        run_make_forget_request(stage_job(request=self.request, card=card), self.data, self.split,
                                {"type": "class", "classes": [FORGET_CLASS]})
        self.rd = RequestData.load(self.data, self.split, self.request)
        self.arrays, self.x, self.y, self.train_idx = d, x, y, tr
        self._cache: dict = {}

    def view(self, name: str) -> str:
        path = self.root / "access" / f"{name}.npz"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            run_data_view(stage_job(view=path), self.data, self.split, self.request, name)
        return str(path)

    def sparse_model(self):
        return load_model(self.original, CPU)[0]

    # ------------------------------------------------------------------ artefacts, by kind
    def artefacts(self, method) -> dict:
        return {kind: self.artefact(method, kind) for kind in method.needs()}

    def artefact(self, method, kind: str):
        settings = method.artefact_settings(kind)
        key = (kind, repr(sorted(settings.items())))
        if key not in self._cache:
            maker = getattr(self, f"make_{kind}", None)
            if maker is None:
                raise AssertionError(f"method {method.name} needs artefact {kind!r}: add a make_{kind} to "
                                     "tests/test_sparse_methods.py (its stage function at tiny settings)")
            out = self.root / "artefacts" / f"{kind}_{len(self._cache)}"
            out.mkdir(parents=True)
            self._cache[key] = maker(method, settings, out)
        return self._cache[key]

    @staticmethod
    def _outs(out, stem, *exts):
        return [str(out / f"{stem}{e}") for e in exts]

    def make_noise(self, m, s, out):
        from unlearnbench.methods.unsir import run_make_noise

        paths = []
        for c in self.rd.forget_classes:
            files = self._outs(out, f"class{c}", ".safetensors", ".json", ".time.json")
            run_make_noise(stage_job(0, **dict(zip(("noise", "info", "time"), files))), self.original, c, s)
            paths.append(files[0])
        return paths

    def make_mask(self, m, s, out):
        from unlearnbench.methods.clue import run_make_mask

        files = self._outs(out, "mask", ".safetensors", ".json", ".time.json")
        run_make_mask(stage_job(0, **dict(zip(("mask", "info", "time"), files))), self.original, self.view("forget"), s)
        return files[0]

    def make_attacker(self, m, s, out):
        from unlearnbench.methods.dau.attacker import run_pretrain_attacker

        files = self._outs(out, "attacker", ".safetensors", ".json", ".time.json")
        run_pretrain_attacker(stage_job(0, **dict(zip(("attacker", "info", "time"), files))), self.original, self.view("forget"), self.view("val"), s)
        return files[0]

    def make_update_log(self, m, s, out):
        """The log of a sparse model trained with the mask (run_record_update_log is dense-only); the
        method then unlearns that model, the one the log belongs to (see `model_for`)."""
        from unlearnbench.methods.amnesiac.update_log import UpdateLog

        classes = s.get("log_classes") or self.rd.forget_classes
        seed_everything(0, 1)
        model = new_model(self.arrays, SPEC)
        log = UpdateLog(self.y[self.train_idx], classes, 10, sample_ids=self.train_idx, buffers=s.get("log_buffers", False))
        with enforce_mask(model, self.mask):
            log.start(model)
            train(model, self.x[self.train_idx], self.y[self.train_idx], RECIPE, 0, CPU, on_batch=log.on_batch)
        assert mask_violations(model, self.mask) == 0
        path = str(out / "update_log.safetensors")
        log.save(path, model)
        self.log_model = str(out / "logged_original.safetensors")
        save_model(self.log_model, model, model_meta(self.arrays, SPEC, kind="original", seed=0))
        return path

    def make_gan(self, m, s, out):
        from unlearnbench.parts.gan import run_train_gan

        paths = []
        for c in range(10):
            files = self._outs(out, f"class{c}", ".safetensors", ".json", ".time.json")
            run_train_gan(stage_job(0, **dict(zip(("generator", "info", "time"), files))), self.data, self.split, c, s)
            paths.append(files[0])
        return paths

    def make_synthetic_gan(self, m, s, out):
        from unlearnbench.parts.synthetic import run_make_synthetic

        files = self._outs(out, "synthetic", ".npz", ".json", ".time.json", ".png")
        run_make_synthetic(stage_job(0, **dict(zip(("synthetic", "info", "time", "grid"), files))), self.original, self.artefact(m, "gan"), "gan", s)
        return files[0]

    def make_kegnet(self, m, s, out):
        from unlearnbench.parts.kegnet import run_train_inversion

        paths = []
        for i in range(int(m.hp["inv_members"])):
            files = self._outs(out, f"member{i}", ".safetensors", ".json", ".time.json")
            run_train_inversion(stage_job(0, **dict(zip(("generator", "info", "time"), files))), self.original, s, i)
            paths.append(files[0])
        return paths

    def make_synthetic_inversion(self, m, s, out):
        from unlearnbench.parts.synthetic import run_make_synthetic

        files = self._outs(out, "synthetic", ".npz", ".json", ".time.json", ".png")
        run_make_synthetic(stage_job(0, **dict(zip(("synthetic", "info", "time", "grid"), files))), self.original, self.artefact(m, "kegnet"), "inversion", s)
        return files[0]

    def make_inversion(self, m, s, out):
        from unlearnbench.parts.inversion import run_invert_class

        paths = []
        for c in self.rd.forget_classes:
            files = self._outs(out, f"class{c}", ".npz", ".json", ".time.json", ".png")
            run_invert_class(stage_job(0, **dict(zip(("samples", "info", "time", "grid"), files))), self.original, c, s)
            paths.append(files[0])
        return paths

    def make_importance(self, m, s, out):
        from unlearnbench.methods.uisps import importance_view
        from unlearnbench.methods.uisps.suppression import run_importance

        files = self._outs(out, "importance", ".safetensors", ".json", ".time.json")
        view = self.view(importance_view(s["fisher_retain_fraction"], 0))
        run_importance(stage_job(0, **dict(zip(("importance", "info", "time"), files))), self.original,
                       self.artefact(m, "inversion"), view, s)
        return files[0]

    def model_for(self, method):
        if "update_log" in method.needs():
            return load_model(self.log_model, CPU)[0]
        return self.sparse_model()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("sparse_methods"))


def test_the_original_is_95_percent_sparse(world):
    model = world.sparse_model()
    n = sum(m.numel() for m in world.mask.values())
    pruned = sum(int((~m).sum()) for m in world.mask.values())
    assert pruned == round(SPARSITY * n)
    named = dict(model.named_parameters())
    assert sum(int((named[k].detach()[~m] == 0).sum()) for k, m in world.mask.items()) == pruned
    assert mask_violations(model, world.mask) == 0
    # OMP keeps the largest magnitudes of the dense original (before the rewind and retrain)
    dense = load_model(world.dense, CPU)[0]
    for k, m in omp_mask(dense, SPARSITY).items():
        assert torch.equal(m, world.mask[k]), k


def _pruned_zeros(model, mask) -> int:
    named = dict(model.named_parameters())
    return int(sum((named[k].detach()[~m.to(named[k].device)] == 0).sum() for k, m in mask.items()))


class _ForwardWatch:
    """Forward hooks on every masked module: counts forwards that computed with a non-zero pruned weight."""

    def __init__(self, model, mask):
        self.calls, self.bad, self.handles = 0, 0, []
        by_module: dict = {}
        for name, m in mask.items():
            owner, _, attr = name.rpartition(".")
            by_module.setdefault(owner, []).append((attr, ~m))
        for owner, attrs in by_module.items():
            self.handles.append(model.get_submodule(owner).register_forward_hook(self._hook(attrs)))

    def _hook(self, attrs):
        def hook(module, args, output):
            self.calls += 1
            if any(bool((getattr(module, a).detach()[p.to(getattr(module, a).device)] != 0).any()) for a, p in attrs):
                self.bad += 1
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize("name", _methods())
def test_every_method_keeps_pruned_weights_at_zero(world, name):
    method = create_method(_spec(name))
    data = unlearn_data(method.access(), world.rd, 0)
    artefacts = world.artefacts(method)
    model = world.model_for(method)
    mask = world.mask
    n_pruned = sum(int((~m).sum()) for m in mask.values())
    assert _pruned_zeros(model, mask) == n_pruned  # before
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    ctx = Context(device=CPU, seed=0, original=frozen, artefacts=artefacts, log=lambda s: None, input_shape=(1, 8, 8))
    watch = _ForwardWatch(model, mask)
    seed_everything(0, 1)
    try:
        out = unlearn_keeping_mask(method, model, data, ctx, mask)
    finally:
        watch.remove()
    assert _pruned_zeros(out, mask) == n_pruned, f"{name}: pruned weights became non-zero"  # after
    assert mask_violations(out, mask) == 0
    if out is model:  # a method that builds a new module (GKT's student) is masked when it returns
        assert watch.bad == 0, f"{name}: {watch.bad} of {watch.calls} forward passes used non-zero pruned weights"
    state = out.state_dict()
    kept_changed = any(not torch.equal(state[k][m], before[k][m]) for k, m in mask.items())
    other_changed = any(not torch.equal(state[k], before[k]) for k in before if k not in mask and k in state
                        and state[k].shape == before[k].shape)
    assert kept_changed or other_changed, f"{name} left the model unchanged"
    xf, _ = world.rd.tensors(world.rd.forget[:32])
    with torch.no_grad():
        assert torch.isfinite(out.eval()(xf)).all()


def test_a_method_that_writes_pruned_weights_is_caught_or_rezeroed(world):
    """The enforcement itself: a method that adds noise to every weight in place (as Fisher forgetting
    does) ends with the pruned entries at zero; one that returns a fresh dense module is masked."""
    from unlearnbench.methods import Access, UnlearningMethod

    class Noisy(UnlearningMethod):
        name = "_noisy"

        def access(self):
            return Access()

        def unlearn(self, model, data, ctx):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.1)
            return model

    class Fresh(Noisy):
        def unlearn(self, model, data, ctx):
            return new_model(world.arrays, SPEC)

    data = unlearn_data(Access(), world.rd, 0)
    for cls in (Noisy, Fresh):
        model = world.sparse_model()
        ctx = Context(device=CPU, seed=0, original=copy.deepcopy(model), artefacts={}, log=lambda s: None)
        out = unlearn_keeping_mask(cls(), model, data, ctx, world.mask)
        assert mask_violations(out, world.mask) == 0
        assert _pruned_zeros(out, world.mask) == sum(int((~m).sum()) for m in world.mask.values())
