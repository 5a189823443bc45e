"""Child-process side of an isolated session (see isolate.py). Not a user command."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, List, Optional

if TYPE_CHECKING:
    from .backends.base import Backend


def main(argv: List[str]) -> int:
    read_fd, write_fd = int(argv[1]), int(argv[2])
    if len(argv) > 3:
        # Linux: killed by the kernel when the parent dies, so a model stuck in native code never
        # outlives the runner or check that started it; elsewhere the pipe's EOF ends an idle child
        from .lifeline import die_with_parent
        die_with_parent(int(argv[3]))
    from . import backends
    from .isolate import ChildGone, error_to_json, receive, send
    from .specs import TensorSpec

    impl: Optional[Backend] = None
    while True:
        try:
            request, arrays = receive(read_fd)
        except ChildGone:  # the parent went away
            return 0
        op = request.get("op")
        try:
            if op == "open":
                inputs, outputs = [None if request.get(k) is None else [TensorSpec.from_json(s) for s in request[k]]
                                   for k in ("inputs", "outputs")]
                impl = backends.load(request["backend"], request["path"], request.get("threads"), inputs, outputs,
                                     providers=request.get("providers"))
                send(write_fd, {"inputs": [s.to_json() for s in impl.inputs],
                                "outputs": [s.to_json() for s in impl.outputs],
                                "specs_complete": impl.specs_complete, "version": impl.version,
                                "providers": getattr(impl, "providers", None)})
            elif op == "preload":
                for name in request.get("backends", []):
                    backends.preload(name)
                send(write_fd, {"ok": True})
            elif op == "run":
                assert impl is not None, "run before open"
                results = impl.run(arrays or {})
                send(write_fd, {"ok": True}, results)
            elif op == "close":
                return 0
            else:
                send(write_fd, {"error": {"type": "WherryError", "message": f"unknown request {op!r}"}})
        except BaseException as exc:  # noqa: BLE001 - every error goes back to the parent
            send(write_fd, {"error": error_to_json(exc)})


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: skip interpreter teardown, where paddle's static destructors sometimes crash.
    os._exit(code)
