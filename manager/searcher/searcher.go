// Package searcher decides which scheduler clusters serve a host. A cluster
// matches a host by any of its scopes: CIDR list, hostname patterns (regular
// expressions), IDC list or location prefix. Matching clusters are ranked by
// the strength of the match (CIDR, then hostname, then IDC, then the length
// of the shared location prefix); when nothing matches, every cluster is
// returned with the default cluster first.
package searcher

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/dragonfly-p2p/df/manager/store"
)

// ErrInvalidScope is wrapped by every scope validation error.
var ErrInvalidScope = errors.New("searcher: invalid scope")

// Bounds on scopes, to keep matching cheap and inputs sane.
const (
	MaxScopeItems  = 256
	MaxPatternLen  = 256
	MaxLocationLen = 256
	MaxIDCLen      = 128
)

// Host describes the asking host.
type Host struct {
	Hostname string
	IP       string
	IDC      string
	Location string // "country|province|city|zone|cluster"
}

type compiled struct {
	c        store.Cluster
	prefixes []netip.Prefix
	patterns []*regexp.Regexp
	idcs     map[string]bool
	location []string
}

// Searcher matches hosts against a fixed set of clusters. It is immutable
// and safe for concurrent use; build a new one when clusters change.
type Searcher struct {
	clusters []compiled
}

// ValidateScopes checks a cluster's scopes: CIDRs must parse, patterns must
// compile, and all lists are bounded.
func ValidateScopes(s store.Scopes) error {
	_, err := compile(store.Cluster{Scopes: s})
	return err
}

func compile(c store.Cluster) (compiled, error) {
	s := c.Scopes
	out := compiled{c: c, idcs: map[string]bool{}}
	if len(s.CIDRs) > MaxScopeItems || len(s.HostnamePatterns) > MaxScopeItems || len(s.IDCs) > MaxScopeItems {
		return out, fmt.Errorf("%w: more than %d items in a list", ErrInvalidScope, MaxScopeItems)
	}
	for _, cidr := range s.CIDRs {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return out, fmt.Errorf("%w: cidr %q: %v", ErrInvalidScope, cidr, err)
		}
		out.prefixes = append(out.prefixes, p.Masked())
	}
	for _, pat := range s.HostnamePatterns {
		if pat == "" || len(pat) > MaxPatternLen {
			return out, fmt.Errorf("%w: hostname pattern must be 1..%d bytes", ErrInvalidScope, MaxPatternLen)
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			return out, fmt.Errorf("%w: hostname pattern %q: %v", ErrInvalidScope, pat, err)
		}
		out.patterns = append(out.patterns, re)
	}
	for _, idc := range s.IDCs {
		if idc == "" || len(idc) > MaxIDCLen {
			return out, fmt.Errorf("%w: idc must be 1..%d bytes", ErrInvalidScope, MaxIDCLen)
		}
		out.idcs[idc] = true
	}
	if len(s.Location) > MaxLocationLen {
		return out, fmt.Errorf("%w: location longer than %d bytes", ErrInvalidScope, MaxLocationLen)
	}
	if s.Location != "" {
		out.location = strings.Split(s.Location, "|")
	}
	return out, nil
}

// New compiles clusters. A cluster with invalid scopes is an error (the API
// validates before storing, so this only happens with a damaged store).
func New(clusters []store.Cluster) (*Searcher, error) {
	s := &Searcher{}
	for _, c := range clusters {
		cc, err := compile(c)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		s.clusters = append(s.clusters, cc)
	}
	return s, nil
}

// Scores of each kind of match; a cluster's score is the sum.
const (
	scoreCIDR     = 1 << 20
	scoreHostname = 1 << 16
	scoreIDC      = 1 << 12
	scoreLocation = 1 // per shared location element
)

func (c *compiled) score(h Host, ip netip.Addr, ipOK bool) int {
	sc := 0
	if ipOK {
		best := -1
		for _, p := range c.prefixes {
			if p.Contains(ip) && p.Bits() > best {
				best = p.Bits()
			}
		}
		if best >= 0 {
			sc += scoreCIDR + best*64
		}
	}
	if h.Hostname != "" {
		for _, re := range c.patterns {
			if re.MatchString(h.Hostname) {
				sc += scoreHostname
				break
			}
		}
	}
	if h.IDC != "" && c.idcs[h.IDC] {
		sc += scoreIDC
	}
	if len(c.location) > 0 && h.Location != "" {
		hl := strings.Split(h.Location, "|")
		n := 0
		for n < len(hl) && n < len(c.location) && hl[n] == c.location[n] {
			n++
		}
		if n == len(c.location) { // the cluster's location is a prefix of the host's
			sc += n * scoreLocation
		}
	}
	return sc
}

// Find returns the clusters that serve h, best first. When no cluster's
// scopes match, it returns all clusters, the default one first.
func (s *Searcher) Find(h Host) []store.Cluster {
	ip, err := netip.ParseAddr(h.IP)
	ipOK := err == nil
	if ipOK {
		ip = ip.Unmap()
	}
	type scored struct {
		c  store.Cluster
		sc int
	}
	var hits []scored
	for i := range s.clusters {
		if sc := s.clusters[i].score(h, ip, ipOK); sc > 0 {
			hits = append(hits, scored{s.clusters[i].c, sc})
		}
	}
	if len(hits) == 0 {
		for _, c := range s.clusters {
			hits = append(hits, scored{c.c, 0})
			if c.c.Default {
				hits[len(hits)-1].sc = 1
			}
		}
	}
	sort.SliceStable(hits, func(a, b int) bool {
		if hits[a].sc != hits[b].sc {
			return hits[a].sc > hits[b].sc
		}
		return hits[a].c.Name < hits[b].c.Name
	})
	out := make([]store.Cluster, len(hits))
	for i, h := range hits {
		out[i] = h.c
	}
	return out
}
