# Multi-stage build: compile in the Rust image, run from a slim Debian with only the binary.
#   docker build -t monitor-manager .
#   docker run -p 2433:2433 -e HOST=0.0.0.0 monitor-manager
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p monitor-manager \
    && strip target/release/monitor-manager

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home monitor
COPY --from=build /src/target/release/monitor-manager /usr/local/bin/monitor-manager
USER monitor
WORKDIR /data
ENV HOST=0.0.0.0 \
    PORT=2433 \
    DATABASE_URL=sqlite:///data/monitor-manager.db
EXPOSE 2433
HEALTHCHECK --interval=10s --timeout=6s --start-period=10s --retries=3 \
    CMD ["monitor-manager", "health"]
ENTRYPOINT ["monitor-manager"]
CMD ["serve"]
