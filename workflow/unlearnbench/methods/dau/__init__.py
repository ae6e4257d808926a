"""DAU, Discriminative Adversarial Unlearning (Sharma et al., paper 003): a min-max game between an
attacker A (a membership-inference transformer, `attacker.py`) that tells the defender's
outputs on forget samples (members) from those on validation samples (non-members), and the
defender D (the model being unlearned), Algorithm 1. Per iteration:
1. draw a retain batch (`batch_size`) and a forget and a validation batch (`attack_batch_size`
   each); D's outputs on the forget/val batches, with their sensitivity, are A's inputs;
2. `attack_steps` Adam steps of A (`attack_lr`) maximising
   L_A = mean log A(forget) + mean log(1 - A(val))  (BCE, member = 1), the first on this batch's
   (detached) outputs, further ones on fresh batches;
3. `defender_steps` steps of D (SGD, `lr`) on
   loss = w_CE * CE(retain) + alpha * L_fool + beta * V_ss(forget features, val features)    (Eq. 3)
   with the updated A in eval mode. L_fool (`fool_loss`): "nonsaturating" (default, the paper's
   Sec. 3.3 practical adjustment, GAN-style label flip) = BCE(A(forget), non-member) +
   BCE(A(val), member); "nonsaturating_forget" = the forget term only; "minimax" = L_A itself
   (Eq. 1 literally). w_CE (`ce_weighting`): "paper" = 1 (Eq. 1, Eq. 3, Algorithm 1 line 8);
   "convex" = 1 - alpha. V_ss: Barlow Twins (`barlow_twins.py`, lambda `bt_lambda`) between
   penultimate features (`forward_features`) of the forget batch and a validation batch paired
   by `bt_pairing`.
Class-wise forgetting sets alpha to 0 after `class_alpha_iters` iterations (paper Sec. 4.2: 30);
from then on A is no longer updated (it would not affect D). A is pretrained against the original
model by its own rule (artefact "attacker", `parts.attacker.run_pretrain_attacker`, paper: 1000
iterations) and loaded here.

BatchNorm (`bn_train`, default False: every forward of the game in eval mode, running statistics
frozen). Forget/val batches, clean and noisy, always run in eval mode (A attacks the model as it is
evaluated; the noisy copies must not share batch statistics). With `bn_train` True the retain batch
runs in train mode; then the adversarial term can move the eval-mode function through weight scales
that batch-normalised retain batches do not see, which collapsed the digits model (eval accuracy
10 % everywhere while the train-mode retain CE stayed 0.25). The retain forward comes first so no
in-place statistics update lands between a forward and its backward.
`max_grad_norm` (default 5, choice; 0 = off, the paper does not clip) clips the defender's gradient:
at the start of the game the attacker is confident and the gradient through the sensitivity token
is ~100x the retain CE gradient; unclipped, lr 0.02 destroyed the digits model (retain 11 %).
`on_nonfinite` (default "error"): what a non-finite defender loss does. "error" stops the run with one
line; "last_finite" (the paper-exact rows, which do not clip) ends the game there and returns the
weights from the start of the previous iteration, the last whose loss was finite, recording the
iteration in ctx.info (`diverged_at`, `stopped_after`): the table then shows where the paper's
settings led, and unlearn.json says the game diverged.

Learning rate per cell (paper Sec. 4.2): `lr` 0.01 for random forgetting on a dense model,
`lr_sparse` 0.03 for random forgetting on a sparse model, `lr_class` 0.02 for class-wise forgetting
at both densities. One instance therefore serves every cell of Table 1; the model counts as sparse
when more than `sparse_threshold` (choice 0.5) of its conv weights are exactly zero (a trained
dense model has none; a pruned original has 95 %). The rate used is recorded in ctx.info (`lr_used`).
Paper values: alpha 0.9, beta 0.001, bt_lambda 5e-3, class_alpha_iters 30, pretraining 1000
iterations, sens_copies 10, attacker 3 layers x 4 heads. SAMIA code (the
attacker the paper adopts): hidden 64, feed-forward 128, dropout 0.2, class tokens, input BN,
sens_sigma 1e-3 with division by sigma, weight decay 5e-4. Everything else is a choice: SGD
momentum 0.9, weight decay 5e-4, `iterations` 300, batch sizes 128 (retain) and 64 (forget, val),
one attacker step per defender step, Adam 1e-3 for the attacker, clipping, frozen BN.
Sparse originals: the pipeline enforces the pruning mask around `unlearn` (`parts.pruning.enforce_mask`);
DAU updates the model's parameters in place and never re-creates them.
"""

