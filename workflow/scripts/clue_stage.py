"""Rules of the CLUE paper (workflow/rules/methods/clue.smk): dispatch on the rule name."""
from unlearnbench.cli import script_main
from unlearnbench import clue_stages as cs


def main(s):
    i, o, p = s.input, s.output, s.params
    if s.rule == "clue_mask":
        cs.run_clue_mask(i.data, i.request, i.original, dict(p.settings), int(s.wildcards.seed), p.device, p.threads, o.mask, o.info)
    elif s.rule == "clue_energy":
        cs.run_clue_energy(i.outputs, i.data, i.split, i.request, o.json)
    elif s.rule == "clue_fig2":
        cs.run_fig2(i.before, i.after, i.data, i.request, p.max_samples, p.seed, p.label, p.device, p.threads, o.png, o.npz)
    elif s.rule == "clue_fig4":
        cs.run_fig4(i.before, i.after, i.data, i.request, p.label, o.png, o.csv)
    elif s.rule == "clue_fig5":
        cs.run_fig5(list(i.tables), o.png, o.csv)
    else:
        raise ValueError(f"clue_stage.py does not handle rule {s.rule}")


script_main(main, snakemake)  # noqa: F821
