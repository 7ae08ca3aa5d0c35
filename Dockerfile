# syntax=docker/dockerfile:1
# wsbridge: a static binary on distroless, running as nonroot.
#
#   docker build --build-arg VERSION=v1.2.3 --build-arg REVISION=$(git rev-parse HEAD) -t wsbridge:v1.2.3 .
#   docker run --rm -p 8080:8080 --stop-timeout 20 wsbridge:v1.2.3
#
# deploy/README.md covers Kubernetes and Compose. deploy_test.go runs the
# `go build` line below as CI's stand-in for building the image.

# The build stage runs on the builder's own platform and cross-compiles,
# so a multi-platform build (--platform linux/amd64,linux/arm64) needs no
# emulation.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wsbridge . \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="wsbridge" \
      org.opencontainers.image.description="WebSocket edge for NATS" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/wsbridge /wsbridge
# JetStream store of the embedded nats-server, used only when
# BRIDGE_NATS_URL is unset (a single node). 65532 is distroless's nonroot.
COPY --from=build --chown=65532:65532 /out/data /data
ENV BRIDGE_LISTEN=:8080 \
    BRIDGE_DATA_DIR=/data
EXPOSE 8080
VOLUME ["/data"]
USER 65532:65532
# /healthz on BRIDGE_LISTEN; the image has no shell and no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/wsbridge", "healthcheck"]
# SIGTERM drains within BRIDGE_DRAIN_TIMEOUT (10s): give docker stop and
# Kubernetes a longer grace period (docker stop's default is 10s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/wsbridge"]
