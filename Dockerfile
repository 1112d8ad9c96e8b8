# keyward in a container: `docker build -t keyward .` then
#   docker run --rm -v "$PWD:/config" -e AWS_SCIM_TOKEN keyward plan /config
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin keyward \
 && cp target/release/keyward /usr/local/bin/keyward

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /config --no-create-home keyward
COPY --from=build /usr/local/bin/keyward /usr/local/bin/keyward
USER 10001:10001
WORKDIR /config
ENTRYPOINT ["keyward"]
CMD ["--help"]
