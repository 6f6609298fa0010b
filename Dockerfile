# clusterdns image: a static musl binary on distroless (deploy/README.md, "Build the image").
#   docker build -t <registry>/clusterdns:<tag> .
# From a checkout as it is: .dockerignore leaves out .git and target/. Needs BuildKit (the
# default builder since Docker 23) for the cache mounts.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# musl-tools: the C compiler ring (under kube's rustls) and mimalloc need for the musl target.
# libcap2-bin: setcap, so that the non-root user may bind port 53 where nothing else allows it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked -p clusterdns --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/dist/clusterdns /clusterdns
# Debug line tables are most of the file (the dist profile keeps them for backtraces).
# The file capability is for runtimes that run the image as a non-root user and set nothing
# else (it travels with the file into the final stage when the builder keeps extended
# attributes). deploy/clusterdns.yaml does not need it: its pod sysctl opens port 53. It keeps
# NET_BIND_SERVICE in the container's bounding set, without which this binary would not exec.
RUN strip --strip-debug /clusterdns \
 && setcap cap_net_bind_service=+ep /clusterdns

# distroless static: no libc (none is needed); CA certificates, /etc/passwd, user 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /clusterdns /clusterdns
USER 65532:65532
EXPOSE 53/udp 53/tcp 8080/tcp 8181/tcp 9153/tcp
ENTRYPOINT ["/clusterdns"]
