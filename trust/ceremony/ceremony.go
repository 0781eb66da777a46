// Package ceremony keeps a key ceremony in a folder of plain files, so
// it can travel on a USB stick between an online machine and air-gapped
// ones, and be reviewed with cat:
//
//	ceremony.json      the plan: repository, base, key sets that must sign,
//	                   what changes (trust.Proposal)
//	root.signed.json   the new root's "signed" object in canonical JSON:
//	                   exactly the bytes every root signature is over
//	                   (when root changes)
//	targets.signed.json the same for the new targets (when targets change:
//	                   new repository keys, or a new expiry)
//	summary.txt        the same for people
//	signatures/        one file per key: <key ID>.json (a TUF signature
//	                   over root.signed.json); signatures/targets/<key
//	                   ID>.json over targets.signed.json
//	transcript.log     who did what, when, with which key (appended)
//
// A ceremony, top to bottom: Prepare (online, trust.Repo.Propose) writes
// the folder; Sign (offline, keys only) adds signatures; Status says
// which thresholds are met; Publish (online, trust.Repo.PublishProposal)
// uploads once they are, if the repository has not changed meanwhile.
package ceremony

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/internal/atomicfile"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/verify"
)

// Files of a ceremony folder.
const (
	PlanFile       = "ceremony.json"
	RootFile       = "root.signed.json"
	TargetsFile    = "targets.signed.json"
	SummaryFile    = "summary.txt"
	SignaturesDir  = "signatures"
	TranscriptFile = "transcript.log"
	format         = "signet-ceremony/1"
	maxFile        = 1 << 20
)

// plan is ceremony.json.
type plan struct {
	Format     string    `json:"format"`
	PreparedAt time.Time `json:"prepared_at"`
	RootSHA256 string    `json:"root_signed_sha256,omitempty"`
	// TargetsSHA256 is the sha256 of targets.signed.json, if any.
	TargetsSHA256 string         `json:"targets_signed_sha256,omitempty"`
	Proposal      trust.Proposal `json:"proposal"`
}

// Ceremony is a loaded ceremony folder.
type Ceremony struct {
	Dir        string
	PreparedAt time.Time
	Proposal   *trust.Proposal
	// Signatures are the signature files, by document (trust.DocRoot,
	// trust.DocTargets) and key ID.
	Signatures map[string]map[string]data.Signature
}

// docs are the documents a ceremony may sign, with their file and the
// folder their signatures go in.
var docs = []struct{ name, file, sigDir string }{
	{trust.DocRoot, RootFile, SignaturesDir},
	{trust.DocTargets, TargetsFile, filepath.Join(SignaturesDir, trust.DocTargets)},
}

