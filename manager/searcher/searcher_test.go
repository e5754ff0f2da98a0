package searcher

import (
	"errors"
	"testing"

	"github.com/dragonfly-p2p/df/manager/store"
)

func names(cs []store.Cluster) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestFind(t *testing.T) {
	s, err := New([]store.Cluster{
		{Name: "dflt", Default: true},
		{Name: "net10", Scopes: store.Scopes{CIDRs: []string{"10.0.0.0/8"}}},
		{Name: "net10-1", Scopes: store.Scopes{CIDRs: []string{"10.1.0.0/16"}}},
		{Name: "gpu", Scopes: store.Scopes{HostnamePatterns: []string{`^gpu-\d+$`}}},
		{Name: "idc-a", Scopes: store.Scopes{IDCs: []string{"a", "a2"}}},
		{Name: "cn-bj", Scopes: store.Scopes{Location: "cn|bj"}},
		{Name: "cn", Scopes: store.Scopes{Location: "cn"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		host  Host
		first string
		n     int
	}{
		{"most specific cidr", Host{IP: "10.1.2.3"}, "net10-1", 2},
		{"cidr wider only", Host{IP: "10.2.2.3"}, "net10", 1},
		{"ipv4-mapped ipv6", Host{IP: "::ffff:10.1.2.3"}, "net10-1", 2},
		{"hostname", Host{Hostname: "gpu-7"}, "gpu", 1},
		{"hostname anchored", Host{Hostname: "xgpu-7"}, "dflt", 7},
		{"idc", Host{IDC: "a2"}, "idc-a", 1},
		{"longest location", Host{Location: "cn|bj|z1"}, "cn-bj", 2},
		{"location not a prefix", Host{Location: "cn|sh"}, "cn", 1},
		{"cidr beats hostname", Host{IP: "10.9.9.9", Hostname: "gpu-1"}, "net10", 2},
		{"nothing matches: all, default first", Host{IP: "192.0.2.1", Hostname: "x"}, "dflt", 7},
		{"garbage ip ignored", Host{IP: "not-an-ip"}, "dflt", 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Find(tc.host)
			if len(got) != tc.n || got[0].Name != tc.first {
				t.Fatalf("got %v", names(got))
			}
		})
	}
}

func TestValidateScopes(t *testing.T) {
	long := make([]string, MaxScopeItems+1)
	for i := range long {
		long[i] = "10.0.0.0/8"
	}
	cases := []struct {
		name string
		s    store.Scopes
		ok   bool
	}{
		{"valid", store.Scopes{CIDRs: []string{"10.0.0.0/8", "fd00::/8"}, HostnamePatterns: []string{`^a.*`}}, true},
		{"bad cidr", store.Scopes{CIDRs: []string{"10.0.0.0/33"}}, false},
		{"not a cidr", store.Scopes{CIDRs: []string{"10.0.0.1"}}, false},
		{"sql in cidr", store.Scopes{CIDRs: []string{"'; DROP TABLE x;--"}}, false},
		{"bad regex", store.Scopes{HostnamePatterns: []string{`a(`}}, false},
		{"empty regex", store.Scopes{HostnamePatterns: []string{""}}, false},
		{"too many", store.Scopes{CIDRs: long}, false},
		{"empty idc", store.Scopes{IDCs: []string{""}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateScopes(tc.s)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidScope)) {
				t.Fatalf("got %v", err)
			}
		})
	}
}
