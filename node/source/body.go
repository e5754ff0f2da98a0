package source

import (
	"fmt"
	"io"
)

// body checks the length of a response body.
//
// With want ≥ 0 it delivers exactly want bytes: an earlier end is
// io.ErrUnexpectedEOF, and in exact mode any byte beyond want is an error
// (ErrInvalidResponse), detected when the caller reads past want. In prefix
// mode the body may go on and the rest is ignored. With want < 0 the length
// is unknown and the body passes through.
type body struct {
	rc    io.ReadCloser
	want  int64
	exact bool
	n     int64
	err   error // sticky
}

func newBody(rc io.ReadCloser, want int64, exact bool) *body {
	return &body{rc: rc, want: want, exact: exact}
}

// maxEmptyReads bounds (0, nil) reads tolerated while probing the end.
const maxEmptyReads = 100

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.want >= 0 {
		rem := b.want - b.n
		if rem == 0 {
			b.err = b.probeEnd()
			return 0, b.err
		}
		if int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	k, err := b.rc.Read(p)
	b.n += int64(k)
	switch {
	case err == io.EOF && b.want >= 0 && b.n < b.want:
		err = fmt.Errorf("%w: body ended after %d of %d bytes", io.ErrUnexpectedEOF, b.n, b.want)
	case err == nil && b.want >= 0 && b.n == b.want && !b.exact:
		err = io.EOF
	}
	if err != nil {
		b.err = err
	}
	return k, err
}

// probeEnd runs once want bytes were delivered: the origin must end here.
func (b *body) probeEnd() error {
	if !b.exact {
		return io.EOF
	}
	var one [1]byte
	for range maxEmptyReads {
		k, err := b.rc.Read(one[:])
		if k > 0 {
			return fmt.Errorf("%w: body longer than %d bytes", ErrInvalidResponse, b.want)
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: body does not end after %d bytes", ErrInvalidResponse, b.want)
}

// Close closes the underlying body.
func (b *body) Close() error { return b.rc.Close() }
