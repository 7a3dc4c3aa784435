FROM busybox
RUN echo a \
  b
CMD ["x"]