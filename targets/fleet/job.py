"""The fleet job: the parity suite over every labgrid place with the given tags.

For each place (one at a time, free places first):

    reserve name=PLACE + tags  ->  wait (holder named)  ->  acquire  ->  resolve its NetworkService
    through the environment template (WherryDriver)  ->  check every bundle  ->  release  ->  cancel

A job holds at most one place at a time, so two jobs over overlapping places never deadlock: one
waits while the other checks, and a place freed by one is handed to the waiting one as soon as its
reservation is cancelled. Release and cancel always run (errors, Ctrl-C). labgrid's lock is
cooperative - a client that ignores it is not stopped by the coordinator - so the runner's token
(from this job's environment, never from the coordinator) stays the real access control, and it is
sent only to an address the job's environment lists (WHERRY_FLEET_HOSTS; labgrid_driver.token_for).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from wherry.runtimes.errors import WherryError
from wherry.targets.devices import BoardUnavailable, DeviceError, connect

log = logging.getLogger(__name__)

ENV_TEMPLATE = Path(__file__).resolve().parent / "env.yaml"
EXPORTER_TEMPLATE = Path(__file__).resolve().parent / "exporter.yaml"


class FleetError(WherryError):
    """The coordinator cannot be used as asked (unreachable, no such tag, a refused lock)."""


def _labgrid():
    try:
        import labgrid  # noqa: F401
        from labgrid.remote import client
    except ImportError:
        raise FleetError("wherry fleet needs labgrid", "pip install 'wherry[labgrid]'") from None
    return client


# ----------------------------------------------------------------------------- one check on one board

def check_on_device(url: str, token: Optional[str], bundle, options: Sequence[str]):
    """`wherry check BUNDLE --json OPTIONS --device URL` in this process: (exit code, report JSON or None, message)."""
    device = connect(url)
    if token is not None and hasattr(device, "token"):
        device.token = token
    try:
        result = device.run(["check", str(bundle), "--json", *options], [Path(bundle)])
    except BoardUnavailable:
        raise
    except WherryError as exc:
        return exc.exit_code, None, str(exc)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return result.exit_code, None, (result.stderr or result.stdout).strip()[-800:]
    if "error" in report and "artifacts" not in report:
        return result.exit_code, None, report["error"].get("message", "")
    return result.exit_code, report, result.stderr.strip()


def board_info(report: dict) -> dict:
    """What the matrix says about a board, from a check report (no extra round trip to the board)."""
    device = report.get("device") or {}
    return {key: device[key] for key in ("machine", "cpu", "cpus", "os", "python") if device.get(key) is not None}


# ----------------------------------------------------------------------------- the coordinator

class Coordinator:
    """A labgrid client session (labgrid's own ClientSession, as labgrid-client uses it)."""

    def __init__(self, address: str):
        client = _labgrid()
        self.address = address
        self.errors = (client.Error,)
        from labgrid.resource.remote import RemotePlaceManager

        # One process has one session: the coordinator takes a second connection from the same process for
        # a duplicate client and drops it. So the session is labgrid's own RemotePlaceManager's, which the
        # environment's RemotePlace (resolve_device) uses too.
        manager = RemotePlaceManager.get()
        try:
            if manager.session is None:
                manager.url, manager.env = address, None
                manager._start()
            self.session = manager.session
        except Exception as exc:  # noqa: BLE001 - grpc or OS errors: one message
            raise FleetError(f"cannot reach the labgrid coordinator at {address}: {exc}",
                             "start labgrid-coordinator there, or pass --coordinator HOST:PORT "
                             "(default $LG_COORDINATOR)") from None
        self.loop = self.session.loop

    def _call(self, coroutine_function, **args):
        self.session.args = argparse.Namespace(**args)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            self.loop.run_until_complete(coroutine_function())
        return out.getvalue()

    def refresh(self, seconds: float = 0.2) -> None:
        """Let the session take in the coordinator's updates."""
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def places(self, tags: Dict[str, str]) -> List[str]:
        self.refresh(0.1)
        return sorted(name for name, place in self.session.places.items()
                      if all(place.tags.get(k) == v for k, v in tags.items()))

    def holder(self, name: str) -> Optional[str]:
        """Who holds a place: the user/host that acquired it, or the owner of the reservation it is allocated to."""
        place = self.session.places.get(name)
        if place is None:
            return None
        if place.acquired:
            return place.acquired
        if place.reservation:
            return f"{self._reservation_owner(place.reservation) or 'someone'} (reservation {place.reservation})"
        return None

    def _reservation_owner(self, token: str) -> Optional[str]:
        text = self._call(self.session.print_reservations)
        for block in text.split("Reservation '")[1:]:
            if block.startswith(token + "'"):
                for line in block.splitlines():
                    if line.strip().startswith("owner:"):
                        return line.split(":", 1)[1].strip()
        return None

    def is_free(self, name: str) -> bool:
        place = self.session.places.get(name)
        return place is not None and not place.acquired and not place.reservation

    def reserve(self, name: str, tags: Dict[str, str]) -> str:
        filters = [f"name={name}", *(f"{k}={v}" for k, v in tags.items())]
        out = self._call(self.session.create_reservation, filters=filters, prio=0.0, shell=True, wait=False)
        return out.split("LG_TOKEN=", 1)[1].split()[0]

    def wait(self, token: str, name: str, timeout: float) -> None:
        """Until the reservation is allocated; says who holds the place while waiting."""
        deadline, said = time.monotonic() + timeout, None
        while True:
            self.refresh(0.5)
            place = self.session.places.get(name)
            if place is not None and place.reservation == token:
                return
            holder = self.holder(name)
            if holder and holder != said:
                log.warning("place %s is held by %s: waiting", name, holder)
                said = holder
            if time.monotonic() > deadline:
                raise FleetError(f"place {name} was not handed to this job within {timeout:g} s"
                                 + (f": it is held by {holder}" if holder else ""),
                                 "raise --wait-timeout, or ask its holder to release it")

    def acquire(self, name: str) -> None:
        self._call(self.session.acquire, place=name, allow_unmatched=False)

    def release(self, name: str) -> None:
        self._call(self.session.release, place=name, kick=False)

    def cancel(self, token: str) -> None:
        self._call(self.session.cancel_reservation, token=token)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.session.stop())
            self.loop.run_until_complete(self.session.close())


