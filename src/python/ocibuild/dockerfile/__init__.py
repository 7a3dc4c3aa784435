"""Dockerfile builds without a daemon: parser, substitution, stages, COPY/ADD planning, builder.

`parser` turns the text into instruction nodes as BuildKit's parser does; `shell` expands
`$X`/`${X:-d}` as BuildKit's shell lexer does; `instructions` types each node; `stages`
selects the stages a target needs; `dockerignore` and `copy` decide what COPY/ADD put where;
`builder` runs them into layers and an image config.
"""
