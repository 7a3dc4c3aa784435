"""A RUN step's tree: unpack layers into it, run a command in it without privilege, and make
the step's layer from what changed. See docs/run-steps.md.

    ledger = unpack([(blob, media_type), ...], root)
    before = snapshot(root, ledger)
    result = run(root, ["/bin/sh", "-c", "..."], env, cwd="/", user=(0, 0), ledger=ledger)
    blob = diff_layer(before, root, ledger, out_dir, compression="gzip", source_date_epoch=0)
"""
