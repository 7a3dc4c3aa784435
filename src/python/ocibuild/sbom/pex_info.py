"""The Python distributions of a PEX, read from its PEX-INFO.

PEX-INFO's `distributions` maps each wheel file name to pex's fingerprint of the *installed*
wheel (a hash over its unpacked files), not to the wheel file's SHA-256: the two differ, so
the fingerprint is kept as a note and the wheel's SHA-256 comes from the lockfile the PEX was
resolved from (`python_lock.wheel_hashes`), when there is one.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional

from ocibuild.errors import OciBuildError
from ocibuild.sbom.inventory import PythonDistribution
from ocibuild.untrusted import field, load_json

MAX_BYTES = 16 << 20  # a PEX of hundreds of distributions has a PEX-INFO of tens of KiB
# PEP 427: {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl, name and version with
# `-` escaped as `_`.
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def read_pex_info(data: bytes, where: str, wheel_sha256: Optional[Mapping[str, str]] = None
                  ) -> List[PythonDistribution]:
    """`wheel_sha256`: wheel file name -> SHA-256 hex, from the lockfile (None: no lockfile)."""
    wheel_sha256 = wheel_sha256 or {}
    doc = load_json(data, where, max_bytes=MAX_BYTES)
    distributions: Dict[str, object] = field(doc, "distributions", dict, where,
                                             required=True)
    found = []
    for wheel, fingerprint in sorted(distributions.items()):
        match = _WHEEL.match(wheel)
        if not match or not isinstance(fingerprint, str):
            raise OciBuildError(f"{where}: `distributions` entry {wheel[:120]!r} is not a wheel "
                                "file name with a fingerprint; rebuild the PEX")
        found.append(PythonDistribution(
            name=match["name"].replace("_", "-"), version=match["version"].replace("_", "-"),
            wheel=wheel, sha256=wheel_sha256.get(wheel), pex_fingerprint=fingerprint))
    return found
