package mirror

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	good := []string{"a", "library/alpine", "a/b/c", "a.b", "a_b", "a__b", "a-b", "a---b", "0/1", strings.Repeat("a", 255)}
	bad := []string{"", "..", "a/..", "../a", "A", "Library/alpine", "a//b", "/a", "a/", "-a", "a-", "a.", ".a",
		"a___b", "a.-b", "a b", "a%2e", "a\x00", strings.Repeat("a", 256), "a:b", "a@b"}
	for _, s := range good {
		if !validName(s) {
			t.Errorf("validName(%q) = false", s)
		}
	}
	for _, s := range bad {
		if validName(s) {
			t.Errorf("validName(%q) = true", s)
		}
	}
}

func TestValidTag(t *testing.T) {
	for _, s := range []string{"latest", "v1.2.3", "_x", "A-b_c.d", strings.Repeat("t", 128)} {
		if !validTag(s) {
			t.Errorf("validTag(%q) = false", s)
		}
	}
	for _, s := range []string{"", ".x", "-x", strings.Repeat("t", 129), "a/b", "a:b", "a b"} {
		if validTag(s) {
			t.Errorf("validTag(%q) = true", s)
		}
	}
}

func TestValidHost(t *testing.T) {
	for _, s := range []string{"docker.io", "registry-1.docker.io", "localhost:5000", "127.0.0.1:65001", "[::1]:5000", "[::1]", "a"} {
		if !validHost(s) {
			t.Errorf("validHost(%q) = false", s)
		}
	}
	for _, s := range []string{"", "Docker.io", "a..b", "-a.com", "a-.com", "a:0", "a:65536", "a:", "a:+1", "a:01",
		"[::1", "[1.2.3.4]", "a/b", "a b", "a@b", strings.Repeat("a", 64) + ".com", "a:b:c"} {
		if validHost(s) {
			t.Errorf("validHost(%q) = true", s)
		}
	}
}

func TestParseRoute(t *testing.T) {
	d := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		path string
		ep   endpoint
		name string
		ref  string
		err  error
	}{
		{"/v2/", endpointBase, "", "", nil},
		{"/v2", endpointBase, "", "", nil},
		{"/v2/library/alpine/manifests/latest", endpointManifest, "library/alpine", "latest", nil},
		{"/v2/a/b/c/manifests/" + d, endpointManifest, "a/b/c", d, nil},
		{"/v2/blobs/blobs/" + d, endpointBlob, "blobs", d, nil},
		{"/v2/manifests/manifests/x", endpointManifest, "manifests", "x", nil},
		{"/v2/a/blobs/latest", endpointBlob, "", "", ErrDigestInvalid},
		{"/v2/a/tags/list", 0, "", "", ErrNotRoute},
		{"/v2/_catalog", 0, "", "", ErrNotRoute},
		{"/v3/a/manifests/x", 0, "", "", ErrNotRoute},
		{"/v2/A/manifests/x", endpointManifest, "", "", ErrNameInvalid},
		{"/v2/../manifests/x", endpointManifest, "", "", ErrNameInvalid},
	} {
		rt, err := parseRoute(tc.path, tc.path)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: err %v, want %v", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil || rt.endpoint != tc.ep || rt.name != tc.name || (tc.ref != "" && rt.ref() != tc.ref) {
			t.Errorf("%s: %+v %v", tc.path, rt, err)
		}
	}
	if _, err := parseRoute("/v2/a%2fb/manifests/x", "/v2/a/b/manifests/x"); !errors.Is(err, ErrNameInvalid) {
		t.Errorf("escaped slash accepted: %v", err)
	}
}

func TestParseNS(t *testing.T) {
	for q, want := range map[string]string{"": "", "ns=docker.io": "docker.io", "ns=Docker.IO": "docker.io", "x=1": "", "ns=localhost%3A5000": "localhost:5000"} {
		got, err := parseNS(q)
		if err != nil || got != want {
			t.Errorf("parseNS(%q) = %q, %v", q, got, err)
		}
	}
	for _, q := range []string{"ns=a&ns=b", "ns=a/b", "ns=%zz", "ns=" + strings.Repeat("a", 2000), "ns=a..b"} {
		if _, err := parseNS(q); !errors.Is(err, ErrNameInvalid) {
			t.Errorf("parseNS(%q) accepted", q)
		}
	}
}

