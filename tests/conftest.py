"""pytest fixtures and hooks only. Helpers the tests import live in tests/support/ (``from support.X import``):
this folder is on sys.path because this conftest.py is at its top (pytest's rootdir-relative import).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO


@pytest.fixture(scope="session")
def example_model() -> Path:
    from wherry.convert import example
    return example.MODEL


@pytest.fixture(scope="session")
def wherry():
    """Run the wherry CLI in a child process, as a user would; returns CompletedProcess."""
    def run(*args, check=None, timeout=1800):
        proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, cwd=REPO)
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc
    return run


def pytest_collection_finish(session):
    """Paddle Lite's ARM runtime starts building in the background when collected tests need it."""
    from support import lite_prebuild
    if not session.config.option.collectonly:
        lite_prebuild.start(session.items)


def pytest_sessionfinish(session, exitstatus):
    from support import lite_prebuild
    lite_prebuild.stop()


@pytest.fixture(scope="session")
def lite_runtime_settled():
    """Paddle Lite's aarch64 runtime (or None), once a background build has finished: tests whose
    expectations depend on whether the emulated board has Lite take it, so the answer cannot change
    under them."""
    from support import lite_prebuild
    from wherry.targets import lite
    lite_prebuild.wait()
    return lite.find("aarch64")


#: The quick tier (`bash scripts/test.sh -m quick`, under 3 minutes on two cores): parity, the bundle and
#: runtime errors, legalization passes, PIR op translation, the remote protocol and the CLI's refusals.
#: Patterns (fnmatch) on test ids under tests/ (folder/test_file.py::name); declared here once, so the tier
#: is read in one place.
QUICK = (
    "runtimes/test_parity.py::*", "runtimes/test_runtime_backends.py::*", "runtimes/test_runtime_errors.py::*",
    "runtimes/test_runner_cli.py::*", "convert/test_progress.py::*", "targets/test_targets_cli.py::*",
    "convert/test_legalize.py::*", "convert/test_pir_ops.py::*", "convert/test_source.py::*",
    "runtimes/test_serve.py::*", "targets/test_remote_options.py::*[[]http[]]",
    "convert/test_artifact_fates.py::test_convert_ships_what_was_built_and_exits_1",
    "convert/test_artifact_fates.py::test_check_names_the_missing_artifact_as_not_built*",
    "convert/test_cli_convert.py::test_lite_segfault_becomes_a_readable_error",
    "convert/test_cli_convert.py::test_truncated_params", "convert/test_cli_convert.py::test_dynamic_dims_need_a_shape",
    "convert/test_cli_convert.py::test_inspect_lists_ops_and_lite_support",
    "runtimes/test_preprocess.py::test_bad_specs_are_refused_with_the_field_named*",
    "runtimes/test_preprocess.py::test_normalization_channel_order_and_layout",
    "runtimes/test_preprocess.py::test_empty_or_missing_folder_and_bad_image",
    "convert/test_shapes.py::test_shape_sets_are_parsed*",
    "convert/test_shapes.py::test_a_zoo_model_may_name_several_shapes",
    "convert/test_options.py::*", "runtimes/test_vocabulary.py::*", "runtimes/test_check_options.py::*",
    "runtimes/test_paddle_errors.py::test_missing_op_is_read*", "runtimes/test_paddle_errors.py::test_the_error_says*",
    "convert/test_onnx_export.py::*",
)


def pytest_collection_modifyitems(config, items):
    """The quick tier gets its marker; tests that need Paddle Lite's ARM runtime run last, so its background
    build (lite_prebuild) overlaps the rest of the run instead of being waited for; the zoo (every model
    family in PIR and legacy format) and the edge runtimes' conversions run only when asked for: -m zoo, -m edge."""
    from fnmatch import fnmatchcase

    from support import lite_prebuild

    items.sort(key=lambda item: bool(lite_prebuild.FIXTURES_NEEDING_IT & set(getattr(item, "fixturenames", ()))))

    for item in items:
        test_id = item.nodeid.split("tests/", 1)[-1]
        if any(fnmatchcase(test_id, pattern) for pattern in QUICK):
            item.add_marker(pytest.mark.quick)
    # the zoo, and the edge runtimes' tool environments (hundreds of MB each): only when asked for with -m
    for marker, why in (("zoo", "the model-family zoo runs with -m zoo"),
                        ("edge", "the edge runtimes' tool environments are installed and used with -m edge")):
        if marker in (config.getoption("-m") or ""):
            continue
        skip = pytest.mark.skip(reason=why)
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)

