// Package e2e holds end-to-end tests that run the same trust data through
// every reader signet has (signet verify and inspect, through
// internal/publish, and the verifying proxy) and through the real docker
// and notary clients, and check that they give one answer. It has no
// code of its own besides this comment.
package e2e
