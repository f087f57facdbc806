# GAX in a container: one binary, the web client embedded. Build: docker build -t gax .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin gax

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/gax /usr/local/bin/gax
VOLUME /data
EXPOSE 8080/tcp 50000-50015/udp
ENTRYPOINT ["gax"]
CMD ["serve", "--data-dir", "/data", "--listen", "0.0.0.0:8080", "--media-bind", "0.0.0.0"]
