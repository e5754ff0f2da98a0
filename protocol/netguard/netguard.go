// Package netguard is the address policy of every outbound connection a
// user or a peer can point somewhere (back-to-source, preheat): loopback,
// private, link-local (including cloud metadata 169.254.169.254),
// unique-local, CGNAT, multicast, reserved and documentation ranges are
// refused unless the operator allows them, IPv4 addresses embedded in IPv6
// forms (mapped, compatible, NAT64, 6to4) are checked too, and Teredo is
// refused outright. The check runs at dial time (Policy.Control), after
// name resolution.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrBlocked: the destination address is not allowed.
var ErrBlocked = errors.New("destination address blocked")

// blockedPrefixes are refused at dial time unless allowed explicitly.
var blockedPrefixes = mustPrefixes(
	// IPv4
	"0.0.0.0/8",       // "this network", incl. 0.0.0.0
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // carrier-grade NAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, incl. cloud metadata 169.254.169.254
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, incl. broadcast
	// IPv6
	"::/128",         // unspecified
	"::1/128",        // loopback
	"64:ff9b:1::/48", // local-use NAT64
	"100::/64",       // discard-only
	"2001::/32",      // Teredo: embeds addresses we cannot check
	"fc00::/7",       // unique local
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
)

// Prefixes whose addresses embed an IPv4 address that is checked too.
var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
	v4Compatible = netip.MustParsePrefix("::/96")
)

func mustPrefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// Policy decides which destination addresses may be dialled: every
// blocked range is refused unless Allowed lists it.
type Policy struct {
	// Allowed are prefixes the operator opened despite the rules.
	Allowed []netip.Prefix
}

// Check returns an error wrapping ErrBlocked when a is refused.
func (p Policy) Check(a netip.Addr) error {
	if !a.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrBlocked)
	}
	a = a.WithZone("")
	for _, pre := range p.Allowed {
		if pre.Contains(a) || pre.Contains(a.Unmap()) {
			return nil
		}
	}
	for _, c := range embedded(a) {
		if isBlocked(c) {
			return fmt.Errorf("%w: %s", ErrBlocked, a)
		}
	}
	return nil
}

// embedded returns a and the IPv4 addresses it carries in its IPv4-mapped,
// IPv4-compatible, NAT64 or 6to4 form.
func embedded(a netip.Addr) []netip.Addr {
	out := []netip.Addr{a}
	if a.Is4In6() {
		return append(out, a.Unmap())
	}
	if !a.Is6() {
		return out
	}
	b := a.As16()
	switch {
	case nat64Prefix.Contains(a), v4Compatible.Contains(a):
		out = append(out, netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(a):
		out = append(out, netip.AddrFrom4([4]byte(b[2:6])))
	}
	return out
}

func isBlocked(a netip.Addr) bool {
	if a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return true
	}
	for _, pre := range blockedPrefixes {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// Control is the net.Dialer ControlContext hook: it runs after name
// resolution and before connect(2), on the address actually dialled, so
// redirects and DNS rebinding cannot get around the policy.
func (p Policy) Control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrBlocked, address)
	}
	return p.Check(ap.Addr())
}
