# insync-operator image: a static musl binary on distroless, running as uid 65532.
#   docker build -t ghcr.io/insync-operator/insync-operator:0.1.0 .
#   kind load docker-image ghcr.io/insync-operator/insync-operator:0.1.0
# Builds for x86_64 (the builder targets x86_64-unknown-linux-musl explicitly).

FROM rust:1.95-bookworm AS build
# musl-gcc for the C parts of the TLS stack (aws-lc-sys, ring); cmake in case aws-lc-sys wants it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools cmake \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# The whole workspace (operator and e2e are both members); .dockerignore keeps target/ and state out.
COPY Cargo.toml Cargo.lock ./
COPY operator operator
COPY e2e e2e
RUN cargo build --locked --release -p insync-operator --bin insync-operator --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/insync-operator /insync-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /insync-operator /insync-operator
USER 65532:65532
ENTRYPOINT ["/insync-operator"]
CMD ["run"]
