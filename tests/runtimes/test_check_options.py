"""The check options are declared once (runtimes/check_options.py): `check`'s flags, what a runner accepts
over HTTP and what `wherry fleet` forwards to every board come from one declaration and agree."""
from __future__ import annotations

import argparse

from wherry.runtimes import check_options, remote
from wherry.runtimes.cli import add_check_args


def test_what_fleet_forwards_parses_back_to_the_same_check_request():
    fleet = argparse.ArgumentParser()
    check_options.add_arguments(fleet, fleet=True)
    given = fleet.parse_args(["--artifact", "model.onnx", "--artifact", "model.arm.nb", "--strict", "--timeout", "30",
                              "--atol", "1e-3", "--min-cosine", "logits:0.99"])
    argv = check_options.forwarded_argv(given)
    check = argparse.ArgumentParser()
    add_check_args(check)
    on_board = check.parse_args(["bundle", *argv])
    request = remote.check_request(on_board)
    assert request == {"artifacts": ["model.onnx", "model.arm.nb"], "strict": True, "timeout": 30.0,
                       "overrides": {"*": {"atol": 1e-3}, "logits": {"min_cosine": 0.99}}}
    # every field of a request is one the runner accepts, with the type it accepts
    assert set(request) <= set(remote.CHECK_FIELDS)
    for key, value in request.items():
        assert isinstance(value, remote.CHECK_FIELDS[key])


def test_fleet_offers_exactly_the_options_declared_as_forwarded():
    fleet = argparse.ArgumentParser()
    check_options.add_arguments(fleet, fleet=True)
    flags = {s for a in fleet._actions for s in a.option_strings} - {"-h", "--help"}
    expected = {o.flag for o in check_options.CHECK_OPTIONS if o.fleet}
    expected |= {check_options.tolerance_flag(f) for f in check_options.TOLERANCES}
    assert flags == expected and "--threads" not in flags and "--no-isolate" not in flags
