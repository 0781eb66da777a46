// Package engines holds tests that pull through signet's verifying proxy
// with real container engines, as they run in production: a private
// containerd driven by ctr and by the CRI PullImage call the kubelet makes,
// and a private Docker engine driven by `docker pull`. The daemons come
// from Debian's containerd and docker.io packages and are started by
// scripts/start-containerd.sh and scripts/start-dockerd.sh, each in a
// temporary folder of its own; nothing of the machine's is changed.
//
// A missing daemon skips these tests, or fails them under
// SIGNET_REQUIRE_ALL=1 (see internal/testenv). It has no code of its own
// besides this comment.
package engines
