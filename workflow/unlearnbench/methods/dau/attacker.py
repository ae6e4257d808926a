"""DAU's attacker (paper 003, Sec. 3.1): the self-attention membership inference attack of Yuan &
Zhang 2022 ("SAMIA", code Machine-Learning-Security-Lab/mia_prune, `transformer.py`), "retaining
its default configuration".

Inputs per sample x with label y, for a defender D with K classes (`defender_outputs`):
- p = softmax(D(x)) (K values);
- the sensitivity Delta(x) = (1/n) sum_{i=1..n} |softmax(D(x + sigma u_i)) - softmax(D(x))| / sigma,
  u_i ~ N(0, I) in [0,1] pixel space (unclipped), element-wise over the K classes, n = `sens_copies`
  (paper: 10). sigma = `sens_sigma` = 1e-3 and the division by sigma are SAMIA's code
  (`predict_target_sensitivity`, eps 1e-3, m 10); the paper writes eps ~ N(0, 1) and a norm:
  `sens_sigma=1, sens_scale=False, sens_reduce="norm"` (the L2 norm over classes, the same value
  repeated in every class token) is that literal reading;
- the one-hot label (K values).
Gradients flow from the attacker's output into D through p and through Delta (both the clean and
the noisy forward passes) whenever the caller does not disable them.

Architecture (SAMIA code): BatchNorm1d over the 3K inputs; tokens "class" (code): K tokens, token k
= (p_k, Delta_k, y_k), each projected by one Linear(3, hidden) + GELU; "source" (the DAU paper's
wording, "concatenate then encode with an FC layer"): 3 tokens (p, Delta, y), each a K-vector
projected by one Linear(K, hidden) + GELU. Then a TransformerEncoder (3 layers, 4 heads, feed-forward
128, dropout 0.2, GELU, post-norm), flatten, Linear(., hidden) + ReLU, Linear(hidden, 1): one
membership logit (member = forget sample, label 1; non-member = validation sample, label 0). SAMIA's
two-class softmax head is replaced by the equivalent single logit. Linear weights: Xavier normal,
zero bias (SAMIA's `weight_init`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...data import to_float
from ...errors import UserError
from ...io import load_checkpoint, read_npz, save_checkpoint, write_json
from ...models.checkpoint import load_model
from ...runtime import Job, sqrt
from ...training import make_optimizer
from .spec import ATTACK_ARCH_KEYS as ARCH_KEYS
from .spec import PRETRAIN_KEYS, SENS_KEYS

KIND = "dau_attacker"
TOKENS = ("class", "source")
SENS_REDUCE = ("abs", "norm")


class Attacker(nn.Module):
    def __init__(self, num_classes: int, hidden: int = 64, layers: int = 3, heads: int = 4, ff: int = 128,
                 dropout: float = 0.2, tokens: str = "class", input_bn: bool = True):
        super().__init__()
        if tokens not in TOKENS:
            raise UserError(f"dau attacker: attack_tokens must be one of {', '.join(TOKENS)}, got {tokens!r}")
        if hidden % heads:
            raise UserError(f"dau attacker: attack_hidden ({hidden}) must be divisible by attack_heads ({heads})")
        self.num_classes, self.tokens = int(num_classes), tokens
        k = self.num_classes
        self.bn = nn.BatchNorm1d(3 * k) if input_bn else nn.Identity()
        n_tok, tok_dim = (k, 3) if tokens == "class" else (3, k)
        self.n_tok = n_tok
        self.embed = nn.Linear(tok_dim, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=ff, dropout=dropout, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.fc = nn.Linear(hidden * n_tok, hidden)
        self.out = nn.Linear(hidden, 1)
        for m in self.modules():
            if type(m) is nn.Linear:  # SAMIA's weight_init matches the class name "Linear" exactly
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, p: torch.Tensor, sens: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        x = self.bn(torch.cat([p, sens, onehot], dim=1))          # [B, 3K]
        x = x.view(x.shape[0], 3, self.num_classes)              # [B, 3, K]: rows p, Delta, y
        if self.tokens == "class":
            x = x.transpose(1, 2)                                # [B, K, 3]: token k = (p_k, Delta_k, y_k)
        h = self.encoder(F.gelu(self.embed(x)))
        h = F.relu(self.fc(h.flatten(1)))
        return self.out(h).squeeze(1)


def build_attacker(num_classes: int, s: dict[str, Any]) -> Attacker:
    return Attacker(num_classes, hidden=int(s["attack_hidden"]), layers=int(s["attack_layers"]),
                    heads=int(s["attack_heads"]), ff=int(s["attack_ff"]), dropout=float(s["attack_dropout"]),
                    tokens=s["attack_tokens"], input_bn=bool(s["attack_input_bn"]))


# --------------------------------------------------------------------------- the defender's side
def defender_outputs(defender: nn.Module, x: torch.Tensor, s: dict[str, Any], gen: torch.Generator,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, logits, p, Delta) of a batch x (on the defender's device) in ONE forward pass over
    the clean batch and its `sens_copies` noisy copies. The caller sets the defender's mode; with
    BatchNorm in train mode the noisy copies would share batch statistics, so use eval mode."""
    n, copies, sigma = x.shape[0], int(s["sens_copies"]), float(s["sens_sigma"])
    noise = torch.randn((copies, *x.shape), generator=gen).to(x.device)
    xs = torch.cat([x, (x.unsqueeze(0) + sigma * noise).flatten(0, 1)])
    z = defender.forward_features(xs)
    logits = defender.head(z)
    prob = F.softmax(logits, dim=1)
    p, pn = prob[:n], prob[n:].view(copies, n, -1)
    diff = pn - p.unsqueeze(0)
    if s["sens_reduce"] == "abs":
        sens = diff.abs().mean(0)
    elif s["sens_reduce"] == "norm":
        sens = sqrt(diff.pow(2).sum(2).add(1e-12)).mean(0).unsqueeze(1).expand_as(p)
    else:
        raise UserError(f"dau: sens_reduce must be one of {', '.join(SENS_REDUCE)}, got {s['sens_reduce']!r}")
    if s["sens_scale"]:
        sens = sens / sigma
    return z[:n], logits[:n], p, sens