# ----------------------------------------------------------------------------- the environment file

MAX_ENV_BYTES = 256 << 10


def check_env_file(path: Path) -> None:
    """Refuse an --env file labgrid would choke or hang on, before any place is reserved: unreadable, not
    YAML, not a mapping with ``targets``, or using anchors and aliases (a kilobyte of nested aliases
    expands to billions of nodes; labgrid walks them while the job holds a board)."""
    _labgrid()   # labgrid brings PyYAML; without it, one error that says so
    import yaml

    try:
        data = Path(path).read_bytes()[:MAX_ENV_BYTES + 1]
        text = data.decode("utf-8")
    except OSError as exc:
        raise FleetError(f"cannot read the --env file {path}: {exc.strerror or exc}",
                         "pass a labgrid environment file (wherry fleet template env prints one)") from None
    except UnicodeDecodeError:
        raise FleetError(f"the --env file {path} is not UTF-8 text", "pass a labgrid environment YAML file") from None
    if len(data) > MAX_ENV_BYTES:
        raise FleetError(f"the --env file {path} is larger than {MAX_ENV_BYTES >> 10} KiB",
                         "a labgrid environment for one place is a few lines")
    try:
        for token in yaml.scan(text):
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                raise FleetError(f"the --env file {path} uses YAML anchors or aliases (line {token.start_mark.line + 1})",
                                 "write the environment out in full: wherry fleet does not expand aliases")
        root = yaml.compose(text)
    except RecursionError:
        raise FleetError(f"the --env file {path} is nested too deeply to read",
                         "a labgrid environment is a few levels deep: wherry fleet template env prints one") from None
    except yaml.YAMLError as exc:
        raise FleetError(f"the --env file {path} is not valid YAML: {str(exc).splitlines()[0]}",
                         "wherry fleet template env prints a valid one") from None
    targets = _entry(root, "targets")
    if targets is None:
        raise FleetError(f"the --env file {path} is not a labgrid environment (no top-level 'targets')",
                         "wherry fleet template env prints one to start from")
    if not isinstance(_entry(targets, "main"), yaml.MappingNode):
        raise FleetError(f"the --env file {path} has no target 'main' (a mapping under 'targets')",
                         "wherry fleet checks each place through the target 'main': see wherry fleet template env")
    _load_environment(path)


