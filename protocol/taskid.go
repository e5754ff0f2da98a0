package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// ErrBadTaskID is returned for a task ID that does not follow the grammar:
// 64 lowercase hex characters (optionally prefixed "sha256:") in text, a
// 34-byte sha2-256 multihash on the wire.
var ErrBadTaskID = errors.New("bad task ID: want 64 lowercase hex characters")

// ErrBadURLTask is returned when a URL task's fields cannot be canonicalised.
var ErrBadURLTask = errors.New("bad URL task")

// Limits on the fields that make up a URL task ID.
const (
	MaxURLLength   = 8 << 10
	MaxLabelLength = 256 // tag, application, named-task name
)

// TaskID identifies a task: the sha2-256 digest inside the task's multihash.
//
// Content tasks use the content's own sha256, so the same bytes are the same
// task whatever URL they came from. URL tasks and named tasks hash a
// canonical encoding of their description (see URLTask.ID, NamedTask).
type TaskID [sha256.Size]byte

// ContentTaskID is the task ID of content whose sha256 is d.
func ContentTaskID(d Digest) TaskID { return TaskID(d) }

// ParseTaskID parses the text form: 64 lowercase hex characters, optionally
// prefixed with "sha256:".
func ParseTaskID(s string) (TaskID, error) {
	s = strings.TrimPrefix(s, DigestAlgorithm+":")
	b, err := parseHex32(s, ErrBadTaskID)
	return TaskID(b), err
}

// TaskIDFromMultihash parses the wire form: a 34-byte sha2-256 multihash.
func TaskIDFromMultihash(b []byte) (TaskID, error) {
	var id TaskID
	if len(b) != 2+len(id) || b[0] != multihash.SHA2_256 || b[1] != byte(len(id)) {
		return id, fmt.Errorf("%w: not a 34-byte sha2-256 multihash", ErrBadTaskID)
	}
	copy(id[:], b[2:])
	return id, nil
}

// TaskIDFromCID parses a CIDv1 (codec raw) carrying a sha2-256 multihash.
func TaskIDFromCID(c cid.Cid) (TaskID, error) {
	if c.Type() != cid.Raw {
		return TaskID{}, fmt.Errorf("%w: CID codec %#x is not raw", ErrBadTaskID, c.Type())
	}
	return TaskIDFromMultihash(c.Hash())
}

// String returns the 64 lowercase hex characters.
func (id TaskID) String() string { return Digest(id).Hex() }

// Short returns the first 12 hex characters, for logs.
func (id TaskID) Short() string { return id.String()[:12] }

// Multihash returns the wire form.
func (id TaskID) Multihash() multihash.Multihash {
	mh := make([]byte, 0, 2+len(id))
	mh = append(mh, multihash.SHA2_256, byte(len(id)))
	return append(mh, id[:]...)
}

// CID returns the CIDv1 (codec raw) under which the task is provided on the DHT.
func (id TaskID) CID() cid.Cid { return cid.NewCidV1(cid.Raw, id.Multihash()) }

// MarshalText implements encoding.TextMarshaler.
func (id TaskID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *TaskID) UnmarshalText(b []byte) error {
	v, err := ParseTaskID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// URLTask describes a download whose digest is not known up front. Its ID
// is stable across hosts and releases; see ID for the exact encoding.
type URLTask struct {
	// URL is the http or https source.
	URL string
	// Tag and Application separate otherwise identical URLs.
	Tag         string
	Application string
	// PieceLength is the fixed piece length, or 0 for the automatic rule.
	PieceLength uint32
	// FilteredQueryParams are query parameter names left out of the ID
	// (signatures, expiry times): URLs differing only in them are one task.
	FilteredQueryParams []string
}

// ID derives the task ID:
//
//	sha256( "dragonfly/url-task/v1" || field(canonical URL) || field(tag) ||
//	        field(application) || field(decimal piece length) )
//
// where field(x) = uvarint(len(x)) || x. See CanonicalURL.
func (t URLTask) ID() (TaskID, error) {
	u, err := CanonicalURL(t.URL, t.FilteredQueryParams)
	if err != nil {
		return TaskID{}, err
	}
	if err := checkLabel("tag", t.Tag); err != nil {
		return TaskID{}, err
	}
	if err := checkLabel("application", t.Application); err != nil {
		return TaskID{}, err
	}
	if t.PieceLength != 0 {
		if err := CheckPieceLength(t.PieceLength); err != nil {
			return TaskID{}, fmt.Errorf("%w: %w", ErrBadURLTask, err)
		}
	}
	return hashFields("dragonfly/url-task/v1", u, t.Tag, t.Application,
		strconv.FormatUint(uint64(t.PieceLength), 10)), nil
}

// NamedTaskID derives the ID of data imported under a caller-chosen name
// (dfcache import --id NAME --tag TAG):
//
//	sha256( "dragonfly/named-task/v1" || field(name) || field(tag) )
func NamedTaskID(name, tag string) (TaskID, error) {
	if name == "" && tag == "" {
		return TaskID{}, fmt.Errorf("%w: a named task needs a name or a tag", ErrBadURLTask)
	}
	if err := checkLabel("name", name); err != nil {
		return TaskID{}, err
	}
	if err := checkLabel("tag", tag); err != nil {
		return TaskID{}, err
	}
	return hashFields("dragonfly/named-task/v1", name, tag), nil
}

func hashFields(domain string, fields ...string) TaskID {
	h := sha256.New()
	h.Write([]byte(domain))
	var n [binary.MaxVarintLen64]byte
	for _, f := range fields {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
		h.Write([]byte(f))
	}
	var id TaskID
	h.Sum(id[:0])
	return id
}

// CanonicalURL returns the form of raw that goes into a URL task ID:
// scheme and host lowercased, default port, user info and fragment dropped,
// an empty path written "/", the filtered query parameters removed and the
// rest sorted by name (values keep their order).
func CanonicalURL(raw string, filtered []string) (string, error) {
	if len(raw) > MaxURLLength {
		return "", fmt.Errorf("%w: URL longer than %d bytes", ErrBadURLTask, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadURLTask, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%w: scheme %q is not http or https", ErrBadURLTask, truncate(u.Scheme))
	}
	if u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("%w: URL has no host", ErrBadURLTask)
	}
	hostname := strings.ToLower(u.Hostname())
	if hostname == "" {
		return "", fmt.Errorf("%w: URL has no host", ErrBadURLTask)
	}
	port := u.Port()
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	host := hostname
	if strings.Contains(hostname, ":") {
		host = "[" + hostname + "]" // IPv6 literal
	}
	if port != "" {
		host += ":" + port
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: query: %w", ErrBadURLTask, err)
	}
	for _, name := range filtered {
		q.Del(name)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	out := scheme + "://" + host + path
	if len(q) > 0 {
		out += "?" + encodeSorted(q)
	}
	return out, nil
}

// encodeSorted is url.Values.Encode, spelled out so the wire contract does
// not depend on the standard library's choices.
func encodeSorted(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String()
}

// checkLabel bounds a user-supplied label: at most MaxLabelLength bytes of
// valid UTF-8 without control characters.
func checkLabel(what, s string) error {
	if len(s) > MaxLabelLength {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrBadURLTask, what, MaxLabelLength)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrBadURLTask, what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s contains a control character", ErrBadURLTask, what)
		}
	}
	return nil
}
