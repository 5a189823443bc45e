"""wherry's stand-in for torch in the rknn-toolkit2 environment.

rknn-toolkit2 2.5.0 imports torch (and torch.nn, ...) when it loads, but its ONNX path never calls it;
real torch from PyPI is a 2.7 GB CUDA download. Any torch submodule imports as an empty module, and any
attribute is a placeholder usable as a base class, a decorator (@torch.no_grad()) or a context; a
placeholder used as a number or tensor fails. Whatever the toolkit computes is checked against the golden
outputs anyway (its simulation of the compiled graph).

Never imported by wherry: ``rknn_export`` writes this file as ``torch/__init__.py`` into that environment.
"""
import importlib.abc
import importlib.machinery
import sys
import types

__version__ = "2.4.0"


class _Placeholder:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Placeholder(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]):
            return args[0]            # used as a decorator: the function itself
        return _Placeholder(f"{self._name}()")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __mro_entries__(self, bases):
        return (object,)


def __getattr__(attr):
    if attr.startswith("__"):
        raise AttributeError(attr)
    return _Placeholder(f"torch.{attr}")


class _Module(types.ModuleType):
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Placeholder(f"{self.__name__}.{attr}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("torch."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
