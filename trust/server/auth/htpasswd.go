package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// MaxHtpasswdSize is the largest htpasswd file NewHtpasswd reads.
const MaxHtpasswdSize = 1 << 20

// reloadInterval is how often Htpasswd looks at the file's modification time.
const reloadInterval = time.Second

// dummyHashBody is the salt and hash of a valid bcrypt hash. Unknown users
// are compared against it, at the cost of a user in the file, so that they
// cost as much time as known ones.
const dummyHashBody = "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"

// Htpasswd authorizes requests with HTTP Basic credentials checked against an
// htpasswd file of bcrypt hashes (htpasswd -B). Every authenticated user may
// perform every action on every repository, as in notary-server's htpasswd
// mode: publish, delete a repository's trust data, rotate its server keys
// and read the global changefeed.
//
// The file is read again when its modification time or size changes, checked
// at most once a second, so users can be added without a restart. A file that
// fails to load keeps the previous users in force; Err reports the failure.
//
// A wrong password takes as long for an unknown user as for a user in the
// file: the unknown name is compared against a dummy hash whose bcrypt cost
// is that of a user of the file, picked by a keyed hash of the name, so
// unknown names take the costs of the file's users in the same proportions,
// each name always the same one. At most GOMAXPROCS comparisons run at
// once, so that a flood of logins cannot take every CPU from the requests
// that need none; further logins wait for a free slot (or for their client
// to go away).
type Htpasswd struct {
	path    string
	realm   string
	now     func() time.Time                  // tests replace it
	compare func(hash, password []byte) error // bcrypt's; tests replace it
	slots   chan struct{}                     // one per bcrypt comparison running

	mu      sync.Mutex
	tab     *htpasswdTable // users in force
	info    os.FileInfo    // of the file last read
	checked time.Time      // last look at the file
	err     error          // of the last reload
}

// maxConcurrentBcrypt is how many password comparisons an Htpasswd runs at
// once.
func maxConcurrentBcrypt() int { return max(1, runtime.GOMAXPROCS(0)) }

// htpasswdTable is the content of an htpasswd file.
type htpasswdTable struct {
	users   map[string][]byte // user name to bcrypt hash
	costs   []int             // the bcrypt cost of each user, sorted
	dummies map[int][]byte    // a dummy hash for each cost in costs
	key     [sha256.Size]byte // keys the choice of a cost for unknown names
}

// hashFor returns the hash to compare a password of user against, and
// whether the user is in the file. For an unknown user it is a dummy hash
// at the cost of one of the file's users, chosen by an HMAC of the name
// keyed with a digest of the file: the same on every replica, and not
// computable without the file (an edit of the file changes it).
func (t *htpasswdTable) hashFor(user string) ([]byte, bool) {
	if h, ok := t.users[user]; ok {
		return h, true
	}
	m := hmac.New(sha256.New, t.key[:])
	m.Write([]byte(user)) //nolint:errcheck // hash writes never fail
	i := binary.BigEndian.Uint64(m.Sum(nil)) % uint64(len(t.costs))
	return t.dummies[t.costs[i]], false
}

// NewHtpasswd reads the htpasswd file at path. Only bcrypt entries ($2y$,
// $2a$, $2b$) are accepted: any other hash is refused with an error naming
// the line. realm is the Basic realm of the challenge; "" means "signet".
func NewHtpasswd(path string, realm string) (*Htpasswd, error) {
	if realm == "" {
		realm = "signet"
	}
	h := &Htpasswd{
		path:    path,
		realm:   realm,
		now:     time.Now,
		compare: bcrypt.CompareHashAndPassword,
		slots:   make(chan struct{}, maxConcurrentBcrypt()),
	}
	tab, info, err := readHtpasswd(path)
	if err != nil {
		return nil, err
	}
	h.tab, h.info, h.checked = tab, info, h.now()
	return h, nil
}

// Err returns the error of the last reload of the file, or nil if it
// succeeded. While it is not nil, the users read before stay in force.
func (h *Htpasswd) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Authorize allows requests with the Basic credentials of a user in the
// file, whatever gun and actions. Otherwise it returns a *ChallengeError
// with a Basic challenge. It waits for a free bcrypt slot, or until the
// request's context is done.
func (h *Htpasswd) Authorize(r *http.Request, gun string, actions ...string) error {
	tab := h.current()
	user, password, ok := r.BasicAuth()
	if !ok {
		return h.challenge(gun, actions, ErrNoCredentials)
	}
	hash, known := tab.hashFor(user)
	select {
	case h.slots <- struct{}{}:
	case <-r.Context().Done():
		return h.challenge(gun, actions, fmt.Errorf("%w: %w", ErrInvalidCredentials, r.Context().Err()))
	}
	err := h.compare(hash, []byte(password))
	<-h.slots
	// Unknown users pay for a comparison too, so that timing does not tell
	// which users exist.
	if err != nil || !known {
		return h.challenge(gun, actions, ErrInvalidCredentials)
	}
	return nil
}