// Write creates dir (which must not exist, or be empty) for proposal p.
func Write(dir string, p *trust.Proposal, who string, now time.Time) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("ceremony folder %s is not empty: give a new folder (--out)", dir)
	}
	pl := plan{Format: format, PreparedAt: now.UTC(), Proposal: *p}
	files := map[string][]byte{SummaryFile: []byte(Summary(p))}
	for _, d := range docs {
		body := p.Doc(d.name)
		if body == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, d.sigDir), 0o700); err != nil {
			return fmt.Errorf("create ceremony folder: %w", err)
		}
		files[d.file] = body
		if d.name == trust.DocRoot {
			pl.RootSHA256 = sum(body)
		} else {
			pl.TargetsSHA256 = sum(body)
		}
	}
	planJSON, err := json.MarshalIndent(pl, "", "  ")
	if err != nil {
		return err
	}
	files[PlanFile] = append(planJSON, '\n')
	for name, b := range files {
		if err := atomicfile.Write(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return appendTranscript(dir, now, who, fmt.Sprintf("prepared %s of %s: %s", p.What(), p.GUN, strings.Join(p.Changes, "; ")))
}

// Load reads a ceremony folder and checks its files belong together.
func Load(dir string) (*Ceremony, error) {
	raw, err := verify.ReadFile(filepath.Join(dir, PlanFile), maxFile)
	if err != nil {
		return nil, fmt.Errorf("read ceremony %s: %w: is it a folder signet ceremony prepare wrote?", dir, err)
	}
	var pl plan
	if err := json.Unmarshal(raw, &pl); err != nil || pl.Format != format {
		return nil, fmt.Errorf("ceremony %s: %s is not a %s plan (%v)", dir, PlanFile, format, err)
	}
	p := pl.Proposal
	c := &Ceremony{Dir: dir, PreparedAt: pl.PreparedAt, Proposal: &p, Signatures: map[string]map[string]data.Signature{}}
	for _, d := range docs {
		want := pl.RootSHA256
		if d.name == trust.DocTargets {
			want = pl.TargetsSHA256
		}
		if want == "" {
			continue
		}
		body, err := verify.ReadFile(filepath.Join(dir, d.file), maxFile)
		if err != nil {
			return nil, fmt.Errorf("read ceremony %s: %w", dir, err)
		}
		if sum(body) != want {
			return nil, fmt.Errorf("ceremony %s: %s was changed after prepare (sha256 %s, the plan says %s): prepare again", dir, d.file, sum(body), want)
		}
		if d.name == trust.DocRoot {
			p.Signed = body
		} else {
			p.Targets = body
		}
		sigs, err := readSignatures(filepath.Join(dir, d.sigDir))
		if err != nil {
			return nil, err
		}
		c.Signatures[d.name] = sigs
	}
	for _, ks := range p.MustSign {
		doc := ks.Doc
		if doc == "" {
			doc = trust.DocRoot
		}
		if p.Doc(doc) == nil {
			return nil, fmt.Errorf("ceremony %s: %s sign %s, which the folder lacks: prepare again", dir, ks.Name, doc)
		}
	}
	return c, nil
}

// readSignatures reads the <key ID>.json files of dir.
func readSignatures(dir string) (map[string]data.Signature, error) {
	out := map[string]data.Signature{}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read ceremony signatures: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := verify.ReadFile(filepath.Join(dir, e.Name()), maxFile)
		if err != nil {
			return nil, fmt.Errorf("read signature %s: %w", e.Name(), err)
		}
		var sig data.Signature
		if err := json.Unmarshal(b, &sig); err != nil || sig.KeyID+".json" != e.Name() {
			return nil, fmt.Errorf("signature file %s: not a signature by key %s (%v): remove it and sign again", filepath.Join(dir, e.Name()), strings.TrimSuffix(e.Name(), ".json"), err)
		}
		out[sig.KeyID] = sig
	}
	return out, nil
}

// List returns the signatures by document, each sorted by key ID.
func (c *Ceremony) List() trust.Signatures {
	out := trust.Signatures{}
	for doc, sigs := range c.Signatures {
		ids := make([]string, 0, len(sigs))
		for id := range sigs {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			out[doc] = append(out[doc], sigs[id])
		}
	}
	return out
}

// Sign adds signatures by the keys cs holds (only those listed, if only
// is not empty). A key that signed already is left as it is: signing
// twice is idempotent. It returns the key IDs that signed now.
func (c *Ceremony) Sign(cs signed.CryptoService, only []string, who string, describe func(keyID string) string, now time.Time) ([]string, error) {
	sigs, err := c.Proposal.Sign(cs, only)
	if err != nil {
		return nil, err
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("none of the keys that must sign this ceremony is here (trust dir, inserted YubiKeys): %s", c.needed())
	}
	var added []string
	for _, d := range docs {
		for _, sig := range sigs[d.name] {
			if old, ok := c.Signatures[d.name][sig.KeyID]; ok && c.valid(d.name, old) {
				continue
			}
			b, err := json.MarshalIndent(sig, "", "  ")
			if err != nil {
				return added, err
			}
			if err := atomicfile.Write(filepath.Join(c.Dir, d.sigDir, sig.KeyID+".json"), append(b, '\n'), 0o600); err != nil {
				return added, err
			}
			if c.Signatures[d.name] == nil {
				c.Signatures[d.name] = map[string]data.Signature{}
			}
			c.Signatures[d.name][sig.KeyID] = sig
			added = append(added, sig.KeyID)
			line := fmt.Sprintf("signed %s with key %s", d.name, sig.KeyID)
			if describe != nil {
				if desc := describe(c.canonicalID(sig.KeyID)); desc != "" {
					line += " (" + desc + ")"
				}
			}
			if err := appendTranscript(c.Dir, now, who, line); err != nil {
				return added, err
			}
		}
	}
	return added, nil
}