def _entry(node, key: str):
    """The value node of ``key`` in a YAML mapping node, or None."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return None
    return next((value for k, value in node.value if getattr(k, "value", None) == key), None)


def _load_environment(path: Path):
    """Let labgrid read the file (its templates, its ``imports:``, which run as Python code, and its
    resource and driver names): what it refuses is one FleetError now, not a traceback per place later."""
    from labgrid import Environment

    saved = os.environ.get("LG_PLACE")
    os.environ.setdefault("LG_PLACE", "wherry-env-check")   # the env template names the place from it
    try:
        return Environment(config_file=str(path))
    except Exception as exc:  # noqa: BLE001 - labgrid raises what its config loader and imports raise
        raise FleetError(f"labgrid cannot use the --env file {path}: {_one_line(exc)}",
                         "wherry fleet template env prints a working one; every module under imports: must "
                         "be importable here") from None
    finally:
        if saved is None:
            os.environ.pop("LG_PLACE", None)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


# ----------------------------------------------------------------------------- one place

def resolve_device(place: str, env_file: Path, coordinator: str):
    """(device URL, token) of a place, through the labgrid environment (RemotePlace + WherryDriver)."""
    from labgrid import Environment

    os.environ["LG_PLACE"] = place
    os.environ["LG_COORDINATOR"] = coordinator
    environment = Environment(config_file=str(env_file))
    target = environment.get_target("main")
    driver = target.get_driver("WherryDriver")
    url = driver.device_url()
    return url, driver.token()


@dataclass
class PlaceRun:
    place: str
    url: Optional[str] = None
    status: str = "passed"            # passed | failed | unavailable | error
    message: str = ""
    info: dict = field(default_factory=dict)
    checks: Dict[str, dict] = field(default_factory=dict)   # bundle name -> {"exit_code", "report", "message"}
    waited_s: float = 0.0
    seconds: float = 0.0


def check_place(coordinator: Coordinator, place: str, tags: Dict[str, str], bundles: Sequence[Path],
                options: Sequence[str], env_file: Path, wait_timeout: float) -> PlaceRun:
    run = PlaceRun(place)
    start = time.monotonic()
    token = coordinator.reserve(place, tags)
    acquired = False
    try:
        coordinator.wait(token, place, wait_timeout)
        run.waited_s = time.monotonic() - start
        coordinator.acquire(place)
        acquired = True
        log.info("acquired %s after %.1f s", place, run.waited_s)
        try:
            try:
                run.url, board_token = resolve_device(place, env_file, coordinator.address)
            except Exception as exc:  # noqa: BLE001 - labgrid binding a place: its error is this place's, not the job's
                raise DeviceError(f"labgrid could not bind {place} through the --env file: {_one_line(exc)}",
                                  "check the place's resources (labgrid-client -p PLACE show)") from None
            for bundle in bundles:
                code, report, message = check_on_device(run.url, board_token, bundle, options)
                run.checks[Path(bundle).name] = {"exit_code": code, "report": report, "message": message}
                if report and not run.info:
                    run.info = board_info(report)
                if code != 0 and run.status == "passed":
                    run.status = "failed" if code == 1 else "error"
        except BoardUnavailable as exc:
            run.status, run.message = "unavailable", exc.message
        except DeviceError as exc:
            run.status, run.message = "error", exc.message
    finally:
        try:
            if acquired:
                coordinator.release(place)
        finally:
            coordinator.cancel(token)
    run.seconds = time.monotonic() - start
    return run


def run_fleet(coordinator_address: str, tags: Dict[str, str], bundles: Sequence[Path], options: Sequence[str],
              env_file: Path = ENV_TEMPLATE, wait_timeout: float = 600.0) -> List[PlaceRun]:
    coordinator = Coordinator(coordinator_address)
    try:
        remaining = coordinator.places(tags)
        if not remaining:
            raise FleetError(f"no place at {coordinator_address} has the tags "
                             f"{' '.join(f'{k}={v}' for k, v in tags.items()) or '(none)'}",
                             "list them with: labgrid-client -v places")
        runs = []
        while remaining:
            coordinator.refresh(0.1)
            # a free place first: waiting while another is free would only make this job slower
            place = next((p for p in remaining if coordinator.is_free(p)), remaining[0])
            remaining.remove(place)
            try:
                runs.append(check_place(coordinator, place, tags, bundles, options, env_file, wait_timeout))
            except coordinator.errors as exc:
                runs.append(PlaceRun(place, status="error", message=f"labgrid: {exc}"))
        return runs
    finally:
        coordinator.close()
