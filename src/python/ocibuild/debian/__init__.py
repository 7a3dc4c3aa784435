"""Debian packages as image layers: index parsing, dependency resolution, .deb extraction."""
