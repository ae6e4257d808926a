"""The rule scripts' job glue (unlearnbench/infra/cli.py): one line for bad input, no stale
provenance, and a walled stage's outputs arriving only when it succeeded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnbench.errors import UserError
from unlearnbench.infra import cli, wall


class _Named(list):
    """The little of snakemake.io.Namedlist that script_main uses."""

    def __init__(self, **kw):
        super().__init__(kw.values())
        self._kw = kw

    def items(self):
        return self._kw.items()

    def __getattr__(self, k):
        try:
            return self._kw[k]
        except KeyError:
            raise AttributeError(k) from None


def _smk(tmp_path, **inputs):
    class Smk:
        rule = "demo"
        output = _Named(result=str(tmp_path / "out" / "result.json"))
        input = _Named(**inputs)
        log = []
        params = _Named()
        wildcards = _Named()
        config = {"numerics": "portable", "data_root": str(tmp_path / "data")}

    return Smk()


@pytest.fixture(autouse=True)
def _own_state(monkeypatch):
    monkeypatch.setattr(wall, "_STATE", dict(wall._STATE))


def test_a_failed_job_leaves_no_stale_provenance(tmp_path, capsys):
    smk = _smk(tmp_path)
    Path(smk.output.result).parent.mkdir(parents=True)
    stale = Path(smk.output.result + ".prov.json")
    stale.write_text("{}")  # from an earlier, successful run whose output Snakemake has since removed

    def fails(s, job):
        raise UserError("the checkpoint is of another model")

    with pytest.raises(SystemExit) as e:
        cli.script_main(fails, smk)
    assert e.value.code == 1 and not stale.exists()
    assert capsys.readouterr().err.strip() == "error in rule demo: the checkpoint is of another model"


@pytest.mark.skipif("why" in wall.support(), reason="this kernel offers no wall")
def test_a_walled_stage_writes_its_outputs_and_provenance_records_the_wall(tmp_path):
    (tmp_path / "in.txt").write_text("declared")
    smk = _smk(tmp_path, data=str(tmp_path / "in.txt"))

    def stage(s, job):
        assert job.out["result"] != s.output.result  # it writes into its private folder
        Path(job.out["result"]).write_text(json.dumps({"read": open(s.input.data).read(), "wall": wall.state()}))

    cli.script_main(stage, smk, wall=True)
    got = json.loads(Path(smk.output.result).read_text())
    assert got["read"] == "declared" and got["wall"]["enforced"] is True
    prov = json.loads(Path(smk.output.result + ".prov.json").read_text())
    assert prov["wall"]["enforced"] is True and prov["outputs"]


def test_a_walled_stage_that_fails_leaves_nothing_and_says_why_in_one_line(tmp_path, capfd):
    smk = _smk(tmp_path)

    def stage(s, job):
        Path(job.out["result"]).write_text("half")
        raise UserError("bad settings")

    with pytest.raises(SystemExit) as e:
        cli.script_main(stage, smk, wall=True)
    assert e.value.code == 1 and not Path(smk.output.result).exists()
    assert capfd.readouterr().err.strip() == "error in rule demo: bad settings"
