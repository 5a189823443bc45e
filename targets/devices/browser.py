"""`--device browser[:wasm|:webgpu]`: a bundle's ONNX artifacts run by onnxruntime-web in headless Chromium.

A browser is no Python runner, so this device answers check / bench / info / run itself (wherry.targets.web)
and prints what the runner would: the same table, --json document and --junit file as every other device.
"""
from __future__ import annotations

import contextlib
import io
import sys
from typing import List

from wherry.runtimes import cli as runner
from wherry.runtimes import time_limit
from wherry.targets.devices import Device, DeviceError, RunnerResult

PREFIX = "browser"
DEFAULT_THREADS = 2  # the web profile's; COOP/COEP make them real (docs/web.md)


def parse(device: str) -> str:
    """'browser' / 'browser:wasm' / 'browser:webgpu' -> the execution provider."""
    from wherry.targets.web.session import EXECUTION_PROVIDERS

    _, _, ep = device.partition(":")
    ep = ep or "wasm"
    if ep not in EXECUTION_PROVIDERS:
        raise DeviceError(f"unknown browser execution provider in {device!r}",
                          "use browser (WebAssembly), browser:wasm or browser:webgpu "
                          "(browser:webgpu-jsep: the older WebGPU backend, to reproduce its known wrong outputs)")
    return ep


class BrowserDevice(Device):
    def __init__(self, device: str):
        self.name = device
        self.ep = parse(device)

    def run(self, argv: List[str], paths) -> RunnerResult:
        command = argv[0] if argv else "info"
        handlers = {"check": self._check, "bench": self._bench, "info": self._info, "run": self._run}
        if command not in handlers:
            raise DeviceError(f"`{command}` is not available on the browser device", "use check, bench, info or run")
        args = runner.build_parser().parse_args(argv)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = handlers[command](args)
        return RunnerResult(code, out.getvalue(), "")

    def _check(self, args) -> int:
        from wherry.targets.web import check

        # a browser session's own start and page load are in it: the fixed default, not the derived limit
        timeout = time_limit.DEFAULT_S if args.timeout is None else (args.timeout if args.timeout > 0 else 24 * 3600.0)
        report = check.check(args.bundle, ep=self.ep, threads=args.threads or DEFAULT_THREADS,
                             artifacts=args.artifact, overrides=runner.parse_tolerance_overrides(args),
                             timeout=timeout)
        return runner.print_check_report(args, report)

    def _bench(self, args) -> int:
        from wherry.targets.web import bench

        if args.runs < 1 or args.warmup < 0:
            raise DeviceError("--runs must be >= 1 and --warmup >= 0", "example: --warmup 5 --runs 50")
        model, feeds = _model_and_feeds(args)
        threads = [args.threads] if args.threads else [1, 2]
        result = bench.bench(model, feeds, self.ep, threads, args.runs, args.warmup)
        if args.json:
            runner.emit_json("web-bench", result)
        else:
            print(bench.render(result))
        return 0

    def _info(self, args) -> int:
        from wherry.targets.web import session

        info = session.run([], {}, ep=self.ep, threads=DEFAULT_THREADS).device_info()
        if args.json:
            runner.emit_json("web-info", info)
        else:
            width = max(len(k) for k in info)
            for key, value in info.items():
                print(f"{key.ljust(width)}  {value}")
        return 0

    def _run(self, args) -> int:
        import numpy as np

        from wherry.targets.web import session

        model, feeds = _model_and_feeds(args)
        got = session.run([model], feeds, ep=self.ep, threads=args.threads or DEFAULT_THREADS).results[model.name]
        if got.error:
            raise DeviceError(f"onnxruntime-web ({self.ep}) could not run {model.name}: {got.error}")
        if args.out:
            np.savez(args.out, **got.outputs)
        for name, value in got.outputs.items():
            print(f"{name}: {value.dtype}{list(value.shape)}", file=sys.stdout)
        print(f"(onnxruntime-web {self.ep}, {(got.run_ms or 0):.1f} ms" + (f", wrote {args.out})" if args.out else ")"))
        return 0


def _model_and_feeds(args):
    """The ONNX artifact named by PATH/--artifact and the feeds: --inputs, else the bundle's golden inputs."""
    from wherry.targets.web import bench

    model, feeds = bench.resolve_onnx(args.path, args.artifact)
    if args.inputs:
        from wherry.runtimes.npz import load_npz
        feeds = load_npz(args.inputs)
    if feeds is None:
        raise DeviceError(f"{args.path} is not inside a bundle, so there are no golden inputs",
                          "pass --inputs in.npz")
    return model, feeds
