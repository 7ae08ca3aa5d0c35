# syntax=docker/dockerfile:1
# wsbridge: a small static image. Build: docker build -t wsbridge .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/wsbridge . \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wsbridge /wsbridge
# The embedded nats-server's JetStream store, when BRIDGE_NATS_URL is unset.
COPY --from=build --chown=65532:65532 /out/data /data
ENV BRIDGE_LISTEN=:8080 \
    BRIDGE_DATA_DIR=/data
EXPOSE 8080
VOLUME ["/data"]
USER 65532:65532
# Kubernetes: readinessProbe GET /readyz, livenessProbe GET /healthz.
# SIGTERM drains (BRIDGE_DRAIN_TIMEOUT, default 10s): keep the grace period above it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/wsbridge"]
