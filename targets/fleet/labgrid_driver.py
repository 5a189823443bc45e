"""A labgrid driver that turns a place's ``NetworkService`` into a wherry device.

Convention for the exporter (docs/devices.md): a ``NetworkService`` whose ``username`` is ``http``
is a board running the HTTP runner (``python -m wherry.runtimes serve``) at address:port; any other
username is an ssh login on that board. Secrets never live in the coordinator (it has no
authentication and shows every resource to every client): the HTTP runner's token and the board's
Python come from the job's environment, per place:

    WHERRY_TOKEN_<PLACE>   (else WHERRY_TOKEN)        the runner's bearer token
    WHERRY_PYTHON_<PLACE>  (else WHERRY_PYTHON)       the board's python for ssh (default python3)

with <PLACE> the place name upper-cased, every other character than A-Z and 0-9 as ``_``.

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
        return place_setting("WHERRY_TOKEN", self.place_name())

    @Driver.check_active
    @step(args=["bundle"])
    def check(self, bundle, *options: str):
        """Check a bundle on this board: (exit code, report JSON or None, stderr)."""
        from .job import check_on_device
        return check_on_device(self.device_url(), self.token(), bundle, list(options))