def onehot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(y.long(), num_classes).float()


def balanced_accuracy(member_logits: torch.Tensor, nonmember_logits: torch.Tensor) -> float:
    """Mean of the true-positive and true-negative rates (%), threshold logit 0."""
    tpr = (member_logits > 0).float().mean().item()
    tnr = (nonmember_logits <= 0).float().mean().item()
    return 50.0 * (tpr + tnr)


@torch.no_grad()
def all_outputs(defender: nn.Module, x: torch.Tensor, y: torch.Tensor, s: dict[str, Any], gen: torch.Generator,
                device: torch.device, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p, Delta, one-hot) of a whole set, eval mode, no gradient (CPU tensors)."""
    was = defender.training
    defender.eval()
    ps, ss = [], []
    for i in range(0, len(y), batch_size):
        _, _, p, sens = defender_outputs(defender, x[i:i + batch_size].to(device), s, gen)
        ps.append(p.cpu())
        ss.append(sens.cpu())
    defender.train(was)
    k = defender.head.out_features
    return torch.cat(ps), torch.cat(ss), onehot(y, k)


@torch.no_grad()
def attack_accuracy(attacker: Attacker, defender: nn.Module, forget_xy, val_xy, s: dict[str, Any], seed: int,
                    device: torch.device) -> float:
    """Balanced accuracy (%) of the attacker (eval mode) on every forget (member) vs val sample."""
    gen = torch.Generator().manual_seed(int(seed))
    was = attacker.training
    attacker.eval()
    out = []
    for x, y in (forget_xy, val_xy):
        p, sens, oh = all_outputs(defender, x, y, s, gen, device)
        out.append(torch.cat([attacker(*(t[i:i + 1024].to(device) for t in (p, sens, oh))).cpu()
                              for i in range(0, len(p), 1024)]))
    attacker.train(was)
    return balanced_accuracy(out[0], out[1])


# --------------------------------------------------------------------------- pretraining
class Stream:
    """Endless index batches of size min(batch_size, n): concatenated seeded permutations."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator):
        if n < 1:
            raise UserError("dau: an empty set cannot be sampled (forget or validation set)")
        self.n, self.bs, self.gen = n, min(int(batch_size), n), gen
        self.buf = torch.empty(0, dtype=torch.long)

    def next(self) -> torch.Tensor:
        while len(self.buf) < self.bs:
            self.buf = torch.cat([self.buf, torch.randperm(self.n, generator=self.gen)])
        out, self.buf = self.buf[:self.bs], self.buf[self.bs:]
        return out


