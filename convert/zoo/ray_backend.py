"""Zoo tasks on a Ray cluster: one Ray task per model (with its uncached targets).

Each Ray task runs the same isolated worker process as a local run (a native crash still costs
one task, not the Ray worker) and sends its bundles back to the driver as tar archives, so the
cluster's nodes need no shared output directory; they do need the model and data files at the
same paths (a shared file system) and the same wherry[host] installation as the driver.

    --ray local            start a private Ray instance on this machine (tests, one big box)
    --ray auto             connect to the cluster this machine belongs to (`ray start`, RAY_ADDRESS)
    --ray ray://HEAD:10001 connect through the Ray client of a remote cluster
"""
from __future__ import annotations

import io
import logging
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

from wherry.runtimes.errors import WherryError

from . import cache as cache_mod
from .execute import run_task
from .spec import bundle_name

log = logging.getLogger(__name__)

TASK_MEMORY = 1 << 30   # what Ray reserves per task (bytes): keeps a node from running more conversions than fit


class RayUnavailable(WherryError):
    """--ray was given and Ray is not installed or its cluster cannot be reached."""


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


def convert_on_node(task: dict, timeout: Optional[float]) -> dict:
    """Body of one Ray task: convert into a scratch folder on the node, return the verdicts and the bundles."""
    with tempfile.TemporaryDirectory(prefix="wherry-zoo-ray-") as scratch:
        result = run_task({**task, "out": scratch}, timeout)
        name = task["model"]["name"]
        folders = {t: Path(scratch) / bundle_name(name, t) for t in task["targets"]}
        result["bundles"] = {folder.name: _tar(folder) for folder in folders.values() if folder.is_dir()}
    result["node_tools"] = [list(cache_mod.tool_versions()), cache_mod.code_hash()]
    return result


def _unpack(data: bytes, out: Path, bundle_name: str) -> None:
    stage = Path(tempfile.mkdtemp(prefix=f".{bundle_name}.ray-", dir=out))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():   # only the bundle's own files, nothing outside it
                if not (member.isfile() or member.isdir()) or Path(member.name).is_absolute() \
                        or ".." in Path(member.name).parts or Path(member.name).parts[0] != bundle_name:
                    raise WherryError(f"a Ray worker sent an unexpected archive member {member.name!r}")
            tar.extractall(stage)
        cache_mod.publish(stage / bundle_name, out / bundle_name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _connect(address: str, jobs: Optional[int]):
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray, which is not installed",
                             "pip install 'wherry[ray]' (on the driver and on every node of the cluster)") from None
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(num_cpus=jobs, include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
            else:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"cannot connect to the Ray cluster at {address!r}: {str(exc).splitlines()[0]}",
                                 "start one with `ray start --head`, give its address (ray://HEAD:10001), or use "
                                 "--ray local") from None
    return ray


def run_tasks_on_ray(tasks, address: str, out: Path, finish, timeout: Optional[float],
                     jobs: Optional[int] = None) -> None:
    ray = _connect(address, jobs)
    remote = ray.remote(num_cpus=1, memory=TASK_MEMORY, max_retries=0)(convert_on_node)
    waiting = {remote.remote(task, timeout): task for task in tasks}
    here = [list(cache_mod.tool_versions()), cache_mod.code_hash()]
    while waiting:
        done, _ = ray.wait(list(waiting), num_returns=1)
        task = waiting.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as exc:  # noqa: BLE001 - a lost node or worker: the task's cells crashed, the zoo goes on
            result = {"crashed": f"the Ray task failed: {str(exc).splitlines()[0][:300]}"}
        for folder, data in result.pop("bundles", {}).items():
            if folder in {bundle_name(task["model"]["name"], t) for t in task["targets"]}:
                _unpack(data, out, folder)
        if result.pop("node_tools", here) != here:
            log.warning("%s: the Ray node runs other tool versions or wherry code than this machine: its "
                        "results are reported but not cached", task["model"]["name"])
            result["uncacheable"] = True
        finish(task, result)


def shutdown() -> None:
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
