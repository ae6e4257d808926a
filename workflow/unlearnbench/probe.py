"""The numerics probe: one fixed computation through every kernel family the pipeline uses, hashed
part by part, to compare the kernel paths two CPUs take (README "Numerics"; tests/golden/probe.txt)."""

from __future__ import annotations

import hashlib
import sys

from .errors import UserError
from .infra.numerics import check, export


def probe(threads: int = 1) -> dict[str, str]:
    """{part: digest} of a fixed computation through every kernel family the pipeline uses: one
    SGD step of every registered architecture, an Adam step, numpy's vector math and sort, OpenBLAS
    products, and the scikit-learn attack models. Two CPUs agree on every part exactly when they
    run the same kernel paths: `python -m unlearnbench probe` on each and compare."""
    import numpy as np  # here, not at the top: the mode's variables must be set before they load
    import torch

    from .models import build_model, list_models
    from .runtime import sqrt
    from .training import make_optimizer

    torch.set_num_threads(threads)
    h = lambda *arrays: hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()[:16]
    out = {}
    sizes = {"smallcnn": {"width": 8}, "vit": {"patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2}}
    for arch in list_models():
        torch.manual_seed(0)
        m = build_model(arch, in_channels=3, num_classes=10, image_size=16, mean=[0.5] * 3, std=[0.25] * 3,
                        **sizes.get(arch, {}))
        x, y = torch.rand(4, 3, 16, 16), torch.arange(4)
        opt = make_optimizer(m.parameters(), "sgd", 0.1, 0.9)
        for _ in range(2):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        m.eval()
        with torch.no_grad():
            logits = m(x)
        out[f"torch/{arch}"] = h(logits.numpy(), *[p.detach().numpy() for p in m.parameters()])
    torch.manual_seed(1)
    w = (0.1 * torch.randn(64, 64)).requires_grad_(True)
    opt = make_optimizer([w], "adamw", 1e-3, weight_decay=0.01)
    for _ in range(3):
        opt.zero_grad()
        loss = torch.log_softmax(w @ w.T, 1).sum() + torch.tanh(w).exp().sum() + torch.erf(w).sum()
        (loss + sqrt(w.pow(2).sum(0) + 1e-8).sum() + torch.nn.functional.gelu(w).sum()).backward()
        opt.step()
    assert torch.isfinite(w).all()
    out["torch/adam+math"] = h(w.detach().numpy(), torch.randperm(1000).numpy(), torch.randn(1000).numpy())
    rng = np.random.default_rng(0)
    a = rng.standard_normal((257, 129))
    a32 = a.astype(np.float32)
    out["numpy/math"] = h(np.exp(a), np.log(np.abs(a) + 1e-3), np.tanh(a32), np.exp(a32), a.sum(0), a32.mean(1),
                          np.argsort(np.round(a[:, 0], 1), kind="quicksort"), np.sort(a32, axis=None))
    out["numpy/blas"] = h(a @ a.T, a32.T @ a32, a @ a[0])
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    xs = rng.standard_normal((400, 3))
    ys = (xs[:, 0] + 0.5 * rng.standard_normal(400) > 0).astype(int)
    svc = SVC(C=3, kernel="rbf", gamma="auto").fit(xs, ys)
    lr = LogisticRegression(class_weight="balanced").fit(xs, ys)
    out["sklearn/svc+lr"] = h(svc.decision_function(xs), lr.coef_, lr.predict_proba(xs))
    return out


def run_probe(mode: str = "portable", threads: int = 1) -> int:
    """`python -m unlearnbench probe [portable|native]`: the probe in a process that set the mode's
    variables before torch and numpy loaded; prints one digest per part and their total."""
    if any(m in sys.modules for m in ("torch", "numpy")):
        raise SystemExit("probe: torch or numpy is already loaded; run it as its own process")
    try:
        export(mode, threads)
    except UserError as e:
        raise SystemExit(str(e))
    parts = probe(threads)
    f = check(mode)
    total = hashlib.sha256("".join(f"{k}={v}\n" for k, v in sorted(parts.items())).encode()).hexdigest()[:16]
    print(f"mode {mode}, ATen {f.get('aten_capability')}, numpy {','.join(f.get('numpy_dispatch', []))}, threads {threads}")
    for k, v in sorted(parts.items()):
        print(f"{k:24s} {v}")
    print(f"{'total':24s} {total}")
    return 0
