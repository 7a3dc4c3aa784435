FROM busybox
CMD ["python", "-m", "app"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD [ "a", "b c" ]
RUN ["echo", "it's"]
CMD ["unterminated"
CMD [1, 2]
