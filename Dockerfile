# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run from a small Debian image as a non-root user.
#
#   docker build -t ghcr.io/switchyard-dev/switchyard:0.1.0 .
#
# Standalone:  docker run -p 8080:8080 -v $PWD/my-manifests:/etc/switchyard:ro IMAGE
#              (CMD: serve --config /etc/switchyard, which holds examples/quickstart.yaml unless mounted over)
# Kubernetes:  the manifests in deploy/ run `serve --kubernetes --role ...` (args replace CMD).
FROM rust:1-bookworm AS build
# rdkafka (default features: libz only, no ssl/sasl/zstd/curl) builds the bundled librdkafka with its
# ./configure + make, not cmake: it needs gcc, g++, make, pkg-config, python3 and zlib headers. The rust
# image (buildpack-deps) has them already; listed so that a change of base image fails loudly here.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config python3 zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin switchyard

FROM debian:bookworm-slim
# Runtime libraries: glibc and zlib (librdkafka links -lz dynamically), both part of bookworm-slim.
# HTTPS to subscribers uses compiled-in webpki roots (plus --ca-file) and the Kubernetes client the service
# account's CA, but async-nats verifies tls:// NATS servers against the system store
# (rustls-native-certs reads /etc/ssl/certs): hence ca-certificates. The store lives in /var/lib/switchyard
# (a volume / PVC).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 65532 switchyard \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/switchyard --shell /usr/sbin/nologin switchyard \
    && mkdir -p /var/lib/switchyard /etc/switchyard \
    && chown 65532:65532 /var/lib/switchyard
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
COPY examples/quickstart.yaml /etc/switchyard/quickstart.yaml
USER 65532:65532
VOLUME ["/var/lib/switchyard"]
EXPOSE 8080 9090
ENV SWITCHYARD_LISTEN=0.0.0.0:8080 \
    SWITCHYARD_ADMIN_LISTEN=0.0.0.0:9090 \
    SWITCHYARD_DATA_DIR=/var/lib/switchyard
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve", "--config", "/etc/switchyard"]
