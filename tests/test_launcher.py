"""The shared app launcher: results only appear when the app succeeded; errors give their family's exit code."""

from pathlib import Path

from monai.deploy.core import Application, Operator

from apps.launcher import run_app
from operators.common.errors import BadInputError


class _WriteThenMaybeFail(Operator):
    def __init__(self, fragment, *args, out: Path, fail: Exception | None, **kwargs):
        self.out, self.fail = out, fail
        super().__init__(fragment, *args, **kwargs)

    def compute(self, op_input, op_output, context):
        (self.out / "results.json").write_text("{}")
        if self.fail is not None:
            raise self.fail


def _factory(fail):
    class _App(Application):
        def __init__(self, input_dir, output_dir, models_dir):
            self.output_dir = output_dir
            super().__init__()

        def compose(self):
            from holoscan.conditions import CountCondition
            self.add_operator(_WriteThenMaybeFail(self, CountCondition(self, 1), out=self.output_dir, fail=fail,
                                                  name="writer"))

    return _App


def test_success_publishes_outputs_and_removes_staging(tmp_path):
    out = tmp_path / "out"
    rc = run_app(_factory(None), "t", ["-i", str(tmp_path), "-o", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_bad_input_leaves_no_partial_output_and_exits_with_code(tmp_path, capsys):
    out = tmp_path / "out"
    rc = run_app(_factory(BadInputError("no CT series in the study")), "t", ["-i", str(tmp_path), "-o", str(out)])
    assert rc == BadInputError.exit_code != 0
    assert list(out.iterdir()) == []
    assert "no CT series in the study" in capsys.readouterr().err


def test_unexpected_error_exits_1_without_output(tmp_path):
    out = tmp_path / "out"
    rc = run_app(_factory(RuntimeError("boom")), "t", ["-i", str(tmp_path), "-o", str(out)])
    assert rc == 1 and list(out.iterdir()) == []


def test_missing_input_folder_is_bad_input(tmp_path, capsys):
    out = tmp_path / "out"
    rc = run_app(_factory(None), "t", ["-i", str(tmp_path / "nope"), "-o", str(out)])
    assert rc == BadInputError.exit_code
    assert "does not exist" in capsys.readouterr().err
    assert list(out.iterdir()) == []
