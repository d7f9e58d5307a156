# syntax=docker/dockerfile:1
#
# rapport container image: the Rust binary on distroless/cc (glibc, CA certificates).
#   docker build -t rapport:0.1.0 .
#   docker run --rm -p 50051:50051 rapport:0.1.0            # SQLite demo in /data
#   docker run --rm -e DATABASE_URL=postgres://... rapport:0.1.0 migrate
# The Helm chart (helm/rapport) runs it as UID 10001 with a read-only root filesystem.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# protox compiles the .proto files in build.rs, so no protoc is needed.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rapport \
 && install -D -m 0755 target/release/rapport /out/usr/local/bin/rapport \
 && install -d -m 0750 -o 10001 -g 10001 /out/data

# distroless/cc: glibc, libgcc, CA certificates and tzdata; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="rapport" \
      org.opencontainers.image.description="Customer-engagement gRPC service: NPS, CSAT and CES surveys" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/usr/local/bin/rapport /usr/local/bin/rapport
# Writable home of the SQLite demo database (./rapport.db) when DATABASE_URL is unset.
COPY --from=build --chown=10001:10001 /out/data /data
WORKDIR /data
# The same fixed non-root UID/GID as the chart's securityContext.
USER 10001:10001
# gRPC (+ health, reflection), HTTP gateway, Prometheus metrics.
EXPOSE 50051 8080 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rapport"]
CMD ["serve"]
