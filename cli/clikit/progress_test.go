package clikit

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProgress(t *testing.T) {
	data := bytes.Repeat([]byte("piece"), 10000)
	tests := []struct {
		name    string
		enabled bool
		total   int64
		write   bool // wrap the writer instead of the reader
		abort   bool
		want    []string // in the rendered output; none means no output
	}{
		{name: "disabled", enabled: false, total: int64(len(data))},
		{name: "disabled writer", enabled: false, write: true},
		{name: "known total", enabled: true, total: int64(len(data)), want: []string{"xfer", "48.8 KiB / 48.8 KiB"}},
		{name: "unknown total", enabled: true, total: 0, want: []string{"xfer", "48.8 KiB"}},
		{name: "writer", enabled: true, total: int64(len(data)), write: true, want: []string{"xfer", "48.8 KiB / 48.8 KiB"}},
		{name: "aborted", enabled: true, total: 2 * int64(len(data)), abort: true, want: []string{"xfer", "48.8 KiB / 97.7 KiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var screen, dst bytes.Buffer
			bar := NewProgress(&screen, tt.enabled, "xfer", tt.total)
			var err error
			if tt.write {
				_, err = io.Copy(bar.Writer(&dst), bytes.NewReader(data))
			} else {
				_, err = io.Copy(&dst, bar.Reader(bytes.NewReader(data)))
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.abort {
				bar.Abort()
			} else {
				bar.Wait()
			}
			bar.Abort() // no-op after Wait; must not hang
			if !bytes.Equal(dst.Bytes(), data) {
				t.Fatalf("copied %d bytes, want %d unchanged", dst.Len(), len(data))
			}
			out := screen.String()
			if len(tt.want) == 0 && out != "" {
				t.Fatalf("disabled bar drew %q", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("bar output lacks %q: %q", w, out)
				}
			}
		})
	}
}

func TestProgressNil(t *testing.T) {
	var bar *Progress
	r := strings.NewReader("x")
	if bar.Reader(r) != io.Reader(r) {
		t.Fatal("nil Progress wrapped the reader")
	}
	bar.Wait()
	bar.Abort()
	bar.Done(true)
}

func TestShowProgress(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, format := range []string{FormatText, FormatJSON} {
		if ShowProgress(f, format) {
			t.Errorf("ShowProgress(regular file, %s) = true", format)
		}
	}
}
