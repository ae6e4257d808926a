"""The settings that define DAU's pretrained attacker artefact (architecture, inputs, pretraining):
shared by the method's declaration and the attacker's stage (standard library only)."""

ATTACK_ARCH_KEYS = ("attack_hidden", "attack_layers", "attack_heads", "attack_ff", "attack_dropout",
                    "attack_tokens", "attack_input_bn")
SENS_KEYS = ("sens_copies", "sens_sigma", "sens_reduce", "sens_scale")
PRETRAIN_KEYS = ("pretrain_iterations", "pretrain_batch_size", "pretrain_lr", "pretrain_weight_decay",
                 "pretrain_holdout")
ATTACKER_KEYS = ATTACK_ARCH_KEYS + SENS_KEYS + PRETRAIN_KEYS
