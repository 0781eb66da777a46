package blobcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultMaxBytes is the size bound when Options.MaxBytes is 0: 20 GiB.
const DefaultMaxBytes int64 = 20 << 30

// touchEvery is how stale a file's modification time (its persisted last
// use) may get before a serve writes it again.
const touchEvery = time.Minute

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("blob cache closed")

// ErrLocked is returned by Open when another store (another process) has
// the folder open.
var ErrLocked = errors.New("the folder is in use by another signet proxy")

// ErrInUse is returned by Remove for a blob that is being read.
var ErrInUse = errors.New("blob in use")

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// MaxBytes bounds the bytes of cached files; least recently used
	// files are evicted beyond it. 0 means DefaultMaxBytes (20 GiB).
	MaxBytes int64
	// Logger receives corruption, eviction and fetch failure reports.
	// nil discards them.
	Logger *slog.Logger
	// Now is the clock for last-use times. nil means time.Now.
	Now func() time.Time
	// Shared, if not nil, is a store shared with other proxies, looked
	// up on a miss before the source and given every blob fetched from
	// the source (see Shared).
	Shared Shared
}

// Store is a content-addressed store of verified blobs in one folder.
// It is safe for concurrent use.
type Store struct {
	dir    string   // <dir>/sha256
	lock   *os.File // <dir>/lock, held while open
	max    int64
	shared Shared
	log    *slog.Logger
	now    func() time.Time

	// ctx is the parent of upstream fetches; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // fetch goroutines

	mu      sync.Mutex
	entries map[string]*entry
	lru     *list.List // of *entry, most recently used first
	size    int64
	flights map[string]*flight
	closed  bool

	stats counters
}

// entry is a file under its digest name.
type entry struct {
	digest  string
	size    int64
	elem    *list.Element
	lastUse time.Time // guarded by Store.mu
	touched time.Time // last use written as the file's mtime; Store.mu
	refs    int       // open Entries and Readers; pinned while > 0; Store.mu

	verifyMu sync.Mutex
	verified bool   // hashed since Open (or written here); verifyMu
	bad      string // why the hash check failed; verifyMu
}

// Open opens the store in dir, creating it if needed. It locks the folder
// (one store per folder; ErrLocked if another process has it), indexes
// the files already there, removes temporary files left by a crash, and
// evicts down to the size bound.
func Open(dir string, opts Options) (*Store, error) {
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("open blob cache %s: negative MaxBytes %d", dir, opts.MaxBytes)
	}
	s := &Store{
		dir:     filepath.Join(dir, "sha256"),
		max:     opts.MaxBytes,
		log:     opts.Logger,
		shared:  opts.Shared,
		now:     opts.Now,
		entries: map[string]*entry{},
		lru:     list.New(),
		flights: map[string]*flight{},
	}
	if s.max == 0 {
		s.max = DefaultMaxBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("open blob cache %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open blob cache %s: %w", dir, err)
	}
	s.lock = lock
	if err := s.load(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open blob cache %s: %w", dir, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	s.evictLocked()
	s.mu.Unlock()
	return s, nil
}

// load indexes the folder: digest-named files by size and modification
// time, oldest last; temporary files are removed.
func (s *Store) load() error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var found []*entry
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, partialPrefix):
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove leftover %s: %w", name, err)
			}
			s.log.Info("blob cache: removed a partial file left by a crash", "file", name)
		case len(name) == hexLen && isHex(name) && de.Type().IsRegular():
			fi, err := de.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("stat %s: %w", name, err)
			}
			t := fi.ModTime()
			found = append(found, &entry{digest: digestPrefix + name, size: fi.Size(), lastUse: t, touched: t})
		default:
			s.log.Warn("blob cache: ignoring a file that is not named by a digest", "file", name)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].lastUse.After(found[j].lastUse) })
	for _, e := range found {
		e.elem = s.lru.PushBack(e)
		s.entries[e.digest] = e
		s.size += e.size
	}
	return nil
}

// Close cancels the fetches in progress, waits for their goroutines and
// releases the folder. Readers already handed out get an error; open
// Entries stay readable until closed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return s.lock.Close()
}

// lockPath is the lock file of the store in dir.
func lockPath(dir string) string { return filepath.Join(dir, "lock") }

// Remove deletes the cached file of digest, if any. It fails with
// ErrInUse while the file is being read.
func (s *Store) Remove(digest string) error {
	if err := checkDigest(digest); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[digest]
	if !ok {
		return nil
	}
	if e.refs > 0 {
		return fmt.Errorf("remove blob %s: %w", digest, ErrInUse)
	}
	return s.dropLocked(e)
}

// dropLocked removes e from the index and its file from disk.
func (s *Store) dropLocked(e *entry) error {
	if s.entries[e.digest] != e {
		return nil
	}
	delete(s.entries, e.digest)
	s.lru.Remove(e.elem)
	s.size -= e.size
	if err := os.Remove(s.path(e.digest)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", e.digest, err)
	}
	return nil
}
