"""Software bills of materials written from what decided an image's content (its lockfiles and
PEX-INFOs), not guessed from its files: the inventory, its readers, and the SPDX and CycloneDX
writers."""
