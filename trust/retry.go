package trust

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// retryPolicy bounds how Sign and Revoke retry after a conflict.
type retryPolicy struct {
	// attempts is the most publishes tried. Each conflict means another
	// publisher succeeded, so n publishers racing on one repository all
	// succeed when attempts >= n.
	attempts int
	// base is the pause after the first conflict; it doubles up to max,
	// and each pause is drawn from [d/2, d) so racers spread out.
	base, max time.Duration
}

var defaultRetry = retryPolicy{attempts: 8, base: 50 * time.Millisecond, max: 800 * time.Millisecond}

func (p retryPolicy) pause(conflicts int) time.Duration {
	d := p.base
	for i := 1; i < conflicts && d < p.max; i++ {
		d *= 2
	}
	d = min(d, p.max)
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// publishRetrying runs attempt, which reads the repository's current
// trust data, stages a change on r.nr and publishes it. While the trust
// server answers that another publisher changed the repository in the
// meantime, it drops the client's state, waits a little, and runs attempt
// again on the new state, at most r.retry.attempts times. attempt
// reports whether it initialised the repository: a first publish refused
// because someone else created the repository first is a conflict too,
// and the unpublished root it cached is removed.
func (r *Repo) publishRetrying(ctx context.Context, doing string, attempt func() (initialised bool, err error)) error {
	lostInit := false
	for n := 1; ; n++ {
		initialised, err := attempt()
		if err == nil {
			return nil
		}
		conflict := IsConflict(err)
		if initialised && rejected(err) {
			// Another publisher's first publish won: their root is on
			// the server, not the one this attempt made.
			if ferr := forgetUnpublished(r.cacheDir); ferr != nil {
				return errors.Join(err, ferr)
			}
			if rerr := r.reset(); rerr != nil {
				return err
			}
			exists, xerr := r.exists()
			conflict = xerr == nil && exists
			lostInit = lostInit || conflict
		}
		if !conflict {
			if lostInit {
				return fmt.Errorf("%w (another publisher created the trust data of %s at the same time, with its own keys: import its repository or signer key to sign)", err, r.gun)
			}
			return err
		}
		if n >= r.retry.attempts {
			return fmt.Errorf("%w (tried %d times, each time another publisher changed %s first: run again later)", err, n, r.gun)
		}
		r.log.Info("trust data changed on the server meanwhile: fetching it and retrying", "op", doing, "gun", r.gun.String(), "attempt", n+1)
		t := time.NewTimer(r.retry.pause(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s %s: %w", doing, r.gun, context.Cause(ctx))
		case <-t.C:
		}
		if err := r.reset(); err != nil {
			return err
		}
	}
}

// rejected reports whether err is the trust server refusing an update.
func rejected(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Status == 400
}

// reset drops the notary client's in-memory state and staged changes,
// so that the next read fetches the server's current trust data.
func (r *Repo) reset() error {
	nr, err := r.newClient()
	if err != nil {
		return fmt.Errorf("open trust data for %q: %w", r.gun, err)
	}
	r.nr = nr
	r.answers.take()
	return nil
}
