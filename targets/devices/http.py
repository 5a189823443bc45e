"""Client of the HTTP runner (runtimes/serve.py): `--device http://host:port`.

The token comes from WHERRY_TOKEN. ``check``, ``run`` and ``bench`` send the command's options to the
runner (runtimes/remote.py: protocol 2) and print the same table or JSON the local command would;
--junit and --out files are written here. An option the runner cannot honour is refused, and a
runner too old for the options asked of it says so instead of dropping them.

A busy runner (503) and a dropped connection are retried with exponential backoff for up to
``RETRY_FOR_S`` seconds (the runner reads what it refuses, so a refusal is a clean 503); a refused
connection (no runner listening) and a runner that stays silent are not retried. The clean-up DELETE
of the uploaded bundle never throws a finished check away: its failure is a warning.

Redirects are not followed: urllib would send the request, bearer token included, on to whatever address
a ``Location`` names (any host); a runner never redirects, so a 3xx is one error and the token stays here.
"""
from __future__ import annotations

import http.client
import io
import json
import logging
import os
import random
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import List, Optional

from wherry.runtimes import remote
from wherry.runtimes.cli import build_parser, schema_id
from wherry.targets.devices import BoardUnavailable, Device, DeviceError, RunnerResult, capture_output

log = logging.getLogger(__name__)

RETRY_FOR_S = 120.0          # how long in all a busy runner or dropped connection is retried
_FIRST_DELAY_S, _MAX_DELAY_S = 0.25, 5.0
_DROPPED = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.HTTPException)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the 3xx reaches ``_request_once`` as an HTTPError, and the token goes nowhere else."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class _Retry(Exception):
    """A transient failure: ``error`` is what the user sees if retrying runs out of time."""

    def __init__(self, error: DeviceError, after: float = 0.0):
        super().__init__(error.message)
        self.error, self.after = error, after


