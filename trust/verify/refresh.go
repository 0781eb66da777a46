package verify

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Source says where and how to verify one repository.
type Source struct {
	// Key identifies the source in the cache (for example server + GUN).
	Key     string
	GUN     string
	Fetcher Fetcher
	Pin     Pin
	// Roles are the delegations to load besides targets.
	Roles []string
	// Archive pins an archived snapshot (Request.ArchiveSnapshot).
	Archive []byte
}

// Stale is a repository served from older verified data because its
// latest refresh failed.
type Stale struct {
	Key, GUN string
	// Since is the first failed refresh in a row; Err the latest error.
	Since time.Time
	Err   error
	// Rejected is true when the trust server answered with data that
	// failed verification (as opposed to not answering).
	Rejected bool
	// Expires is when the verified data in use expires; past it, pulls
	// are denied.
	Expires time.Time
}

// Refresher caches verified results per source and refreshes them at
// most every Interval; a burst of requests shares one refresh
// (singleflight). When a refresh fails, the last verified result is used
// until its metadata expires, and the trust server is tried again only
// after another Interval; once the result expires, Get fails.
type Refresher struct {
	// Interval between refreshes (default 30s).
	Interval time.Duration
	// MaxEntries bounds the cache (default 10000); the least recently
	// refreshed entry is dropped first.
	MaxEntries int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// OnRefresh, if set, is called after each refresh with its duration
	// and error (for metrics); a *Error means the new trust data was
	// rejected, any other error that it could not be fetched.
	OnRefresh func(d time.Duration, err error)

	mu      sync.Mutex
	entries map[string]*entry
	group   singleflight.Group
}

type entry struct {
	gun    string
	state  *State
	result *Result
	// checked is the last refresh attempt, successful or not: a failing
	// trust server is asked again after Interval, not on every request.
	checked time.Time
	// failedSince and lastErr are set while refreshes fail.
	failedSince time.Time
	lastErr     error
}

// Stale lists the repositories currently served from older verified
// data because their latest refresh failed, sorted by key.
func (r *Refresher) Stale() []Stale {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Stale
	for k, e := range r.entries {
		if e.lastErr == nil {
			continue
		}
		var ve *Error
		out = append(out, Stale{Key: k, GUN: e.gun, Since: e.failedSince, Err: e.lastErr,
			Rejected: errors.As(e.lastErr, &ve), Expires: e.result.Expires})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (r *Refresher) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Refresher) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Get returns the verified result for src, refreshing it when due.
// cached is true when the result came from the cache.
func (r *Refresher) Get(ctx context.Context, src Source) (res *Result, cached bool, err error) {
	interval := r.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	now := r.now()
	r.mu.Lock()
	e := r.entries[src.Key]
	r.mu.Unlock()
	if e != nil && now.Sub(e.checked) < interval && now.Before(e.result.Expires) {
		return e.result, true, nil
	}
	v, err, _ := r.group.Do(src.Key, func() (any, error) {
		return r.refresh(ctx, src)
	})
	if err != nil {
		return nil, false, err
	}
	return v.(*Result), false, nil
}

func (r *Refresher) refresh(ctx context.Context, src Source) (*Result, error) {
	r.mu.Lock()
	e := r.entries[src.Key]
	r.mu.Unlock()
	var prev *State
	if e != nil {
		prev = e.state
	}
	start := time.Now()
	// The refresh is shared by every waiting request: it must not stop
	// because the first one went away.
	state, res, err := Update(context.WithoutCancel(ctx), Request{GUN: src.GUN, Prev: prev, Fetcher: src.Fetcher,
		Pin: src.Pin, Now: r.now(), Roles: src.Roles, ArchiveSnapshot: src.Archive})
	if r.OnRefresh != nil {
		r.OnRefresh(time.Since(start), err)
	}
	now := r.now()
	if err != nil {
		if e != nil && now.Before(e.result.Expires) {
			// What a TUF client does after a failed update: keep the
			// metadata it trusts until it expires. A rejection (the
			// server answered with data that does not verify) is an
			// error, an outage a warning; both show in Stale.
			var ve *Error
			if errors.As(err, &ve) {
				r.logger().Error("trust data rejected; serving the last verified data until it expires",
					"gun", src.GUN, "role", ve.Role, "reason", ve.Reason, "expires", e.result.Expires, "err", err)
			} else {
				r.logger().Warn("trust server unreachable; serving the last verified data until it expires",
					"gun", src.GUN, "expires", e.result.Expires, "err", err)
			}
			r.mu.Lock()
			e.checked = now
			if e.lastErr == nil {
				e.failedSince = now
			}
			e.lastErr = err
			r.mu.Unlock()
			return e.result, nil
		}
		return nil, err
	}
	for _, ro := range res.Roles {
		if ro.Status == RoleFailed {
			r.logger().Error("delegation failed verification; lookups through it are denied",
				"gun", src.GUN, "role", ro.Name, "reason", ro.Err.Reason, "err", ro.Err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[string]*entry{}
	}
	max := r.MaxEntries
	if max <= 0 {
		max = 10000
	}
	if _, ok := r.entries[src.Key]; !ok && len(r.entries) >= max {
		var oldest string
		var t time.Time
		for k, v := range r.entries {
			if oldest == "" || v.checked.Before(t) {
				oldest, t = k, v.checked
			}
		}
		delete(r.entries, oldest)
	}
	r.entries[src.Key] = &entry{gun: src.GUN, state: state, result: res, checked: now}
	return res, nil
}
