"""A transport to a reference's registry, with credentials looked up as docker and podman do
(`ocibuild.registry.credentials`), and only when the registry asks for them."""

from __future__ import annotations

import os
from typing import Mapping, Optional

from ocibuild.reference import Reference
from ocibuild.registry import credentials
from ocibuild.registry.transport import Transport


def registry_transport(ref: Reference, *, insecure: bool = False, ca_cert: Optional[str] = None,
                       env: Mapping[str, str] = os.environ) -> Transport:
    return Transport(ref.api_host, insecure=insecure, ca_cert=ca_cert,
                     credentials=lambda: credentials.lookup(ref.registry, env))
