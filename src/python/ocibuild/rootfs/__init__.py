"""A RUN step's tree: unpack layers into it, run a command in it without privilege, and make
the step's layer from what changed. See docs/run-steps.md.

    ledger = unpack([(blob, media_type), ...], root)
    before = snapshot(root, ledger)
    result = run(root, ["/bin/sh", "-c", "..."], env, cwd="/", user=(0, 0), ledger=ledger)
    blob = diff_layer(before, root, ledger, out_dir, compression="gzip", source_date_epoch=0)
"""

from ocibuild.rootfs.diff import diff_layer  # noqa: E402
from ocibuild.rootfs.ledger import Ledger  # noqa: E402
from ocibuild.rootfs.snapshot import Snapshot, snapshot  # noqa: E402
from ocibuild.rootfs.step import RunResult, run  # noqa: E402
from ocibuild.rootfs.unpack import unpack  # noqa: E402
from ocibuild.rootfs.users import resolve_user, supplementary_groups  # noqa: E402

__all__ = ["Ledger", "RunResult", "Snapshot", "diff_layer", "resolve_user", "run", "snapshot",
           "supplementary_groups",
           "unpack"]
