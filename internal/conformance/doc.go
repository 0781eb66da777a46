// Package conformance runs the OCI distribution-spec conformance suite
// (github.com/opencontainers/distribution-spec/conformance, built into
// .tools/bin/oci-conformance by scripts/install-tools.sh) against the
// verifying proxy (registry/proxy): its pull and content-discovery tests,
// with content pushed to an in-process upstream registry and signed on an
// in-process trust server first. The tests assert the exact list of suite
// tests expected to fail through the proxy, with the reason for each, so a
// new failure or an unexpected pass fails. It has no code of its own
// besides this comment.
package conformance
