"""targets.cli as convert/cli.py calls it: run_device_command(command, args) prints what the runner prints."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from support.paths import REPO
from wherry.targets.cli import _command_args, _without_device, add_device_option, run_device_command


def test_device_option_and_argument_plumbing():
    parser = argparse.ArgumentParser()
    add_device_option(parser)
    assert parser.parse_args([]).device == "local"
    assert parser.parse_args(["--device", "emulated-aarch64"]).device == "emulated-aarch64"
    full = ["check", "b", "--device", "ssh://pi@x", "--json", "--device=http://y:1"]
    assert _without_device(_command_args("check", full)) == ["b", "--json"]


def test_run_device_command_without_argv_matches_the_runner(capsys):
    """Only (command, args): the arguments come from args.argv, and the output is the runner's own."""
    args = argparse.Namespace(device="local", json=True, argv=["info", "--device", "local", "--json"])
    assert run_device_command("info", args) == 0
    ours = json.loads(capsys.readouterr().out)
    theirs = json.loads(subprocess.run([sys.executable, "-m", "wherry.runtimes", "info", "--json"], capture_output=True,
                                       text=True, cwd=REPO, check=True).stdout)
    assert ours["machine"] == theirs["machine"] and ours["backends"] == theirs["backends"]


def test_targets_show_unknown_is_a_clear_error(wherry):
    proc = wherry("targets", "show", "toaster")
    assert proc.returncode == 2 and "unknown target 'toaster'" in proc.stderr and "Traceback" not in proc.stderr
