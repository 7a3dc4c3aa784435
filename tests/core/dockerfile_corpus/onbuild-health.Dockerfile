FROM busybox
ONBUILD COPY . /app
ONBUILD RUN make
HEALTHCHECK --interval=5s --retries=3 CMD ["curl", "-f", "http://localhost/"]
HEALTHCHECK CMD curl -f http://localhost/ || exit 1
HEALTHCHECK NONE
STOPSIGNAL SIGINT
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
