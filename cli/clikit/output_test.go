package clikit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestPrint(t *testing.T) {
	type result struct {
		TaskID string `json:"task_id"`
		URL    string `json:"url"`
		Bytes  int64  `json:"bytes"`
	}
	res := result{TaskID: "t1", URL: "https://o.example/a?x=1&y=2", Bytes: 42}
	text := func(w io.Writer) error { _, err := fmt.Fprintf(w, "%s %d\n", res.TaskID, res.Bytes); return err }
	tests := []struct {
		name     string
		format   string
		text     func(io.Writer) error
		want     string
		wantCode int // exit code of the error; 0: no error
	}{
		{name: "json", format: FormatJSON, text: text,
			want: "{\n  \"task_id\": \"t1\",\n  \"url\": \"https://o.example/a?x=1&y=2\",\n  \"bytes\": 42\n}\n"},
		{name: "text", format: FormatText, text: text, want: "t1 42\n"},
		{name: "text without a function", format: FormatText, want: "{t1 https://o.example/a?x=1&y=2 42}\n"},
		{name: "unknown format", format: "yaml", text: text, wantCode: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Print(&buf, tt.format, res, tt.text)
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("err = %v (code %d), want code %d", err, got, tt.wantCode)
			}
			if buf.String() != tt.want {
				t.Fatalf("printed %q, want %q", buf.String(), tt.want)
			}
		})
	}
}

func TestPrintTextError(t *testing.T) {
	boom := errors.New("boom")
	if err := Print(io.Discard, FormatText, nil, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the text function's", err)
	}
	if err := Print(io.Discard, FormatJSON, func() {}, nil); err == nil {
		t.Fatal("printed a func as JSON")
	}
}

func TestAddOutputFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr bool
	}{
		{name: "default", want: FormatText},
		{name: "long", args: []string{"--output=json"}, want: FormatJSON},
		{name: "short", args: []string{"-o", "text"}, want: FormatText},
		{name: "refused while parsing", args: []string{"-o", "yaml"}, want: FormatText, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var output string
			fs := newFlagSet()
			AddOutputFlag(fs, &output)
			err := fs.Parse(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if output != tt.want {
				t.Fatalf("output = %q, want %q", output, tt.want)
			}
			if err := CheckFormat(output); err != nil {
				t.Fatal(err)
			}
		})
	}
}