class HttpDevice(Device):
    def __init__(self, url: str):
        try:
            parsed = urllib.parse.urlsplit(url)
            parsed.port   # urllib checks the port only when it is asked for it
        except ValueError as exc:   # "Invalid IPv6 URL", a port that is no number or out of range
            raise DeviceError(f"bad http device {url!r}: {exc}", "use http://host:port (the runner's address)") from None
        if not parsed.hostname:
            raise DeviceError(f"bad http device {url!r}: no host", "use http://host:port (the runner's address)")
        self.name = url
        self.base = url.rstrip("/")
        self.token = os.environ.get("WHERRY_TOKEN")  # the fleet job sets a per-board one
        self.retry_for = RETRY_FOR_S

    def _request(self, method: str, path: str, body: Optional[bytes] = None, timeout: float = 600, headers=None):
        """One request, retried with jittered exponential backoff while the runner is busy (503) or drops the
        connection, for at most ``retry_for`` seconds."""
        deadline = time.monotonic() + self.retry_for
        delay = _FIRST_DELAY_S
        while True:
            try:
                return self._request_once(method, path, body, timeout, headers)
            except _Retry as retry:
                wait = max(retry.after, delay * random.uniform(0.5, 1.5))
                if time.monotonic() + wait > deadline:
                    raise retry.error from None
                log.info("%s; retrying in %.1f s", retry.error.message, wait)
                time.sleep(wait)
                delay = min(delay * 2, _MAX_DELAY_S)

    def _request_once(self, method: str, path: str, body, timeout: float, headers):
        request = urllib.request.Request(self.base + path, data=body, method=method)
        token = self.token
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read())
            except (ValueError, OSError, http.client.HTTPException):
                detail = {}
            if not isinstance(detail, dict) or not isinstance(detail.get("error", ""), str):
                detail = {}
            detail.setdefault("error", str(exc))
            if exc.code == 503:
                raise _Retry(DeviceError(f"runner at {self.base} stayed busy (503) for {self.retry_for:g} s during "
                                         f"{method} {path}: {detail.get('error')}",
                                         detail.get("hint") or "try again later"), _retry_after(exc.headers))
            if 300 <= exc.code < 400:
                raise DeviceError(f"runner at {self.base} answered {method} {path} with a redirect ({exc.code}) to "
                                  f"{exc.headers.get('Location', '?')!r}, which was not followed: a wherry runner never "
                                  "redirects, and the request (with its token) goes only to the address given",
                                  "pass the runner's own address to --device (is something else listening there?)") \
                    from None
            if exc.code == 401:
                raise DeviceError(f"runner at {self.base} answered 401: "
                                  f"{'wrong token' if token else 'a token is required'}",
                                  "set WHERRY_TOKEN to the runner's --token (the same value on both sides)") from None
            raise DeviceError(f"runner at {self.base} refused {method} {path}: {detail.get('error')}",
                              detail.get("hint") or "see the runner's log") from None
        except urllib.error.URLError as exc:  # no connection: refused, no route, unknown name, connect timeout
            if isinstance(exc.reason, _DROPPED):   # connected, then dropped while sending the request
                raise _Retry(self._dropped(method, path, exc.reason)) from None
            raise BoardUnavailable(f"board unavailable: cannot reach the runner at {self.base}: {exc.reason}",
                                   "start it on the device (python -m wherry.runtimes serve --host 0.0.0.0 "
                                   "--token-file FILE), or check that the board is powered and on the network") \
                from None
        except _DROPPED as exc:  # connected, then the runner dropped the connection
            raise _Retry(self._dropped(method, path, exc)) from None
        except OSError as exc:  # connected, then the runner went silent
            raise DeviceError(f"the runner at {self.base} stopped answering during {method} {path}: {exc}",
                              "see the runner's log; a job longer than its --job-timeout is stopped") from None

    def _reply(self, body: bytes, what: str, *keys: str) -> dict:
        """A runner's JSON reply as a dict holding ``keys``; anything else is one DeviceError, never a
        KeyError (a fleet job goes on with its other boards)."""
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise self._unreadable(what, "it is not JSON") from None
        if not isinstance(document, dict):
            raise self._unreadable(what, "it is not a JSON object")
        missing = [k for k in keys if k not in document]
        if missing:
            raise self._unreadable(what, f"it lacks {', '.join(missing)}")
        return document

    def _unreadable(self, what: str, why: str) -> DeviceError:
        return DeviceError(f"the runner at {self.base} sent an unreadable reply to {what}: {why}",
                           "is that address a wherry runner (python -m wherry.runtimes serve) of this version?")

    def _dropped(self, method: str, path: str, exc) -> DeviceError:
        return DeviceError(f"the runner at {self.base} kept dropping the connection during {method} {path} "
                           f"(retried for {self.retry_for:g} s): {exc!r}",
                           "see the runner's log; is it overloaded (--max-connections) or restarting?")

    def _forget(self, bundle_id: str) -> str:
        """Delete the uploaded bundle; a failure is a warning line, never the command's error."""
        try:
            self._request("DELETE", f"/bundles/{bundle_id}", timeout=60)
        except DeviceError as exc:
            return (f"warning: could not remove bundle {bundle_id} from the runner at {self.base}: {exc.message} "
                    f"(the runner removes it when it stops)\n")
        return ""

    def protocol(self) -> int:
        """The runner's protocol version (1 for a runner that does not say); the /info request also proves
        the token before a large upload (a runner refusing it closes the connection mid-upload)."""
        _, body, _ = self._request("GET", "/info", timeout=60)
        protocol = self._reply(body, "GET /info").get("protocol", 1)
        if not isinstance(protocol, int) or isinstance(protocol, bool):
            raise self._unreadable("GET /info", "its protocol is not a number")
        return protocol

    def _require(self, version: int, have: int, what: str) -> None:
        if have < version:
            raise DeviceError(f"runner too old: the runner at {self.base} speaks protocol {have}, and {what} needs "
                              f"protocol {version}", "update wherry on the board (pip install -U wherry-runtime, "
                                                     "or copy the new runtimes/ folder) and restart its runner")

    def _upload(self, bundle: Path) -> str:
        _, body, _ = self._request("POST", "/bundles", _pack(bundle))
        bundle_id = self._reply(body, "POST /bundles", "id")["id"]
        if not isinstance(bundle_id, str) or not bundle_id.isalnum():
            raise self._unreadable("POST /bundles", "the bundle id is not a plain name")
        return bundle_id

    def run(self, argv: List[str], paths) -> RunnerResult:
        command = argv[0]
        if command == "info":
            _, body, _ = self._request("GET", "/info")
            info = self._reply(body, "GET /info")
            text = json.dumps({"schema": schema_id("info"), **info}, indent=2) if "--json" in argv \
                else "\n".join(f"{k:<18} {v}" for k, v in info.items())
            return RunnerResult(0, text + "\n", "")
        if command not in ("check", "run", "bench"):
            raise DeviceError(f"`{command}` is not available over HTTP", "use check, run, bench or info")
        args = build_parser().parse_args(argv)
        bundle = Path(args.bundle if command == "check" else args.path)
        if not bundle.is_dir():
            raise DeviceError(f"{bundle} is not a bundle directory: over HTTP the runner gets a whole bundle",
                              "pass the bundle directory (and --artifact FILE), or use --device ssh://")
        # every option is turned into the request (or refused) before anything is uploaded
        request = query = None
        if command == "check":
            request = remote.check_request(args)
            needed = "check with " + ", ".join(sorted(request.keys() - {"timeout"})) \
                if remote.needs_protocol_2(request) else None
        elif command == "run":
            query = remote.run_query(args)
            needed = "run with options or without --inputs" \
                if remote.needs_protocol_2_run(query, bool(args.inputs)) else None
        else:
            remote.refuse_inputs_file(args, "bench")
            request, needed = remote.bench_request(args), "bench"
        protocol = self.protocol()
        if needed:
            self._require(2, protocol, needed)
        bundle_id = self._upload(bundle)
        try:
            result = self._command(command, bundle_id, args, protocol, request, query)
        except BaseException:
            self._forget(bundle_id)
            raise
        warning = self._forget(bundle_id)
        return RunnerResult(result.exit_code, result.stdout, result.stderr + warning) if warning else result

    def _command(self, command: str, bundle_id: str, args, protocol: int, request, query) -> RunnerResult:
        if command == "check":
            body = json.dumps(request).encode() if protocol >= 2 else None
            _, reply, _ = self._request("POST", f"/bundles/{bundle_id}/check", body,
                                        headers={"Content-Type": "application/json"})
            document = self._reply(reply, "POST check", "ok", "report", "table")
            return capture_output(lambda: remote.print_check(document, args))
        if command == "bench":
            _, reply, _ = self._request("POST", f"/bundles/{bundle_id}/bench", json.dumps(request).encode(),
                                        headers={"Content-Type": "application/json"})
            result = self._reply(reply, "POST bench")
            result["artifact"] = f"{args.path}/{args.artifact}" if args.artifact else args.path
            return capture_output(lambda: remote.print_bench(result, args))
        return self._run(bundle_id, args, query)

    def _run(self, bundle_id: str, args, query) -> RunnerResult:
        import numpy as np

        body = Path(args.inputs).read_bytes() if args.inputs else b""
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        _, reply, headers = self._request("POST", f"/bundles/{bundle_id}/run{suffix}", body)
        try:
            with np.load(io.BytesIO(reply), allow_pickle=False) as data:
                outputs = {name: data[name] for name in data.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise self._unreadable("POST run", f"its outputs are not a readable .npz ({exc})") from None
        backend = headers.get("X-Wherry-Backend") or "?"
        seconds = float(headers.get("X-Wherry-Seconds") or 0.0)
        return capture_output(lambda: remote.print_run(outputs, backend, seconds, args))


def _pack(bundle: Path) -> bytes:
    """The bundle folder as a .tar.gz, walked with a list rather than tarfile's recursion (one Python frame per
    folder: a bundle with a folder nested ~1000 deep was a RecursionError). Links go in as links, for the
    runner to refuse with its own message, as it refuses a folder nested deeper than it accepts."""
    buffer = io.BytesIO()
    try:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            pending = [(bundle, bundle.name)]
            while pending:
                path, name = pending.pop()
                archive.add(path, arcname=name, recursive=False)
                if path.is_dir() and not path.is_symlink():
                    with os.scandir(path) as entries:
                        children = sorted(entry.name for entry in entries)
                    pending.extend((path / child, f"{name}/{child}") for child in reversed(children))
    except OSError as exc:
        raise DeviceError(f"cannot pack the bundle {bundle} for the runner: {exc.strerror or exc}"
                          + (f" ({exc.filename})" if getattr(exc, "filename", None) else ""),
                          "make every file of the bundle readable") from None
    return buffer.getvalue()


def _retry_after(headers) -> float:
    """A runner's Retry-After in seconds (bounded: a hostile value cannot park the client)."""
    try:
        return min(float((headers or {}).get("Retry-After") or 0), _MAX_DELAY_S)
    except ValueError:
        return 0.0