func TestByteRange(t *testing.T) {
	const etag = `"sha256:x"`
	for _, tc := range []struct {
		ranges  []string
		ifRange string
		size    int64
		start   int64
		n       int64
		status  int
	}{
		{nil, "", 100, 0, 100, 200},
		{[]string{"bytes=0-9"}, "", 100, 0, 10, 206},
		{[]string{"bytes=0-9"}, etag, 100, 0, 10, 206},
		{[]string{"bytes=0-9"}, `"other"`, 100, 0, 100, 200},
		{[]string{"bytes=0-9"}, "Wed, 21 Oct 2015 07:28:00 GMT", 100, 0, 100, 200},
		{[]string{"bytes=0-9", "bytes=1-2"}, "", 100, 0, 100, 200},
		{[]string{"bytes=100-"}, "", 100, 0, 0, 416},
		{[]string{"bytes=0-0"}, "", 0, 0, 0, 416},
		{[]string{"bytes=-5"}, "", 0, 0, 0, 416},
		{[]string{"bytes=x"}, "", 0, 0, 0, 200},
	} {
		s, n, st := byteRange(tc.ranges, tc.ifRange, etag, tc.size)
		if s != tc.start || n != tc.n || st != tc.status {
			t.Errorf("%q/%q/%d: %d+%d %d, want %d+%d %d", tc.ranges, tc.ifRange, tc.size, s, n, st, tc.start, tc.n, tc.status)
		}
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/library/alpine/manifests/latest", "/v2/a/blobs/sha256:" + strings.Repeat("0", 64),
		"/v2/../manifests/x", "/v2/a/b/tags/list", "/v2/a%2e%2e/manifests/x"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, escaped, decoded string) {
		rt, err := parseRoute(escaped, decoded)
		if err != nil {
			return
		}
		if strings.ContainsAny(escaped, "%\\") || escaped != decoded {
			t.Fatalf("escaped path accepted: %q", escaped)
		}
		switch rt.endpoint {
		case endpointBase:
		case endpointManifest, endpointBlob:
			if !validName(rt.name) || len(rt.name) > 255 || strings.Contains(rt.name, "..") || rt.name != strings.ToLower(rt.name) {
				t.Fatalf("bad name accepted: %q", rt.name)
			}
			if rt.endpoint == endpointBlob && !rt.byDigest {
				t.Fatalf("blob by tag accepted: %q", decoded)
			}
			if !rt.byDigest && !validTag(rt.tag) {
				t.Fatalf("bad tag accepted: %q", rt.tag)
			}
			if want := "/v2/" + rt.name + "/" + rt.kind() + "/" + rt.ref(); want != decoded {
				t.Fatalf("route %q does not round-trip: %q", decoded, want)
			}
		default:
			t.Fatalf("no endpoint for %q", decoded)
		}
	})
}

func FuzzParseNS(f *testing.F) {
	for _, s := range []string{"ns=docker.io", "ns=localhost:5000", "ns=[::1]:5000", "ns=a&ns=b", "x=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		ns, err := parseNS(q)
		if err != nil || ns == "" {
			return
		}
		if !validHost(ns) || ns != strings.ToLower(ns) || strings.ContainsAny(ns, "/?#@ ") {
			t.Fatalf("bad ns accepted: %q", ns)
		}
	})
}

func FuzzByteRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-0", "bytes=--5", "bytes=+5-", "bytes=5-2", "bytes=9223372036854775807-",
		" bytes=1-2", "items=0-1", "bytes=0-0,0-0", "bytes=-9223372036854775808"} {
		f.Add(s, int64(100), "")
	}
	f.Fuzz(func(t *testing.T, rng string, size int64, ifRange string) {
		if size < 0 {
			size = -(size + 1)
		}
		start, n, status := byteRange([]string{rng}, ifRange, `"e"`, size)
		switch status {
		case http.StatusOK:
			if start != 0 || n != size {
				t.Fatalf("200 with %d+%d of %d", start, n, size)
			}
		case http.StatusPartialContent:
			if start < 0 || n < 1 || start > size-n {
				t.Fatalf("206 with %d+%d of %d", start, n, size)
			}
		case http.StatusRequestedRangeNotSatisfiable:
		default:
			t.Fatalf("status %d", status)
		}
	})
}