def _holdout(n: int, frac: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=gen)
    k = int(round(frac * n)) if frac > 0 else 0
    k = min(max(k, 1 if frac > 0 else 0), n - 1)
    return order[k:], order[:k]


def pretrain_attacker(defender: nn.Module, forget_xy, val_xy, settings: dict[str, Any], seed: int,
                      device: torch.device) -> tuple[Attacker, dict]:
    """Train a fresh attacker to tell the defender's (frozen, eval mode) outputs on forget samples
    (members) from those on validation samples (non-members), paper Sec. 4.2 "Training Adjustments":
    `pretrain_iterations` Adam steps on balanced batches (`pretrain_batch_size` members + as many
    non-members) of BCE. The defender's inputs are computed once (one draw of the sensitivity
    noise per sample, as SAMIA). `pretrain_holdout` of each set is held out for the reported
    balanced accuracy; the defender is not modified."""
    s = settings
    gen = torch.Generator().manual_seed(int(seed))
    (xf, yf), (xv, yv) = forget_xy, val_xy
    k = defender.head.out_features
    flags = [q.requires_grad for q in defender.parameters()]
    for q in defender.parameters():
        q.requires_grad_(False)
    try:
        mem = all_outputs(defender, xf, yf, s, gen, device)
        non = all_outputs(defender, xv, yv, s, gen, device)
    finally:
        for q, f in zip(defender.parameters(), flags):
            q.requires_grad_(f)
    tr_m, ho_m = _holdout(len(yf), float(s["pretrain_holdout"]), gen)
    tr_n, ho_n = _holdout(len(yv), float(s["pretrain_holdout"]), gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        attacker = build_attacker(k, s).to(device)
    opt = make_optimizer(attacker.parameters(), "adam", float(s["pretrain_lr"]), weight_decay=float(s["pretrain_weight_decay"]))
    sm, sn = Stream(len(tr_m), s["pretrain_batch_size"], gen), Stream(len(tr_n), s["pretrain_batch_size"], gen)

    def batch(t, idx):
        return [a[idx].to(device) for a in t]

    losses = []
    attacker.train()
    for _ in range(int(s["pretrain_iterations"])):
        bm, bn = batch(mem, tr_m[sm.next()]), batch(non, tr_n[sn.next()])
        logits = attacker(*(torch.cat([a, b]) for a, b in zip(bm, bn)))
        target = torch.cat([torch.ones(len(bm[0])), torch.zeros(len(bn[0]))]).to(device)
        loss = F.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    attacker.eval()

    def acc(im, in_):
        if len(im) == 0 or len(in_) == 0:
            return None
        with torch.no_grad():
            return balanced_accuracy(attacker(*batch(mem, im)).cpu(), attacker(*batch(non, in_)).cpu())

    info = {"balanced_accuracy_holdout": acc(ho_m, ho_n), "balanced_accuracy_train": acc(tr_m, tr_n),
            "loss_first": losses[0] if losses else None,
            "loss_last": float(sum(losses[-50:]) / len(losses[-50:])) if losses else None,  # mean of the last 50
            "n_forget": int(len(yf)), "n_val": int(len(yv)), "n_holdout_forget": int(len(ho_m)),
            "n_holdout_val": int(len(ho_n)), "iterations": int(s["pretrain_iterations"])}
    return attacker, info


# --------------------------------------------------------------------------- files
def attacker_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that define a pretrained attacker (architecture, inputs, pretraining)."""
    missing = [k for k in ARCH_KEYS + SENS_KEYS + PRETRAIN_KEYS if k not in settings]
    if missing:
        raise UserError(f"dau attacker: settings lack {missing[0]!r}")
    return {k: settings[k] for k in ARCH_KEYS + SENS_KEYS + PRETRAIN_KEYS}


def save_attacker(path: str, attacker: Attacker, settings: dict[str, Any], meta: dict[str, Any]) -> None:

    save_checkpoint(path, attacker.state_dict(), {"kind": KIND, "num_classes": attacker.num_classes,
                                                   "settings": attacker_settings(settings), **meta})


def load_attacker(path: str, num_classes: int, device: Any = "cpu",
                  settings: dict[str, Any] | None = None) -> tuple[Attacker, dict]:
    """Rebuild a pretrained attacker. With `settings`, its architecture and input settings must match."""

    state, meta = load_checkpoint(path)
    if meta.get("kind") != KIND:
        raise UserError(f"{path} is not a DAU attacker (kind {meta.get('kind')!r}); point the attacker artefact at "
                        "the file of rule dau_attacker")
    if int(meta.get("num_classes", -1)) != int(num_classes):
        raise UserError(f"{path} attacks a {meta.get('num_classes')}-class model, this one has {num_classes} classes; "
                        "rebuild the attacker for this original model")
    saved = meta["settings"]
    if settings is not None:
        diff = [k for k in ARCH_KEYS + SENS_KEYS if k in settings and settings[k] != saved.get(k)]
        if diff:
            raise UserError(f"{path} was pretrained with {diff[0]}={saved.get(diff[0])!r}, the method has "
                            f"{settings[diff[0]]!r}; delete the attacker file and rerun")
    attacker = build_attacker(int(num_classes), saved)
    try:
        attacker.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{path} does not fit the DAU attacker architecture ({str(e).splitlines()[0]}); "
                        "delete it and rerun") from None
    return attacker.to(device), meta


def run_pretrain_attacker(job: Job, original_ckpt: str, forget_view: str, val_view: str, settings: dict) -> None:
    """Rule dau_attacker: pretrain the attacker against the original model on the forget (members)
    and validation (non-members) data views; writes the attacker (safetensors, kind dau_attacker),
    a deterministic info JSON with its held-out balanced accuracy and the timing sidecar."""

    dev = job.start()
    seed = job.seed
    s = attacker_settings(settings)
    defender, meta = load_model(original_ckpt, dev)
    sets = []
    for path in (forget_view, val_view):
        v = read_npz(path)
        if "x" not in v or "y" not in v:
            raise UserError(f"{path} is not a data view (needs arrays x and y); delete it and rerun")
        sets.append((to_float(v["x"]), torch.from_numpy(v["y"]).long()))
    with job.timed() as usage:
        attacker, info = pretrain_attacker(defender, sets[0], sets[1], s, seed, dev)
    info.update(settings=s, seed=seed, num_classes=meta["num_classes"])
    save_attacker(job.out["attacker"], attacker, s, {"seed": seed, "balanced_accuracy_holdout": info["balanced_accuracy_holdout"],
                                              "original_config_hash": meta.get("config_hash")})
    write_json(job.out["info"], info)
    ho = info["balanced_accuracy_holdout"]
    print(f"dau attacker: {s['pretrain_iterations']} iterations, held-out balanced accuracy "
          f"{'n/a' if ho is None else f'{ho:.1f}%'} in {usage.seconds:.1f}s", flush=True)
