FROM busybox
RUN --mount=type=cache,target=/root/.cache,sharing=locked --network=none pip install -r req.txt
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc \
    --mount=type=bind,source=.,target=/src npm ci
COPY --from=build --chown=app:app --link /out/ /app/
ADD --checksum=sha256:24454f830cdd571e2c4ad15481119c43b0cafd48dd357d16a3fcda98a5e2e67b https://example.com/a.tar.gz /