// canonicalID is the key store's ID of the key root.json lists as id
// (a root certificate's ID differs from its key's).
func (c *Ceremony) canonicalID(id string) string {
	for _, ks := range c.Proposal.MustSign {
		keys, err := ks.PublicKeys()
		if err != nil {
			continue
		}
		for _, k := range keys {
			if k.ID() == id {
				if cid, err := utils.CanonicalKeyID(k); err == nil {
					return cid
				}
			}
		}
	}
	return id
}

// valid reports whether sig over doc verifies for a key the proposal
// needs (the proposal's own check).
func (c *Ceremony) valid(doc string, sig data.Signature) bool {
	st, _, err := c.Proposal.Check(trust.Signatures{doc: {sig}})
	if err != nil {
		return false
	}
	for _, s := range st {
		if len(s.Valid) > 0 {
			return true
		}
	}
	return false
}

func (c *Ceremony) needed() string {
	var parts []string
	for _, ks := range c.Proposal.MustSign {
		var ids []string
		for id := range ks.Keys {
			ids = append(ids, id[:12])
		}
		sort.Strings(ids)
		parts = append(parts, fmt.Sprintf("%s (sign %s): %d of %s", ks.Name, docName(ks), ks.Threshold, strings.Join(ids, ", ")))
	}
	return strings.Join(parts, "; ")
}

// Status checks every signature and counts it per key set.
func (c *Ceremony) Status() ([]trust.SetStatus, bool, error) {
	return c.Proposal.Check(c.List())
}

// Published records a publish in the transcript.
func (c *Ceremony) Published(who string, now time.Time) error {
	return appendTranscript(c.Dir, now, who, fmt.Sprintf("published %s of %s to %s", c.Proposal.What(), c.Proposal.GUN, c.Proposal.Server))
}

// docName is the document a key set signs.
func docName(ks trust.KeySet) string {
	if ks.Doc == "" {
		return trust.DocRoot
	}
	return ks.Doc
}

// Summary describes a proposal for the people who sign it.
func Summary(p *trust.Proposal) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Key ceremony for %s (trust server %s)\n\n", p.GUN, p.Server)
	if p.Signed != nil {
		fmt.Fprintf(&b, "New root version %d (from version %d), expires %s\n", p.Version, p.Base.RootVersion, p.Expires.UTC().Format(time.RFC3339))
		fmt.Fprintf(&b, "  sha256 of the bytes to sign (%s): %s\n", RootFile, sum(p.Signed))
	}
	if p.Targets != nil {
		fmt.Fprintf(&b, "New targets version %d (from version %d), expires %s\n", p.TargetsVersion, p.Base.TargetsVersion, p.TargetsExpires.UTC().Format(time.RFC3339))
		fmt.Fprintf(&b, "  sha256 of the bytes to sign (%s): %s\n", TargetsFile, sum(p.Targets))
	}
	fmt.Fprintf(&b, "\nChanges:\n")
	for _, ch := range p.Changes {
		fmt.Fprintf(&b, "  - %s\n", ch)
	}
	fmt.Fprintf(&b, "\nMust sign (each threshold met):\n")
	for _, ks := range p.MustSign {
		fmt.Fprintf(&b, "  %s: %d of these %d keys, over %s\n", ks.Name, ks.Threshold, len(ks.Keys), docName(ks))
		var ids []string
		for id := range ks.Keys {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			fmt.Fprintf(&b, "    %s\n", id)
		}
	}
	return b.String()
}

func appendTranscript(dir string, now time.Time, who, line string) error {
	f, err := os.OpenFile(filepath.Join(dir, TranscriptFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("append to the transcript: %w", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s %s: %s\n", now.UTC().Format(time.RFC3339), who, line); err != nil {
		return fmt.Errorf("append to the transcript: %w", err)
	}
	return f.Sync()
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