func (h *Htpasswd) challenge(gun string, actions []string, reason error) error {
	return &ChallengeError{
		Scheme: "Basic",
		Realm:  h.realm,
		Err:    fmt.Errorf("authorize %s: %w", describe(gun, actions), reason),
	}
}

// current returns the users in force, reloading the file first if it changed
// and was not looked at in the last reloadInterval.
func (h *Htpasswd) current() *htpasswdTable {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if d := now.Sub(h.checked); d >= reloadInterval || d < 0 {
		h.checked = now
		h.reload()
	}
	return h.tab
}

// reload reads the file again if it changed since it was last read.
// h.mu must be held.
func (h *Htpasswd) reload() {
	info, err := os.Stat(h.path)
	if err != nil {
		h.err = fmt.Errorf("reload htpasswd file %q: %w", h.path, err)
		return
	}
	if h.info != nil && os.SameFile(info, h.info) &&
		info.ModTime().Equal(h.info.ModTime()) && info.Size() == h.info.Size() {
		return
	}
	tab, info, err := readHtpasswd(h.path)
	if err != nil {
		h.err = err
		if info != nil {
			// Do not read a broken file again until it changes.
			h.info = info
		}
		return
	}
	h.tab, h.info, h.err = tab, info, nil
}

// readHtpasswd reads and parses the file at path. It returns its users, with
// a dummy hash for each of their costs, and the file's information.
// The information is also returned with a parse error.
func readHtpasswd(path string) (*htpasswdTable, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read htpasswd file %q: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read htpasswd file %q: %w", path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxHtpasswdSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read htpasswd file %q: %w", path, err)
	}
	if len(data) > MaxHtpasswdSize {
		return nil, info, fmt.Errorf("read htpasswd file %q: larger than %d bytes", path, MaxHtpasswdSize)
	}
	users, costs, err := parseHtpasswd(data)
	if err != nil {
		return nil, info, fmt.Errorf("read htpasswd file %q: %w", path, err)
	}
	tab := &htpasswdTable{users: users, costs: costs, dummies: make(map[int][]byte), key: sha256.Sum256(data)}
	for _, c := range costs {
		tab.dummies[c] = fmt.Appendf(nil, "$2a$%02d$%s", c, dummyHashBody)
	}
	return tab, info, nil
}

// parseHtpasswd parses htpasswd lines "user:hash". Blank lines and lines
// starting with '#' are skipped. It returns the users and the bcrypt cost
// of each, sorted ([bcrypt.DefaultCost] for no users).
func parseHtpasswd(data []byte) (map[string][]byte, []int, error) {
	users := make(map[string][]byte)
	var costs []int
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, MaxHtpasswdSize+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, nil, fmt.Errorf("line %d: not of the form user:hash", n)
		}
		if _, dup := users[user]; dup {
			return nil, nil, fmt.Errorf("line %d: user %q appears twice", n, user)
		}
		if !isBcrypt(hash) {
			return nil, nil, fmt.Errorf("line %d: user %q has a %s password hash but only bcrypt is accepted; recreate the entry with htpasswd -B", n, user, hashKind(hash))
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: user %q has a malformed bcrypt hash; recreate the entry with htpasswd -B", n, user)
		}
		costs = append(costs, cost)
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if len(users) == 0 {
		costs = []int{bcrypt.DefaultCost}
	}
	slices.Sort(costs)
	return users, costs, nil
}

func isBcrypt(hash string) bool {
	for _, p := range []string{"$2y$", "$2a$", "$2b$"} {
		if strings.HasPrefix(hash, p) {
			return true
		}
	}
	return false
}

// hashKind names the kind of a non-bcrypt htpasswd hash for error messages.
func hashKind(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$apr1$"):
		return "MD5 (apr1)"
	case strings.HasPrefix(hash, "{SHA}"):
		return "SHA-1"
	case strings.HasPrefix(hash, "$1$"):
		return "MD5-crypt"
	case strings.HasPrefix(hash, "$5$"):
		return "SHA-256-crypt"
	case strings.HasPrefix(hash, "$6$"):
		return "SHA-512-crypt"
	case len(hash) == 13:
		return "DES crypt"
	default:
		return "plain-text or unknown"
	}
}
