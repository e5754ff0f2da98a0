package protocol

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// goldenVector pins one task ID. The file is written by hand (see
// testdata/README.md): a failing vector means the wire contract changed.
type goldenVector struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"` // content | url | named
	Digest   string   `json:"digest,omitempty"`
	URL      string   `json:"url,omitempty"`
	Tag      string   `json:"tag,omitempty"`
	App      string   `json:"application,omitempty"`
	PieceLen uint32   `json:"piece_length,omitempty"`
	Filtered []string `json:"filtered,omitempty"`
	NameArg  string   `json:"task_name,omitempty"`
	Want     string   `json:"want"`
	WantCID  string   `json:"want_cid,omitempty"`
}

func TestTaskIDGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/taskid_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []goldenVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 10 {
		t.Fatalf("only %d golden vectors", len(vectors))
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			var (
				id  TaskID
				err error
			)
			switch v.Kind {
			case "content":
				var d Digest
				if d, err = ParseDigest(v.Digest); err == nil {
					id = ContentTaskID(d)
				}
			case "url":
				id, err = URLTask{URL: v.URL, Tag: v.Tag, Application: v.App, PieceLength: v.PieceLen, FilteredQueryParams: v.Filtered}.ID()
			case "named":
				id, err = NamedTaskID(v.NameArg, v.Tag)
			default:
				t.Fatalf("unknown kind %q", v.Kind)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := id.String(); got != v.Want {
				t.Fatalf("task ID = %s, want %s (the wire contract changed!)", got, v.Want)
			}
			if v.WantCID != "" && id.CID().String() != v.WantCID {
				t.Fatalf("CID = %s, want %s", id.CID(), v.WantCID)
			}
			back, err := TaskIDFromCID(id.CID())
			if err != nil || back != id {
				t.Fatalf("CID round trip: %v, %v", back, err)
			}
		})
	}
}

func TestURLTaskEquivalence(t *testing.T) {
	id := func(u string, filtered ...string) TaskID {
		t.Helper()
		v, err := URLTask{URL: u, FilteredQueryParams: filtered}.ID()
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		return v
	}
	base := id("http://example.com/a/b?x=1&y=2")
	same := map[string]TaskID{
		"scheme and host case": id("HTTP://EXAMPLE.com/a/b?x=1&y=2"),
		"default port":         id("http://example.com:80/a/b?x=1&y=2"),
		"fragment":             id("http://example.com/a/b?x=1&y=2#frag"),
		"query order":          id("http://example.com/a/b?y=2&x=1"),
		"user info":            id("http://user:pw@example.com/a/b?x=1&y=2"),
		"filtered param":       id("http://example.com/a/b?x=1&y=2&sig=abc", "sig"),
	}
	for name, got := range same {
		if got != base {
			t.Errorf("%s: got a different task ID", name)
		}
	}
	different := map[string]TaskID{
		"path case":  id("http://example.com/A/b?x=1&y=2"),
		"other port": id("http://example.com:8080/a/b?x=1&y=2"),
		"https":      id("https://example.com/a/b?x=1&y=2"),
		"value":      id("http://example.com/a/b?x=1&y=3"),
	}
	for name, got := range different {
		if got == base {
			t.Errorf("%s: got the same task ID", name)
		}
	}
	tagged, _ := URLTask{URL: "http://example.com/a/b?x=1&y=2", Tag: "t"}.ID()
	if tagged == base {
		t.Error("tag does not change the task ID")
	}
}

func TestURLTaskErrors(t *testing.T) {
	tests := []struct {
		name string
		task URLTask
	}{
		{"file scheme", URLTask{URL: "file:///etc/passwd"}},
		{"gopher scheme", URLTask{URL: "gopher://example.com/"}},
		{"no host", URLTask{URL: "http:///path"}},
		{"opaque", URLTask{URL: "http:example.com"}},
		{"too long", URLTask{URL: "http://example.com/" + strings.Repeat("a", MaxURLLength)}},
		{"control char in tag", URLTask{URL: "http://example.com/", Tag: "a\nb"}},
		{"long application", URLTask{URL: "http://example.com/", Application: strings.Repeat("a", MaxLabelLength+1)}},
		{"bad piece length", URLTask{URL: "http://example.com/", PieceLength: 12345}},
		{"bad query", URLTask{URL: "http://example.com/?a=%zz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.task.ID(); !errors.Is(err, ErrBadURLTask) {
				t.Fatalf("err = %v, want ErrBadURLTask", err)
			}
		})
	}
}

