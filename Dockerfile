# Multi-stage build of the `miroir` binary (rustls, no OpenSSL).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p miroir && strip target/release/miroir

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home miroir && mkdir -p /var/lib/miroir && chown miroir /var/lib/miroir
COPY --from=build /src/target/release/miroir /usr/local/bin/miroir
COPY conf/examples/miroir.toml /etc/miroir/miroir.toml
USER miroir
WORKDIR /var/lib/miroir
EXPOSE 7700 9090
ENTRYPOINT ["/usr/local/bin/miroir"]
CMD ["--config", "/etc/miroir/miroir.toml"]
