package source

import (
	"errors"
	"net/http"
	"testing"
)

func TestInvalidURL(t *testing.T) {
	c := newClient(t)
	for _, u := range []string{"", "/relative", "ftp://example.com/x", "http://", "https:opaque", "::bad", "file:///etc/passwd"} {
		t.Run(u, func(t *testing.T) {
			if _, err := c.Stat(t.Context(), Request{URL: u}); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("Stat(%q) = %v, want ErrInvalidRequest", u, err)
			}
		})
	}
}

func TestRequestHeaders(t *testing.T) {
	o := startOrigin(t, serveContent(testData, "", testMod))
	tests := []struct {
		name   string
		opts   []Option
		header http.Header
		wantUA string
	}{
		{name: "default user agent", wantUA: DefaultUserAgent},
		{name: "configured user agent", opts: []Option{WithUserAgent("dfget/1")}, wantUA: "dfget/1"},
		{name: "caller's user agent and headers", header: http.Header{"User-Agent": {"mine"}, "X-Extra": {"1"},
			"Range": {"bytes=5-"}, "Accept-Encoding": {"gzip"}, "If-None-Match": {`"x"`}}, wantUA: "mine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := newClient(t, tt.opts...).OpenRange(t.Context(), Request{URL: o.URL + "/h", Header: tt.header}, 0, 10, "")
			if err != nil {
				t.Fatal(err)
			}
			if got, err := readAll(t, body); err != nil || string(got) != string(testData[:10]) {
				t.Fatalf("body %q, %v", got, err)
			}
			h := o.header("/h")
			if got := h.Get("User-Agent"); got != tt.wantUA {
				t.Errorf("User-Agent %q, want %q", got, tt.wantUA)
			}
			if got := h.Get("Range"); got != "bytes=0-9" {
				t.Errorf("Range %q: the caller's header won", got)
			}
			if got := h.Get("Accept-Encoding"); got != "identity" {
				t.Errorf("Accept-Encoding %q, want identity", got)
			}
			if got := h.Get("If-None-Match"); got != "" {
				t.Errorf("the caller's If-None-Match %q went through", got)
			}
			if got, want := h.Get("X-Extra"), tt.header.Get("X-Extra"); got != want {
				t.Errorf("X-Extra %q, want %q", got, want)
			}
		})
	}
}