from __future__ import annotations

from ...errors import UserError
from ...infra.lazy import F, nn, torch
from ...runtime import generator
from ...training import make_optimizer, set_bn_train
from .._base import Access, UnlearningMethod, between, ge, gt, one_of, register_method
from .spec import ATTACKER_KEYS

FOOL_LOSSES = ("nonsaturating", "nonsaturating_forget", "minimax")


def conv_zero_fraction(model) -> float:
    """Fraction of exactly-zero entries over every Conv2d weight of the model (0 when it has none)."""
    ws = [m.weight.detach() for m in model.modules() if isinstance(m, nn.Conv2d)]
    total = sum(w.numel() for w in ws)
    return float(sum(int((w == 0).sum()) for w in ws) / total) if total else 0.0


@register_method("dau")
class DAU(UnlearningMethod):
    defaults = {
        # defender (the game)
        "lr": 0.01, "lr_sparse": 0.03, "lr_class": 0.02, "sparse_threshold": 0.5,  # paper (per cell), choice
        "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
        "iterations": 300, "batch_size": 128, "attack_batch_size": 64,
        "alpha": 0.9, "beta": 0.001, "bt_lambda": 5e-3, "class_alpha_iters": 30,
        "fool_loss": "nonsaturating", "ce_weighting": "paper", "bt_pairing": "random",
        "attack_steps": 1, "defender_steps": 1, "attack_lr": 1e-3, "attack_weight_decay": 5e-4,
        "max_grad_norm": 5.0, "on_nonfinite": "error", "bn_train": False, "report_attack": False, "log_every": 10,
        # attacker artefact (SAMIA defaults; pretraining 1000 iterations, paper)
        "attack_hidden": 64, "attack_layers": 3, "attack_heads": 4, "attack_ff": 128, "attack_dropout": 0.2,
        "attack_tokens": "class", "attack_input_bn": True,
        "sens_copies": 10, "sens_sigma": 1e-3, "sens_reduce": "abs", "sens_scale": True,
        "pretrain_iterations": 1000, "pretrain_batch_size": 64, "pretrain_lr": 1e-3, "pretrain_weight_decay": 5e-4,
        "pretrain_holdout": 0.2,
    }
    checks = {
        "lr_sparse": gt(0), "lr_class": gt(0), "sparse_threshold": between(0, 1, high_open=True),
        "iterations": ge(1), "attack_batch_size": ge(2), "alpha": between(0, 1), "beta": ge(0), "bt_lambda": ge(0),
        "class_alpha_iters": ge(0), "fool_loss": one_of(*FOOL_LOSSES), "ce_weighting": one_of("paper", "convex"),
        "bt_pairing": one_of("random", "class"), "attack_steps": ge(1), "defender_steps": ge(1),
        "attack_weight_decay": ge(0), "log_every": ge(1), "max_grad_norm": ge(0),
        "on_nonfinite": one_of("error", "last_finite"),
        "attack_hidden": ge(1), "attack_layers": ge(1), "attack_heads": ge(1), "attack_ff": ge(1),
        "attack_dropout": between(0, 1, high_open=True), "attack_tokens": one_of("class", "source"),
        "sens_copies": ge(1), "sens_sigma": gt(0), "sens_reduce": one_of("abs", "norm"),
        "pretrain_iterations": ge(0), "pretrain_batch_size": ge(1), "pretrain_weight_decay": ge(0),
        "pretrain_holdout": between(0, 1, high_open=True),
    }
    supports = frozenset({"class", "random"})
    artefacts = {"attacker": ATTACKER_KEYS}
    smoke = {"iterations": 3, "batch_size": 32, "attack_batch_size": 16, "pretrain_iterations": 5}

    def validate(self):
        if self.hp["attack_hidden"] % self.hp["attack_heads"]:
            raise UserError(f"method 'dau': attack_hidden ({self.hp['attack_hidden']}) must be divisible by "
                            f"attack_heads ({self.hp['attack_heads']})")

    def access(self) -> Access:
        return Access(forget=True, retain="full", val=True)

    def alpha_at(self, iteration: int, request_type: str) -> float:
        """alpha of a (0-based) iteration: 0 from class_alpha_iters on for class-wise forgetting."""
        if request_type == "class" and iteration >= self.hp["class_alpha_iters"]:
            return 0.0
        return float(self.hp["alpha"])

    def lr_for(self, request_type: str, conv_zero_fraction: float) -> float:
        """The paper's learning rate of a cell: class-wise, random on a sparse model, random dense."""
        if request_type == "class":
            return float(self.hp["lr_class"])
        if conv_zero_fraction > self.hp["sparse_threshold"]:
            return float(self.hp["lr_sparse"])
        return float(self.hp["lr"])

    def fool(self, logit_f, logit_v):
        """The defender's adversarial term (minimised)."""
        bce = F.binary_cross_entropy_with_logits
        if self.hp["fool_loss"] == "minimax":  # log A(f) + log(1 - A(v)) = -(BCE(f, 1) + BCE(v, 0))
            return -(bce(logit_f, torch.ones_like(logit_f)) + bce(logit_v, torch.zeros_like(logit_v)))
        loss = bce(logit_f, torch.zeros_like(logit_f))
        if self.hp["fool_loss"] == "nonsaturating":
            loss = loss + bce(logit_v, torch.ones_like(logit_v))
        return loss

    def unlearn(self, model, data, ctx):
        from .attacker import Stream, attack_accuracy, balanced_accuracy, defender_outputs, load_attacker, onehot
        from .barlow_twins import barlow_twins, pair_indices

        hp, dev = self.hp, ctx.device
        xf, yf = data.forget
        xr, yr = data.retain
        xv, yv = data.val
        if len(yv) < 2:
            raise UserError("dau needs a validation split (val_fraction > 0) for its attacker")
        if "attacker" not in ctx.artefacts:
            raise UserError("dau needs the attacker artefact (rule dau_attacker)")
        path = ctx.artefacts["attacker"]
        path = path[0] if isinstance(path, (list, tuple)) else path
        attacker, ameta = load_attacker(path, data.num_classes, dev, hp)
        k = data.num_classes
        gen = generator(ctx.seed)
        zero_frac = conv_zero_fraction(model)
        lr = self.lr_for(data.request_type, zero_frac)
        ctx.info.update(lr_used=lr, conv_zero_fraction=zero_frac)
        opt_d = make_optimizer(model.parameters(), hp["optimizer"], lr, hp["momentum"], hp["weight_decay"])
        opt_a = make_optimizer(attacker.parameters(), "adam", hp["attack_lr"], weight_decay=hp["attack_weight_decay"])
        s_r = Stream(len(yr), hp["batch_size"], gen)
        s_f = Stream(len(yf), hp["attack_batch_size"], gen)
        s_v = Stream(len(yv), hp["attack_batch_size"], gen)
        yf_d, yv_d = yf.to(dev), yv.to(dev)
        oh_f_all, oh_v_all = onehot(yf_d, k), onehot(yv_d, k)

        if hp["report_attack"]:
            ctx.info["attack_acc_before"] = attack_accuracy(attacker, model, (xf, yf), (xv, yv), hp, ctx.seed, dev)

        def attacker_step(pf, sf, ohf, pv, sv, ohv):
            attacker.train()
            for q in attacker.parameters():
                q.requires_grad_(True)
            logits = attacker(torch.cat([pf, pv]), torch.cat([sf, sv]), torch.cat([ohf, ohv]))
            target = torch.cat([torch.ones(len(pf)), torch.zeros(len(pv))]).to(dev)
            loss = F.binary_cross_entropy_with_logits(logits, target)
            opt_a.zero_grad(set_to_none=True)
            loss.backward()
            opt_a.step()
            return loss.item(), balanced_accuracy(logits[:len(pf)].detach(), logits[len(pf):].detach())

        alphas, log, n_attack = [], [], 0
        keep = hp["on_nonfinite"] == "last_finite"
        start = previous = None  # the weights at the start of this and of the previous iteration
        diverged = False
        for it in range(hp["iterations"]):
            if keep:
                previous, start = start, {k: v.detach().clone() for k, v in model.state_dict().items()}
            alpha = self.alpha_at(it, data.request_type)
            alphas.append(alpha)
            w_ce = 1.0 if hp["ce_weighting"] == "paper" else 1.0 - alpha
            for _ in range(hp["defender_steps"]):
                # 1. retain CE first (train-mode BN may update running statistics in place)
                ir = s_r.next()
                model.train()
                set_bn_train(model, hp["bn_train"])
                ce = F.cross_entropy(model(xr[ir].to(dev)), yr[ir].to(dev))
                # 2. forget / validation outputs in eval mode
                model.eval()
                i_f, i_v = s_f.next(), s_v.next()
                x_f, x_v = xf[i_f].to(dev), xv[i_v].to(dev)
                a_loss = a_acc = None
                fool = torch.zeros((), device=dev)
                if alpha > 0:
                    z_f, _, p_f, sn_f = defender_outputs(model, x_f, hp, gen)
                    z_v, _, p_v, sn_v = defender_outputs(model, x_v, hp, gen)
                    oh_f, oh_v = oh_f_all[i_f.to(dev)], oh_v_all[i_v.to(dev)]
                    # 3. attacker update(s): the first on this batch, detached
                    a_loss, a_acc = attacker_step(p_f.detach(), sn_f.detach(), oh_f, p_v.detach(), sn_v.detach(), oh_v)
                    for _ in range(hp["attack_steps"] - 1):
                        j_f, j_v = s_f.next(), s_v.next()
                        with torch.no_grad():
                            _, _, pf2, sf2 = defender_outputs(model, xf[j_f].to(dev), hp, gen)
                            _, _, pv2, sv2 = defender_outputs(model, xv[j_v].to(dev), hp, gen)
                        a_loss, a_acc = attacker_step(pf2, sf2, oh_f_all[j_f.to(dev)], pv2, sv2, oh_v_all[j_v.to(dev)])
                    n_attack += hp["attack_steps"]
                    # 4. defender's adversarial term through the updated attacker (eval, frozen)
                    attacker.eval()
                    for q in attacker.parameters():
                        q.requires_grad_(False)
                    fool = self.fool(attacker(p_f, sn_f, oh_f), attacker(p_v, sn_v, oh_v))
                elif hp["beta"] > 0:
                    z_f = model.forward_features(x_f)
                    z_v = model.forward_features(x_v)
                bt = torch.zeros((), device=dev)
                bt_parts = {}
                if hp["beta"] > 0:
                    if hp["bt_pairing"] == "class":
                        z_v = model.forward_features(xv[pair_indices(yf[i_f], yv, gen)].to(dev))
                    bt, bt_parts = barlow_twins(z_f, z_v, hp["bt_lambda"])
                loss = w_ce * ce + alpha * fool + hp["beta"] * bt
                if not torch.isfinite(loss):
                    if not keep or previous is None:
                        raise UserError(f"dau: defender loss became {loss.item()} at iteration {it + 1}; lower lr")
                    model.load_state_dict(previous)
                    ctx.info.update(diverged_at=it + 1, stopped_after=it - 1)
                    ctx.log(f"dau: defender loss became {loss.item()} at iteration {it + 1}; returning the weights "
                            f"after iteration {it - 1} (on_nonfinite: last_finite)")
                    diverged = True
                    break
                opt_d.zero_grad(set_to_none=True)
                loss.backward()
                if hp["max_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), hp["max_grad_norm"])
                opt_d.step()
            if diverged:
                break
            if it % hp["log_every"] == 0 or it == hp["iterations"] - 1:
                row = {"iteration": it + 1, "alpha": alpha, "ce": ce.item(), "fool": fool.item(), "bt": bt.item(),
                       "attack_loss": a_loss, "attack_batch_acc": a_acc, **bt_parts}
                log.append(row)
                ctx.log(f"dau it {it + 1}: ce={row['ce']:.3f} fool={row['fool']:.3f} bt={row['bt']:.2f} "
                        f"attack_loss={a_loss if a_loss is None else round(a_loss, 3)} alpha={alpha}")
        model.eval()
        ctx.info.update(alpha=alphas, log=log, attacker_steps=n_attack, iterations=hp["iterations"],
                        attacker_pretrain_accuracy=ameta.get("balanced_accuracy_holdout"))
        if hp["report_attack"]:
            ctx.info["attack_acc_after"] = attack_accuracy(attacker, model, (xf, yf), (xv, yv), hp, ctx.seed, dev)
        return model
