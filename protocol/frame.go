package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// Frame size limits: every control message is read through ReadMsg with one
// of these, so no peer can make us allocate more than the limit.
const (
	MaxPieceRequestSize  = 64
	MaxPieceResponseSize = 512
	MaxSyncRequestSize   = 64
	MaxSyncMessageSize   = 64 << 10
	MaxMemberMessageSize = 64
	MaxProviderEventSize = 64 << 10
	// MaxSyncPieces bounds the pieces listed in one pb.PieceSet.
	MaxSyncPieces = 1024
	// MaxProviderEventTasks bounds the task IDs in one pb.ProviderEvent.
	MaxProviderEventTasks = 1024
	// MaxMessageLength bounds every human-readable message field.
	MaxMessageLength = 256
)

// Framing errors. A stream that yields one of them must be reset: the peer
// is broken or hostile.
var (
	// ErrFrameTooLarge: the length prefix exceeds the limit for this message.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrBadFrame: the length prefix is malformed (overlong or non-minimal
	// varint) or the body is not a valid message.
	ErrBadFrame = errors.New("malformed frame")
)

// ByteReader is what ReadMsg needs: a *bufio.Reader fits.
type ByteReader interface {
	io.Reader
	io.ByteReader
}

// ReadMsg reads one uvarint-length-prefixed protobuf message of at most max
// bytes into m. The length is checked before anything is allocated, and a
// non-minimal varint is refused. io.EOF is returned only when the stream
// ended cleanly before the first byte of a frame.
func ReadMsg(r ByteReader, m proto.Message, max int) error {
	n, err := readUvarint(r)
	if err != nil {
		return err
	}
	if n > uint64(max) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read frame body: %w", err)
	}
	if err := proto.Unmarshal(buf, m); err != nil {
		return fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	return nil
}

// readUvarint reads a minimal uvarint of at most 5 bytes (frames are < 4 GiB).
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if i == 4 && b > 0x0f {
			return 0, fmt.Errorf("%w: length prefix overflows 32 bits", ErrBadFrame)
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%w: non-minimal length prefix", ErrBadFrame)
			}
			return x, nil
		}
	}
}

// AppendMsg appends m, length-prefixed, to buf.
func AppendMsg(buf []byte, m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	buf = binary.AppendUvarint(buf, uint64(size))
	return proto.MarshalOptions{}.MarshalAppend(buf, m)
}

// WriteMsg writes m, length-prefixed, in a single Write.
func WriteMsg(w io.Writer, m proto.Message) error {
	buf, err := AppendMsg(make([]byte, 0, binary.MaxVarintLen32+proto.Size(m)), m)
	if err != nil {
		return fmt.Errorf("marshal %T: %w", m, err)
	}
	_, err = w.Write(buf)
	return err
}
