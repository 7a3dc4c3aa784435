FROM busybox
RUN apt-get update && \
    # install the tools
    apt-get install -y \
      curl \

      git \
    # done
    && true
