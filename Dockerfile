# syntax=docker/dockerfile:1
#
# auditrelay in a container: a build stage with the compilers and -dev
# packages, a slim runtime stage with the shared libraries only, running as
# an unprivileged user. Configuration comes from AUDITRELAY_* variables (see
# auditrelay.conf(5)); secrets from files (compose.yaml mounts them).
#
#   docker build -t auditrelay .
#   docker compose up -d

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config protobuf-c-compiler \
      libbson-dev libcurl4-openssl-dev libevent-dev libgcrypt20-dev libssl-dev \
      libmongoc-dev libprotobuf-c-dev libsystemd-dev libyajl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build \
      -DAR_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_INSTALL_PREFIX=/usr \
      -DCMAKE_INSTALL_LIBEXECDIR=libexec \
      -DCMAKE_INSTALL_SYSCONFDIR=/etc \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build --strip \
 && rm -rf /out/usr/share/man

FROM debian:${DEBIAN_RELEASE}-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libbson-1.0-0 libcurl4 libevent-2.1-7 \
      libevent-pthreads-2.1-7 libgcrypt20 libmongoc-1.0-0 libprotobuf-c1 libssl3 \
      libsystemd0 libyajl2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 auditrelay \
 && useradd --system --uid 10001 --gid auditrelay --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin auditrelay \
 && install -d -o auditrelay -g auditrelay -m 0750 /run/auditrelay \
 && install -d -o root -g auditrelay -m 0750 /etc/auditrelay
COPY --from=build /out/ /

# No configuration file: the environment configures. The API listens on
# every interface of the container; publish it to loopback or put a TLS
# proxy in front of it. The *_FILE variables name files, not secrets.
# hadolint ignore=DL3064
ENV AUDITRELAY_API_LISTEN=0.0.0.0:8080 \
    AUDITRELAY_RUNTIME_DIR=/run/auditrelay \
    AUDITRELAY_API_TOKEN_FILE=/run/secrets/api_token \
    AUDITRELAY_CRYPTO_MASTER_KEY_FILE=/run/secrets/master_key \
    AUDITRELAY_MONGODB_URI=mongodb://mongo:27017

USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/bin/auditrelayctl", "--url", "http://127.0.0.1:8080", "status"]
ENTRYPOINT ["/usr/sbin/auditrelayd"]
