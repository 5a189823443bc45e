"""pytest plugin (entry point ``wherry``): ``pytest --wherry-bundle DIR`` adds one test per
artifact and output of a bundle, checked against its golden outputs on this machine.

Without the option the plugin only registers its options: nothing of wherry is
imported (not even numpy), so it costs nothing in unrelated test runs.
Artifacts that cannot run here are skipped with the reason ("not verifiable
here"), never passed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, Union

import pytest

if TYPE_CHECKING:   # types only: loading the plugin imports nothing of wherry, nor numpy
    from _pytest._code.code import TerminalRepr, TracebackStyle   # pytest exports neither

    from .bundle import Bundle, NotBuilt
    from .checker import Arrays, ArtifactResult, GoldenSet


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wherry", "wherry bundle parity")
    group.addoption("--wherry-bundle", action="append", default=[], metavar="DIR",
                    help="check this wherry bundle's artifacts against its golden outputs (repeatable)")
    group.addoption("--wherry-artifact", action="append", default=[], metavar="FILE",
                    help="only these artifacts of the bundles (repeatable)")
    group.addoption("--wherry-no-isolate", action="store_true",
                    help="run artifacts in the pytest process (faster; a native crash kills pytest)")


class ParityFailure(Exception):
    """An artifact's output does not match the golden output (or the artifact could not run)."""


class WherryBundle(pytest.Collector):
    _bundle: Bundle   # loaded by collect

    def __init__(self, *, bundle_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bundle_dir = bundle_dir
        self._results: Dict[str, ArtifactResult] = {}
        # golden inputs and outputs, and the golden sets at other input shapes (checker.other_golden_sets)
        self._golden: Optional[Tuple[Arrays, Arrays, List[GoldenSet]]] = None

    def collect(self) -> Iterator[pytest.Item]:
        from .bundle import load_bundle
        from .errors import WherryError

        try:
            self._bundle = load_bundle(self.bundle_dir)
        except WherryError as exc:
            raise pytest.UsageError(f"--wherry-bundle {self.bundle_dir}: {exc}") from None
        wanted = self.config.getoption("wherry_artifact")
        names = [o.name for o in self._bundle.manifest.outputs]
        for art in self._bundle.manifest.artifacts:
            if wanted and art.file not in wanted and Path(art.file).name not in wanted:
                continue
            for out in names:
                yield ParityItem.from_parent(self, name=f"{art.file}::{out}", artifact=art.file, output=out)
        for missing in self._bundle.manifest.not_built:
            if not wanted or missing.file in wanted:
                yield NotBuiltItem.from_parent(self, name=f"{missing.file}::not-built", missing=missing)

    def result(self, artifact: str) -> ArtifactResult:
        """Check an artifact once and share the result among its outputs' tests."""
        if artifact not in self._results:
            from .checker import check_artifact, golden_data, other_golden_sets

            if self._golden is None:
                self._golden = (*golden_data(self._bundle), other_golden_sets(self._bundle))
            feeds, golden, others = self._golden
            self._results[artifact] = check_artifact(self._bundle, self._bundle.manifest.artifact(artifact), feeds,
                                                     golden, isolate=not self.config.getoption("wherry_no_isolate"),
                                                     others=others)
        return self._results[artifact]


class _NoFixtures:
    # these items use no fixtures; plugins that read every item's fixture names (labgrid's, loaded
    # whenever labgrid is installed) would otherwise fail on them with AttributeError
    fixturenames = ()


def _bundle_node(item: pytest.Item) -> WherryBundle:
    """The collector an item of this plugin was made by (its parent)."""
    parent = item.parent
    assert isinstance(parent, WherryBundle)   # both item classes are made only by WherryBundle.collect
    return parent


class ParityItem(_NoFixtures, pytest.Item):
    def __init__(self, *, artifact: str, output: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.artifact = artifact
        self.output = output

    def runtest(self) -> None:
        from .checker import UNVERIFIABLE

        result = _bundle_node(self).result(self.artifact)
        if result.status == UNVERIFIABLE:
            pytest.skip(f"not verifiable here: {result.reason}")
        parity = next((o for o in result.outputs if o.name == self.output), None)
        if parity is None:
            raise ParityFailure(f"{self.artifact}: {result.reason or 'output not produced'}")
        self.user_properties.extend([("max_abs", parity.max_abs), ("cosine", parity.cosine)])
        if not parity.passed:
            raise ParityFailure(f"{self.artifact} output {self.output!r}: {parity.reason}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Optional[TracebackStyle] = None) -> Union[str, TerminalRepr]:
        if isinstance(excinfo.value, ParityFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> Tuple[Path, Optional[int], str]:
        return Path(_bundle_node(self).bundle_dir), None, f"wherry parity {self.name}"


class NotBuiltItem(_NoFixtures, pytest.Item):
    """An artifact the conversion was asked for and could not build: a failing test, never a skip."""

    def __init__(self, *, missing: NotBuilt, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.missing = missing

    def runtest(self) -> None:
        from .bundle import NOT_REPRESENTABLE
        from .checker import not_built_result
        if self.missing.status == NOT_REPRESENTABLE:
            pytest.skip(f"{self.missing.file}: {not_built_result(self.missing).reason}")
        raise ParityFailure(f"{self.missing.file}: not built: {not_built_result(self.missing).reason}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Optional[TracebackStyle] = None) -> Union[str, TerminalRepr]:
        if isinstance(excinfo.value, ParityFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> Tuple[Path, Optional[int], str]:
        return Path(_bundle_node(self).bundle_dir), None, f"wherry {self.name}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: List[pytest.Item]) -> None:
    bundles = config.getoption("wherry_bundle")
    if not bundles:
        return
    for bundle_dir in bundles:
        collector = WherryBundle.from_parent(session, name=f"wherry-bundle[{bundle_dir}]", bundle_dir=bundle_dir)
        items.extend(collector.collect())
