"""The command line: one clear line and a non-zero exit for bad input, never a traceback."""
import subprocess
import sys
from pathlib import Path

import pytest
from neurorave.firmware import cli


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "neurorave.firmware.cli", *args],
                          capture_output=True, text=True)


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"neurorave {cli.__version__}"


def test_console_script_installed():
    # Installed beside the interpreter that runs the tests (the venv's bin/).
    script = Path(sys.executable).parent / "neurorave"
    assert script.exists(), "the neurorave console script is not installed"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("dataset", "describe", "train", "export", "evaluate", "render", "run",
                    "bench", "hwtest"):
        assert command in out.stdout


@pytest.mark.parametrize("args", [
    ["no-such-command"],
    ["train", "--data", "x"],                # missing --config and --out
    ["bench", "b", "--threads", "two"],      # not a number
    ["run", "--engine", "warp-drive"],       # not a choice
    [],
])
def test_bad_arguments_give_one_line(args):
    out = run_cli(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("neurorave")


def test_user_error_is_one_line(monkeypatch, capsys):
    from neurorave.common.errors import UserError

    def failing(args):
        raise UserError("no such file: x.wav")

    monkeypatch.setitem(cli.COMMANDS, "describe", ("test_cli:failing", 3, "", cli._describe))
    monkeypatch.setattr(cli, "_resolve", lambda target: failing)
    assert cli.main(["describe", "x.wav"]) == 2
    err = capsys.readouterr().err
    assert err == "neurorave describe: no such file: x.wav\n"


def _failing_command(monkeypatch, exc):
    def failing(args):
        raise exc

    monkeypatch.setitem(cli.COMMANDS, "describe", ("test_cli:failing", 3, "", cli._describe))
    monkeypatch.setattr(cli, "_resolve", lambda target: failing)


@pytest.mark.parametrize("exc, line", [
    (PermissionError(13, "Permission denied", "/var/x.json"), "/var/x.json: Permission denied"),
    (OSError(28, "No space left on device"), "a file: No space left on device"),
    (UnicodeDecodeError("utf-8", b"\xab", 0, 1, "invalid start byte"),
     "a file is not UTF-8 text (invalid start byte at byte 0)"),
])
def test_file_errors_a_command_missed_are_one_line(monkeypatch, capsys, exc, line):
    monkeypatch.delenv("NEURORAVE_DEBUG", raising=False)
    _failing_command(monkeypatch, exc)
    assert cli.main(["describe", "x.wav"]) == 1
    assert capsys.readouterr().err == f"neurorave describe: {line}\n"


def test_debug_shows_the_traceback_and_bugs_stay_loud(monkeypatch, capsys):
    monkeypatch.setenv("NEURORAVE_DEBUG", "1")
    _failing_command(monkeypatch, FileNotFoundError(2, "No such file or directory", "x"))
    assert cli.main(["describe", "x.wav"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("neurorave describe: x: No such file or directory\n")
    # Not a file error: a bug, which must not be dressed up as a user's mistake.
    _failing_command(monkeypatch, KeyError("oops"))
    with pytest.raises(KeyError):
        cli.main(["describe", "x.wav"])


@pytest.mark.parametrize("where", ["missing-dir/stats.json", "."])
def test_run_checks_the_stats_file_before_starting(tmp_path, where):
    # Once playing, a failed stats write is only counted: a bad path must fail at start.
    out = run_cli("run", "--headless", "--seconds", "0.1", "--stats", str(tmp_path / where))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--stats" in lines[0], out.stderr
    assert "cannot write the stats file" in lines[0] or "is a folder" in lines[0]


def test_every_command_has_an_issue_or_implementation():
    parser = cli.build_parser()
    assert parser.prog == "neurorave"
    for table in (cli.COMMANDS, cli.DATASET_COMMANDS):
        for name, (target, issue, help_text, _) in table.items():
            assert help_text, name
            if target is not None:
                module, _, func = target.partition(":")
                assert module.startswith("neurorave.") and func, name
            else:
                assert issue > 0, name


def test_a_reader_that_goes_away_ends_a_command_quietly(tmp_path):
    # `neurorave describe x.wav --json | head -c 10`: no message about a broken pipe.
    import numpy as np
    import soundfile

    wav = tmp_path / "long.wav"
    soundfile.write(wav, (0.1 * np.random.default_rng(0).standard_normal(16000 * 60))
                    .astype("float32"), 16000)
    child = subprocess.Popen([sys.executable, "-m", "neurorave.firmware.cli", "describe",
                              str(wav), "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.read(10)
    child.stdout.close()          # the reader is gone while it still writes
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141 and err == "", err
