package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPolicy(t *testing.T) {
	none := Policy{}
	lo := Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	ten := Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	tests := []struct {
		name    string
		policy  Policy
		addr    string
		blocked bool
	}{
		{"public IPv4", none, "8.8.8.8", false},
		{"public IPv6", none, "2606:4700::1111", false},
		{"loopback", none, "127.0.0.1", true},
		{"loopback range", none, "127.255.255.254", true},
		{"private 10/8", none, "10.1.2.3", true},
		{"private 172.16/12", none, "172.31.255.255", true},
		{"just outside 172.16/12", none, "172.32.0.1", false},
		{"private 192.168/16", none, "192.168.1.1", true},
		{"cloud metadata", none, "169.254.169.254", true},
		{"CGNAT", none, "100.64.0.1", true},
		{"CGNAT end", none, "100.127.255.255", true},
		{"just below CGNAT", none, "100.63.255.255", false},
		{"unspecified IPv4", none, "0.0.0.0", true},
		{"this network", none, "0.1.2.3", true},
		{"multicast", none, "224.0.0.1", true},
		{"broadcast", none, "255.255.255.255", true},
		{"reserved", none, "240.0.0.1", true},
		{"benchmarking", none, "198.18.0.1", true},
		{"documentation", none, "203.0.113.7", true},
		{"unspecified IPv6", none, "::", true},
		{"IPv6 loopback", none, "::1", true},
		{"unique local", none, "fd12::1", true},
		{"unique local fc", none, "fc00::1", true},
		{"IPv6 link-local", none, "fe80::1", true},
		{"IPv6 link-local with zone", none, "fe80::1%eth0", true},
		{"IPv6 multicast", none, "ff02::1", true},
		{"IPv4-mapped loopback", none, "::ffff:127.0.0.1", true},
		{"IPv4-mapped metadata", none, "::ffff:169.254.169.254", true},
		{"IPv4-mapped private", none, "::ffff:10.0.0.1", true},
		{"IPv4-mapped public", none, "::ffff:8.8.8.8", false},
		{"IPv4-compatible loopback", none, "::127.0.0.1", true},
		{"NAT64 of loopback", none, "64:ff9b::7f00:1", true},
		{"NAT64 of public", none, "64:ff9b::808:808", false},
		{"6to4 of loopback", none, "2002:7f00:1::1", true},
		{"6to4 of public", none, "2002:808:808::1", false},
		{"Teredo", none, "2001:0:4136:e378:8000:63bf:3fff:fdd2", true},
		{"allowed loopback", lo, "127.0.0.1", false},
		{"allowed loopback, mapped form", lo, "::ffff:127.0.0.1", false},
		{"allowlist is not a blanket", lo, "10.0.0.1", true},
		{"allowed private", ten, "10.1.2.3", false},
		{"allowed private does not open metadata", ten, "169.254.169.254", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(netip.MustParseAddr(tt.addr))
			if got := errors.Is(err, ErrBlocked); got != tt.blocked {
				t.Errorf("check(%s) = %v, want blocked=%v", tt.addr, err, tt.blocked)
			}
		})
	}
}

func TestControlRejectsUnparsableAddress(t *testing.T) {
	if err := (Policy{}).Control(t.Context(), "tcp", "not-an-address", nil); !errors.Is(err, ErrBlocked) {
		t.Errorf("control = %v, want ErrBlocked", err)
	}
}
