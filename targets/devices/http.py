"""Client of the HTTP runner (runtimes/serve.py): `--device http://host:port`.

The token comes from WHERRY_TOKEN. ``check`` uploads the bundle, runs the check on the device and
prints the same table or JSON the local runner would; ``info`` and ``run`` work too.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import List

from wherry.runtimes.cli import schema_id
from wherry.targets.devices import Device, DeviceError, RunnerResult


class HttpDevice(Device):
    def __init__(self, url: str):
        self.name = url
        self.base = url.rstrip("/")

    def _request(self, method: str, path: str, body: bytes = None, timeout: float = 600):
        request = urllib.request.Request(self.base + path, data=body, method=method)
        token = os.environ.get("WHERRY_TOKEN")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read())
            except ValueError:
                detail = {"error": str(exc)}
            if exc.code == 401:
                raise DeviceError(f"runner at {self.base} answered 401: "
                                  f"{'wrong token' if token else 'a token is required'}",
                                  "set WHERRY_TOKEN to the runner's --token (the same value on both sides)") from None
            raise DeviceError(f"runner at {self.base} refused {method} {path}: {detail.get('error')}",
                              detail.get("hint") or "see the runner's log") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeviceError(f"cannot reach the runner at {self.base}: {getattr(exc, 'reason', exc)}",
                              "start it on the device: python -m wherry.runtimes serve --host 0.0.0.0 --token SECRET") from None

    def _upload(self, bundle: Path) -> str:
        # A small authenticated request first: a runner refusing the token closes the connection while
        # a large upload is still being sent, which the client would only see as a broken pipe.
        self._request("GET", "/info", timeout=60)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(bundle, arcname=bundle.name)
        _, body = self._request("POST", "/bundles", buffer.getvalue())
        return json.loads(body)["id"]

    def run(self, argv: List[str], paths) -> RunnerResult:
        command, rest = argv[0], argv[1:]
        as_json = "--json" in rest
        if command == "info":
            _, body = self._request("GET", "/info")
            info = json.loads(body)
            text = json.dumps({"schema": schema_id("info"), **info}, indent=2) if as_json else "\n".join(f"{k:<18} {v}" for k, v in info.items())
            return RunnerResult(0, text + "\n", "")
        if command not in ("check", "run") or not paths:
            raise DeviceError(f"`{command}` is not available over HTTP", "use check, run or info, or --device ssh://")
        bundle = Path(paths[0])
        bundle_id = self._upload(bundle)
        try:
            if command == "check":
                _, body = self._request("POST", f"/bundles/{bundle_id}/check")
                reply = json.loads(body)
                text = json.dumps({"schema": schema_id("check"), **reply["report"]}, indent=2) if as_json \
                    else reply["table"]
                return RunnerResult(0 if reply["ok"] else 1, text + "\n", "")
            return self._run(bundle_id, rest)
        finally:
            self._request("DELETE", f"/bundles/{bundle_id}")

    def _run(self, bundle_id: str, rest: List[str]) -> RunnerResult:
        def option(name):
            return rest[rest.index(name) + 1] if name in rest else None
        inputs, out, artifact = option("--inputs"), option("--out"), option("--artifact")
        if not inputs or not out:
            raise DeviceError("run over HTTP needs --inputs IN.npz and --out OUT.npz")
        query = f"?artifact={artifact}" if artifact else ""
        _, body = self._request("POST", f"/bundles/{bundle_id}/run{query}", Path(inputs).read_bytes())
        Path(out).write_bytes(body)
        return RunnerResult(0, f"outputs written to {out}\n", "")
