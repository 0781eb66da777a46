// Package image tests signet's container image as a release ships it:
// built by scripts/release.sh image (the Dockerfile, on an empty base)
// with a private Docker engine (scripts/start-dockerd.sh), then run as
// `signet server` and `signet proxy` with a read-only root file system and
// volumes; a signet built on the host signs into the containerised trust
// server, and pulls through the containerised proxy are served only when
// signed. The image itself is pushed and signed the same way and pulled
// back through the proxy, as the release flow does.
//
// The test needs root, dockerd, unshare and the docker CLI: without them
// it skips, or fails under SIGNET_REQUIRE_ALL=1 (see internal/testenv).
// It has no code of its own besides this comment.
package image
