package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/dragonfly-p2p/df/manager/api"
)

// apiError is an API refusal, with the API's own message (shown to the user).
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code) }

// maxAPIResponse bounds what one in-process API answer may hold.
const maxAPIResponse = 32 << 20

// recorder is a bounded in-memory http.ResponseWriter.
type recorder struct {
	h      http.Header
	status int
	buf    bytes.Buffer
	over   bool
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.buf.Len()+len(p) > maxAPIResponse {
		r.over = true
		return 0, fmt.Errorf("console: API answer larger than %d bytes", maxAPIResponse)
	}
	return r.buf.Write(p)
}

// call runs one API request in-process as the visitor (token "" for the
// public login route). body, when not nil, is sent as JSON; a 2xx answer
// is decoded into out when out is not nil. A refusal is an *apiError.
func (c *Console) call(ctx context.Context, remote, token, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://console.internal"+path, rd)
	if err != nil {
		return err
	}
	req.RemoteAddr = remote // audit entries name the browser's address
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{h: http.Header{}}
	c.api.Handler().ServeHTTP(rec, req)
	if rec.over {
		return fmt.Errorf("console: %s %s: answer too large", method, path)
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		var eb api.ErrorBody
		if err := json.Unmarshal(rec.buf.Bytes(), &eb); err != nil || eb.Error.Message == "" {
			return &apiError{Status: rec.status, Code: "internal", Message: http.StatusText(rec.status)}
		}
		return &apiError{Status: rec.status, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if out != nil && rec.status != http.StatusNoContent {
		if err := json.Unmarshal(rec.buf.Bytes(), out); err != nil {
			return fmt.Errorf("console: decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

// as calls the API as visitor v.
func (c *Console) as(v *visit, r *http.Request, method, path string, body, out any) error {
	return c.call(r.Context(), r.RemoteAddr, v.sess.token, method, path, body, out)
}
