package mirror

import (
	"strings"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	for _, tc := range []struct {
		in     []string
		scheme string
		params map[string]string
	}{
		{[]string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`},
			"bearer", map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/alpine:pull"}},
		{[]string{`Basic realm="Registry Realm"`}, "basic", map[string]string{"realm": "Registry Realm"}},
		{[]string{`Basic realm="x", Bearer realm="https://a/t", service=svc`}, "bearer", map[string]string{"realm": "https://a/t", "service": "svc"}},
		{[]string{`Basic realm="x"`, `bearer REALM="https://a/t"`}, "bearer", map[string]string{"realm": "https://a/t"}},
		{[]string{`Bearer realm="a\"b\\c"`}, "bearer", map[string]string{"realm": `a"b\c`}},
		{[]string{`Bearer realm = "spaced" , service = s`}, "bearer", map[string]string{"realm": "spaced", "service": "s"}},
		{[]string{`Negotiate abc==, Bearer realm="r"`}, "bearer", map[string]string{"realm": "r"}},
		{[]string{`Bearer realm="first",realm="second"`}, "bearer", map[string]string{"realm": "first"}},
	} {
		ch, ok := pick(parseChallenges(tc.in))
		if !ok || ch.scheme != tc.scheme {
			t.Errorf("%q: %+v %v", tc.in, ch, ok)
			continue
		}
		for k, v := range tc.params {
			if ch.params[k] != v {
				t.Errorf("%q: %s = %q, want %q", tc.in, k, ch.params[k], v)
			}
		}
	}
	for _, in := range []string{"", ",,,", `Bearer realm="unterminated`, "=", `"quoted"`, strings.Repeat("x", 5000), `Digest realm="x"`} {
		if ch, ok := pick(parseChallenges([]string{in})); ok && ch.params["realm"] != "" {
			t.Errorf("%.40q parsed to %+v", in, ch)
		}
	}
}

func TestChallengeString(t *testing.T) {
	ch := challenge{scheme: "bearer", params: map[string]string{"realm": `https://a/t"x`, "service": "s", "scope": "repository:a:pull", "other": "dropped", "error": "bad\r\nInjected: 1"}}
	s := ch.String()
	if s != `Bearer realm="https://a/t\"x",service="s",scope="repository:a:pull"` {
		t.Fatalf("got %s", s)
	}
	back, ok := pick(parseChallenges([]string{s}))
	if !ok || back.params["realm"] != `https://a/t"x` || back.params["scope"] != "repository:a:pull" {
		t.Fatalf("round trip: %+v", back)
	}
	if (challenge{scheme: "digest"}).String() != "" {
		t.Fatal("unknown scheme re-serialised")
	}
}

func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`,
		`Basic realm="x", Bearer realm="y", scope="a b"`,
		`Bearer realm="a\"b"`, `,,Bearer`, `Bearer =x`, `Bearer realm=`, `x y=z, , w`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		chs := parseChallenges([]string{s})
		if len(chs) > maxChallenges {
			t.Fatalf("%d challenges", len(chs))
		}
		for _, ch := range chs {
			if len(ch.params) > maxChallengeParams || ch.scheme == "" || ch.scheme != strings.ToLower(ch.scheme) {
				t.Fatalf("bad challenge %+v", ch)
			}
			out := ch.String()
			if strings.ContainsAny(out, "\r\n\x00") {
				t.Fatalf("unsafe re-serialisation %q", out)
			}
			if out == "" {
				continue
			}
			// What we relay parses back to the same known parameters.
			back, ok := pick(parseChallenges([]string{out}))
			if !ok || back.scheme != ch.scheme {
				t.Fatalf("%q → %q does not parse back", s, out)
			}
			for _, k := range []string{"realm", "service", "scope", "error"} {
				if v, ok := ch.params[k]; ok && printable(v) && back.params[k] != v {
					t.Fatalf("%q → %q: %s %q became %q", s, out, k, v, back.params[k])
				}
			}
		}
	})
}
