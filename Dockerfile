# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run from a small Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin switchyard

FROM debian:bookworm-slim
RUN useradd --system --uid 65532 --home-dir /var/lib/switchyard switchyard \
    && mkdir -p /var/lib/switchyard /etc/switchyard \
    && chown switchyard /var/lib/switchyard
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
COPY examples/quickstart.yaml /etc/switchyard/quickstart.yaml
USER 65532
VOLUME ["/var/lib/switchyard"]
EXPOSE 8080 9090
ENV SWITCHYARD_LISTEN=0.0.0.0:8080 \
    SWITCHYARD_ADMIN_LISTEN=0.0.0.0:9090 \
    SWITCHYARD_DATA_DIR=/var/lib/switchyard \
    SWITCHYARD_CONFIG=/etc/switchyard
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve"]
