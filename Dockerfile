# signet's container image: one static binary (CGO_ENABLED=0) on an empty
# base, for the trust server and the proxy. The command picks the role:
#
#   docker run IMAGE server --addr 0.0.0.0:4443 ...
#   docker run IMAGE proxy --addr 0.0.0.0:5001 --upstream ... ...
#
# Build it with `make image` (scripts/release.sh image): the build context
# is the folder that script prepares (dist/image/), not the repository:
#
#   signet                         the static linux binary
#   rootfs/etc/passwd, group       root and the user signet (65532)
#   rootfs/etc/nsswitch.conf
#   rootfs/etc/ssl/certs/ca-certificates.crt   the CA certificates
#   rootfs/tmp                     1777
#   rootfs/var/lib, rootfs/var/cache
#   lib/signet, cache/signet       the volumes' folders, 0700, for 65532
#
# No base image is pulled (FROM scratch), so the build needs no registry.
# It runs as 65532, and with a read-only root file system
# (docker run --read-only): everything signet writes is in the two volumes,
#   /var/lib/signet   $SIGNET_DATA_DIR, and $HOME: the server's SQLite
#                     database and generated key passphrase, --dev-tls files
#   /var/cache/signet $XDG_CACHE_HOME/signet: the proxy's blob cache
# Health and readiness: GET /healthz and /readyz on the listen address of
# either role (the server's checks its database). See docs/release.md.
FROM scratch

COPY rootfs/ /
COPY --chown=65532:65532 lib/ /var/lib/
COPY --chown=65532:65532 cache/ /var/cache/
COPY signet /usr/local/bin/signet

ENV SIGNET_DATA_DIR=/var/lib/signet \
    XDG_CACHE_HOME=/var/cache \
    HOME=/var/lib/signet
USER 65532:65532
WORKDIR /var/lib/signet
VOLUME ["/var/lib/signet", "/var/cache/signet"]
# signet server --addr 0.0.0.0:4443; signet proxy --addr 0.0.0.0:5001
EXPOSE 4443 5001
ENTRYPOINT ["/usr/local/bin/signet"]
CMD ["--help"]

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="signet" \
      org.opencontainers.image.description="Notary v1-compatible trust server (signet server) and verifying registry proxy (signet proxy)" \
      org.opencontainers.image.source="https://github.com/signet-project/signet" \
      org.opencontainers.image.url="https://github.com/signet-project/signet" \
      org.opencontainers.image.documentation="https://github.com/signet-project/signet/blob/main/docs/release.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
