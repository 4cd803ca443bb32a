# close-gateway image: `docker build -t close-gateway:0.1.0 .`
# Builder: protoc comes from the protoc-bin-vendored build dependency (build.rs), so the Rust
# image needs nothing else.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
RUN cargo build --release --locked --bin close-gateway

# Runtime: glibc and CA certificates only, no shell; runs as the image's nonroot user (65532),
# the uid the Helm chart's securityContext expects.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/close-gateway /usr/local/bin/close-gateway
USER 65532:65532
# gRPC (LISTEN_ADDR) and Prometheus metrics (METRICS_ADDR, off unless set).
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/close-gateway"]
