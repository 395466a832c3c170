# wabaflow: one image, every role (`wabaflow run --roles ...`).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin wabaflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/wabaflow /usr/local/bin/wabaflow
COPY config/wabaflow.toml /etc/wabaflow/wabaflow.toml
ENV WABAFLOW_CONFIG=/etc/wabaflow/wabaflow.toml
EXPOSE 8080 9100
ENTRYPOINT ["wabaflow"]
CMD ["run"]
