"""The conversion options are declared once (convert/options.py): the command line, the Python API and
the zoo file read every option the same way, under the same name."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from wherry.convert.options import (ConvertOptions, OptionError, add_arguments, declared, from_arguments, from_keywords,
                                    preprocess_text)
from wherry.runtimes.errors import InputError

# one command-line spelling and the Python value it must equal, per kind
SAMPLES = {"names": (["fp32,int8"], ["fp32", "int8"]), "path": ("x.npz", Path("x.npz")), "text": ("n", "n"),
           "json": ('{"size": [2, 2]}', '{"size": [2, 2]}'), "int": ("3", 3), "float": ("0.5", 0.5),
           "shapes": (["x=1,3,8,8", "x=1,3,4,4"], [{"x": (1, 3, 8, 8)}, {"x": (1, 3, 4, 4)}]),
           "lod": (["w=2,3"], {"w": [2, 3]})}


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("name", [f.name for f, spec in declared() if spec.cli and f.name != "model"])
def test_every_option_reads_the_same_from_the_command_line_and_from_python(name):
    spec = ConvertOptions.__dataclass_fields__[name].metadata["option"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flag = next(a for a in parser._actions if a.dest == name).option_strings[-1]
    if spec.kind == "flag":
        argv, value = [flag], not ConvertOptions.__dataclass_fields__[name].default
    elif spec.choices:
        argv, value = [flag, spec.choices[-1]], spec.choices[-1]
    else:
        raw, value = SAMPLES[spec.kind]
        argv = [part for item in (raw if isinstance(raw, list) else [raw]) for part in (flag, item)]
    from_cli = from_arguments(parser.parse_args(["m.pdmodel", *argv]))
    from_python = from_keywords("m.pdmodel", {name: value})
    assert getattr(from_cli, name) == getattr(from_python, name) == value
    # nothing else moved: every other option keeps its declared default either way
    assert from_cli == from_python


def test_an_option_left_out_keeps_its_declared_default():
    assert from_arguments(parse(["m.pdmodel"])) == ConvertOptions(model="m.pdmodel")


def test_the_zoo_keys_are_the_declared_options():
    from wherry.convert.zoo.spec import MODEL_KEYS

    assert MODEL_KEYS == {"path", "targets"} | {f.name for f, spec in declared() if spec.zoo}
    assert {"precisions", "calib", "eval", "shapes", "max_drop", "calib_method"} <= MODEL_KEYS


def test_a_wrong_value_or_keyword_is_one_error_naming_the_option():
    with pytest.raises(OptionError, match="unknown option.*precison"):
        from_keywords("m", {"precison": "int8"})
    with pytest.raises(OptionError, match="seed has the wrong type"):
        ConvertOptions(model="m", seed="3")
    with pytest.raises(OptionError, match="unknown calib_method 'entropy'"):
        ConvertOptions(model="m", calib_method="entropy")
    with pytest.raises(OptionError, match="formats must be a name or a list of names"):
        ConvertOptions(model="m", formats=[1])


def test_the_old_api_keyword_still_works_with_a_warning(tmp_path):
    from wherry.convert import convert

    with pytest.warns(DeprecationWarning, match="precisions"), pytest.raises(OptionError, match="unknown option"):
        convert("m.pdmodel", precision="fp32", not_an_option=1)


def test_preprocess_text_is_json_or_a_readable_file_and_never_a_traceback(tmp_path):
    """--preprocess (and a zoo's preprocess) is JSON text or a JSON file. Long JSON text was looked up as a
    path (ENAMETOOLONG: "a file name is longer than the file system allows", hint "use a shorter --name"),
    and a file that is not UTF-8 was a UnicodeDecodeError traceback (issue 27, finding 11)."""
    deep = "[" * 5000 + "]" * 5000
    assert preprocess_text(deep) == deep
    assert preprocess_text("x" * 5000) == "x" * 5000            # no such file: left for the JSON reader
    spec = tmp_path / "spec.json"
    spec.write_text('{"size": [8, 8]}')
    assert preprocess_text(str(spec)) == '{"size": [8, 8]}'
    spec.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InputError, match="not UTF-8 text"):
        preprocess_text(str(spec))
