# syntax=docker/dockerfile:1
# sub2api: one image with the server binary and the built admin UI beside it.
#   docker build --build-arg SUB2API_VERSION=v1.0.0 -t sub2api .

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Tools first, so their (long) install stays cached until their versions change.
COPY scripts/tools.sh scripts/tools.sh
COPY Cargo.lock package.json package-lock.json ./
RUN scripts/tools.sh build
COPY . .
# The release tag (v1.2.3) becomes the runtime version (1.2.3); empty means the Cargo version.
ARG SUB2API_VERSION=""
ENV SUB2API_VERSION=${SUB2API_VERSION}
RUN cargo leptos build --release

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin sub2api \
 && mkdir -p /app/data \
 && chown sub2api:sub2api /app/data
WORKDIR /app
COPY --from=build /src/target/release/sub2api /app/sub2api
COPY --from=build /src/target/site /app/site
COPY deploy/config.example.yaml /app/config.example.yaml
USER sub2api
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATABASE_URL=sqlite:///app/data/sub2api.db
VOLUME ["/app/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["/app/sub2api"]
CMD ["serve"]
