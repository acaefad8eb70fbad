# Multi-stage build: compile in the Rust image, run on a slim Debian with only the binary.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin rolecall

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/rolecall --create-home rolecall
COPY --from=build /src/target/release/rolecall /usr/local/bin/rolecall
COPY mappings /usr/share/rolecall/mappings
USER rolecall
WORKDIR /var/lib/rolecall
ENV ROLECALL_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/rolecall/rolecall.db \
    ROLECALL_LOG_FORMAT=json
EXPOSE 8080
# ready: the database answers, is migrated, and (SQLite) can be written
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["rolecall"]
CMD ["serve"]
