FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin larder

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/larder /usr/local/bin/larder
ENV LARDER_DATA_DIR=/var/lib/larder LARDER_LISTEN=0.0.0.0:8080
VOLUME /var/lib/larder
EXPOSE 8080
ENTRYPOINT ["larder"]
