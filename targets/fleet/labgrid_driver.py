"""A labgrid driver that turns a place's ``NetworkService`` into a wherry device.

Convention for the exporter (docs/devices.md): a ``NetworkService`` whose ``username`` is ``http``
is a board running the HTTP runner (``python -m wherry.runtimes serve``) at address:port; any other
username is an ssh login on that board. Secrets never live in the coordinator (it has no
authentication and shows every resource to every client): the HTTP runner's token and the board's
Python come from the job's environment, per place:

    WHERRY_TOKEN_<PLACE>   (else WHERRY_TOKEN)        the runner's bearer token
    WHERRY_PYTHON_<PLACE>  (else WHERRY_PYTHON)       the board's python for ssh (default python3)

with <PLACE> the place name upper-cased, every other character than A-Z and 0-9 as ``_``.

The coordinator also says *where* a place's board is, and anyone who can reach it can change that. So
a token is sent only to an address the job's own environment lists:

    WHERRY_FLEET_HOSTS     comma-separated host or host:port entries ([v6addr]:port for IPv6)

A place whose board is elsewhere is not checked ("error", its token withheld).

In a labgrid environment file::

    targets:
      main:
        resources:
          RemotePlace: {name: !template $LG_PLACE}
        drivers:
          WherryDriver: {}
    imports: [wherry.targets.fleet.labgrid_driver]
"""
from __future__ import annotations

import os
import re
from typing import Mapping, Optional
from urllib.parse import quote

from wherry.targets.devices import DeviceError

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.step import step

HTTP_USERNAME = "http"


def place_variable(prefix: str, place: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Z0-9]', '_', place.upper())}"


def place_setting(prefix: str, place: Optional[str], environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """``PREFIX_<PLACE>`` from the environment, else ``PREFIX``."""
    if place and place_variable(prefix, place) in environ:
        return environ[place_variable(prefix, place)]
    return environ.get(prefix) or None


class TokenWithheld(DeviceError):
    """A place's board is at an address the job's environment does not list: its token is not sent."""


def _listed(address: str, port: int, environ: Mapping[str, str]) -> bool:
    host = address.strip("[]").lower()
    for entry in (e.strip() for e in environ.get("WHERRY_FLEET_HOSTS", "").split(",")):
        if not entry:
            continue
        if entry.startswith("["):   # [v6]:port or [v6]
            name, _, rest = entry[1:].partition("]")
            entry_port = rest[1:] if rest.startswith(":") else ""
        elif entry.count(":") == 1:
            name, entry_port = entry.split(":")
        else:                        # a host name, IPv4 or bare IPv6 address: any port
            name, entry_port = entry, ""
        if name.lower() == host and (not entry_port or entry_port == str(port)):
            return True
    return False


def token_for(place: Optional[str], address: str, port: int, environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """The place's token (see place_setting), only for an address WHERRY_FLEET_HOSTS lists; no token, no check."""
    token = place_setting("WHERRY_TOKEN", place, environ)
    if token is None or _listed(address, port, environ):
        return token
    raise TokenWithheld(f"place {place}: the coordinator lists its board at {address}:{port}, which "
                        "WHERRY_FLEET_HOSTS does not name: its token was not sent",
                        f"if that is your board, add {address} (or {address}:{port}) to WHERRY_FLEET_HOSTS "
                        "(comma-separated); the coordinator is not trusted with where tokens go")


def device_url(address: str, username: str, port: int, python: Optional[str] = None) -> str:
    """The ``--device`` URL of a NetworkService."""
    host = f"[{address}]" if ":" in address else address
    if username == HTTP_USERNAME:
        return f"http://{host}:{port}"
    url = f"ssh://{quote(username)}@{host}:{port}"
    return f"{url}?python={python}" if python else url


@target_factory.reg_driver
@attr.s(eq=False)
class WherryDriver(Driver):
    """The place's board as a wherry device: ``device_url()``, ``token()``, ``check(bundle, *options)``."""

    bindings = {"service": "NetworkService"}

    def place_name(self) -> Optional[str]:
        return os.environ.get("LG_PLACE") or getattr(self.target, "name", None)

    def device_url(self) -> str:
        service = self.service
        return device_url(service.address, service.username, service.port,
                          place_setting("WHERRY_PYTHON", self.place_name()))

    def token(self) -> Optional[str]:
        if self.service.username != HTTP_USERNAME:   # an ssh board: its key, not a token, lets wherry in
            return None
        return token_for(self.place_name(), self.service.address, self.service.port)

    @Driver.check_active
    @step(args=["bundle"])
    def check(self, bundle, *options: str):
        """Check a bundle on this board: (exit code, report JSON or None, stderr)."""
        from .job import check_on_device
        return check_on_device(self.device_url(), self.token(), bundle, list(options))
