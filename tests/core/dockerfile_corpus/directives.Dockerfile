# syntax=docker/dockerfile:1.7
# check=skip=JSONArgsRecommended
# escape=\

ARG VERSION=1.2
FROM --platform=$BUILDPLATFORM golang:${VERSION} AS build
# syntax=ignored/now
FROM build