func TestParseTaskID(t *testing.T) {
	const hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"hex", hex, true},
		{"oci form", "sha256:" + hex, true},
		{"uppercase", strings.ToUpper(hex), false},
		{"short", hex[:63], false},
		{"long", hex + "0", false},
		{"traversal", "../" + hex[3:], false},
		{"slash", hex[:31] + "/" + hex[32:], false},
		{"nul", hex[:63] + "\x00", false},
		{"non hex", strings.Repeat("g", 64), false},
		{"md5", "md5:" + hex[:32], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseTaskID(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseTaskID(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadTaskID) {
				t.Fatalf("err %v is not ErrBadTaskID", err)
			}
			if tt.ok && id.String() != hex {
				t.Fatalf("round trip = %s", id)
			}
		})
	}
}

func TestTaskIDFromMultihash(t *testing.T) {
	id := ContentTaskID(SHA256([]byte("x")))
	if got, err := TaskIDFromMultihash(id.Multihash()); err != nil || got != id {
		t.Fatalf("round trip: %v %v", got, err)
	}
	bad := map[string][]byte{
		"empty":     nil,
		"short":     id.Multihash()[:33],
		"long":      append(id.Multihash(), 0),
		"sha512":    append([]byte{0x13, 0x20}, id[:]...),
		"wrong len": append([]byte{0x12, 0x21}, id[:]...),
	}
	for name, b := range bad {
		if _, err := TaskIDFromMultihash(b); !errors.Is(err, ErrBadTaskID) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestParseDigest(t *testing.T) {
	const hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"sha256", "sha256:" + hex, true},
		{"bare hex", hex, false},
		{"md5", "md5:d41d8cd98f00b204e9800998ecf8427e", false},
		{"sha1", "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709", false},
		{"sha512", "sha512:" + hex + hex, false},
		{"63 chars", "sha256:" + hex[:63], false},
		{"65 chars", "sha256:" + hex + "0", false},
		{"uppercase algo", "SHA256:" + hex, false},
		{"uppercase hex", "sha256:" + strings.ToUpper(hex), false},
		{"empty hex", "sha256:", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDigest(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseDigest(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadDigest) {
				t.Fatalf("err %v is not ErrBadDigest", err)
			}
			if tt.ok && d.String() != tt.in {
				t.Fatalf("round trip = %s", d)
			}
		})
	}
}

func FuzzParseTaskID(f *testing.F) {
	f.Add("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	f.Add("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseTaskID(s)
		if err != nil {
			return
		}
		if back, err := ParseTaskID(id.String()); err != nil || back != id {
			t.Fatalf("round trip of %q failed", s)
		}
	})
}

func FuzzURLTaskID(f *testing.F) {
	f.Add("http://example.com/a?b=c", "tag", "app")
	f.Add("https://[::1]:8443/x", "", "")
	f.Fuzz(func(t *testing.T, u, tag, app string) {
		id1, err := URLTask{URL: u, Tag: tag, Application: app}.ID()
		if err != nil {
			return
		}
		// The canonical form is a fixed point: canonicalising it again
		// yields the same task.
		c, err := CanonicalURL(u, nil)
		if err != nil {
			t.Fatalf("ID succeeded but CanonicalURL failed: %v", err)
		}
		id2, err := URLTask{URL: c, Tag: tag, Application: app}.ID()
		if err != nil || id1 != id2 {
			t.Fatalf("canonical form %q of %q is not a fixed point (%v)", c, u, err)
		}
	})
}
