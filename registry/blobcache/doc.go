// Package blobcache keeps blobs and manifests on disk by their sha256
// digest, for the verifying proxy's pull-through cache. It knows nothing
// of trust: the proxy decides which digests may be served and asks the
// store only for those. The store guarantees one thing: what it serves
// was checked against the digest it is served under (see Corruption for
// when).
//
// # Layout and write-after-verify
//
// Files live in <dir>/sha256/<64 hex>. A fetch writes to a temporary file
// in that same folder (named ".partial-<hex>-<random>"), hashing the bytes
// on the way. Only once the sha256 matched the digest (and the length the
// expected size) is the file synced, renamed to its digest name and the
// folder synced. A crash leaves at most temporary files, which Open
// removes; a file under a digest name is never partial.
//
// # Restarts
//
// Open indexes the files it finds: size from the file, last use from its
// modification time. The store sets the modification time to the last
// use (Options.Now) when a file is written and, at most once a minute
// per file, when it is served, so the LRU order survives a restart to
// within a minute without a separate index file that could disagree with
// the folder.
//
// # Corruption
//
// A file can rot or be cut after it was written (disk errors, a full
// disk during a copy, an operator's mistake). The scheme is:
//
//   - every open checks the file's size against the index (cheap: one
//     fstat), which catches truncation while the process runs;
//   - the first serve of each file after Open hashes the whole file
//     before the first byte goes out, and marks it verified in memory;
//     files written by this process are verified by construction. This
//     catches truncation and bit flips that happened while the proxy was
//     down, which is when files are most likely changed behind its back,
//     at the cost of one read of each file per process lifetime and a
//     delayed first byte for that one request (about 45 ms per 64 MiB at
//     1.5 GB/s);
//   - Scrub hashes every file again. The proxy may run it on a timer
//     (for example daily) to catch bit flips in files that stay in use
//     for the life of a process.
//
// Hashing on every serve would cost a full read per request and rule out
// sendfile and Range; hashing never would trust the disk more than the
// network. A corrupt file found is deleted, counted in Stats.Corrupt and
// reported as a miss, so the proxy fetches it again.
//
// # Shared fetches
//
// Fetch serves a digest from the cache or, on a miss, from one upstream
// fetch shared by every concurrent caller for that digest. The first
// caller starts the fetch in a goroutine of its own, whose context is
// derived from the store, not from any request. Every caller (the first
// one included) gets a Reader that tails the growing temporary file,
// sleeping on a condition variable until more bytes are written. A Reader
// never returns the last byte written until the whole blob was hashed and
// matched: on a digest or size mismatch or an upstream error, every
// Reader returns an error before the blob's last byte, so a proxy that
// aborts the response on a read error never hands a client a complete
// wrong body (the idea of heldWriter in registry/proxy). A caller that
// comes after the fetch completed reads the cached file (or, while the
// verified file is being synced and renamed, the finished fetch's file).
//
// The upstream fetch is not cancelled when the caller that started it
// goes away while others read. It is cancelled when no Reader is left
// before it completed (every client went away): the store does not spend
// upstream bandwidth and disk on a blob nobody waits for, and a retry
// starts a new fetch. A fetch that completed is always committed to the
// cache, whether or not anyone still reads it.
//
// Memory per fetch is four 256 KiB buffers (the copy and a second
// goroutine that hashes, pipelined) and, for a Reader used through
// WriteTo, one 256 KiB buffer per Reader, whatever the blob's size.
// Readers of a fetch in progress copy through user space (pread, then
// write); only cached files go out by sendfile.
//
// # Range requests
//
// Serve answers Range requests on cached blobs (206, through
// http.ServeContent). A Reader from Fetch yields the whole blob: for a
// Range request on a blob that is not cached the proxy should answer 200
// with the full body (a server may ignore Range, RFC 9110 §14.2).
// Serving the range from the fetch as it goes would send bytes that
// cannot be held back until the digest is checked; waiting for the whole
// blob first would stall the client for the full download. Clients use
// Range to resume, and a resumed pull finds the blob cached. A HEAD on a
// blob that is not cached should go to the upstream as a HEAD: Fetch is
// for bodies.
//
// # Eviction
//
// When the cached bytes exceed Options.MaxBytes the least recently used
// files are deleted. A file in use (an Entry or Reader open on it, or
// being verified) is pinned and never evicted: the size may then exceed
// the bound until the readers close, when eviction runs again. The store
// does not rely on POSIX "unlink an open file" semantics to evict. It
// does rely on them in two places that are not about eviction: a
// temporary file of a failed fetch is removed at once (Readers have
// already been given the error), and a corrupt file is deleted even if
// another reader has it open (that reader's response is cut short).
// A blob larger than MaxBytes is streamed to its readers but not kept.
// Temporary files of fetches in progress are not counted in the size;
// for a fetch of unknown size the temporary file is capped at MaxBytes.
//
// # Durability
//
// A committed file is synced, then renamed, then its folder is synced.
// The last use of a file is written as its modification time without
// sync: after a crash it may be a little older, which only changes the
// eviction order.
package blobcache
