package mirror

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dragonfly-p2p/df/protocol"
)

// Docker's manifest media types (image-spec defines the OCI ones).
const (
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// manifestTypes are the manifest media types the mirror serves; whether
// each is an index (a list of manifests) or an image manifest.
var manifestTypes = map[string]bool{
	ocispec.MediaTypeImageManifest: false,
	ocispec.MediaTypeImageIndex:    true,
	mediaTypeDockerManifest:        false,
	mediaTypeDockerList:            true,
}

// manifestAccept is the Accept header for manifests: every served type.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, mediaTypeDockerList, mediaTypeDockerManifest,
}, ", ")

// cleanMediaType strips parameters and lowercases; "" when unparsable.
func cleanMediaType(v string) string {
	if v == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// acceptFor keeps the manifest types a client's Accept header lists (in
// its order), or every type when it lists none.
func acceptFor(values []string) string {
	var keep []string
	seen := map[string]bool{}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt := cleanMediaType(strings.TrimSpace(part))
			if _, ok := manifestTypes[mt]; ok && !seen[mt] {
				seen[mt] = true
				keep = append(keep, mt)
			}
		}
		if len(keep) == len(manifestTypes) {
			break
		}
	}
	if len(keep) == 0 {
		return manifestAccept
	}
	return strings.Join(keep, ", ")
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type manifestDoc struct {
	SchemaVersion int           `json:"schemaVersion"`
	MediaType     string        `json:"mediaType"`
	Config        *descriptor   `json:"config"`
	Layers        *[]descriptor `json:"layers"`
	Manifests     *[]descriptor `json:"manifests"`
}

// checkedManifest is a manifest that passed validateManifest.
type checkedManifest struct {
	mediaType string
	// refs are the sha256 digests it references (children of an index;
	// config and layers of an image manifest).
	refs []protocol.Digest
}

// topLevelKeys are the keys whose spelling matters: a case-folded variant
// ("Layers") would be read as the real one by some parsers and ignored by
// others.
var topLevelKeys = []string{"schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "artifactType", "annotations"}

// validateManifest checks a manifest's bytes: JSON object without duplicate
// or case-folded top-level keys, schemaVersion 2, not both an index and an
// image manifest (CVE-2021-41190), a known media type that equals
// contentType when both are present, at most maxEntries layers/manifests.
// contentType is the registry's Content-Type ("" when unknown).
func validateManifest(b []byte, contentType string, maxEntries int) (checkedManifest, error) {
	bad := func(format string, args ...any) (checkedManifest, error) {
		return checkedManifest{}, fmt.Errorf("%w: %s", ErrManifestInvalid, fmt.Sprintf(format, args...))
	}
	if err := checkTopLevelKeys(b); err != nil {
		return bad("%v", err)
	}
	var doc manifestDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return bad("not a JSON manifest")
	}
	if doc.SchemaVersion != 2 {
		return bad("schemaVersion %d (only 2 is served)", doc.SchemaVersion)
	}
	if doc.Layers != nil && doc.Manifests != nil {
		return bad("both layers and manifests: ambiguous between an image manifest and an index")
	}
	isIndex := doc.Manifests != nil
	if !isIndex && (doc.Config == nil || doc.Layers == nil) {
		return bad("neither an index (manifests) nor an image manifest (config and layers)")
	}
	ct := cleanMediaType(contentType)
	mt := doc.MediaType
	switch {
	case mt != "" && ct != "" && mt != ct:
		return bad("mediaType %q differs from Content-Type %q", clip(mt), clip(ct))
	case mt == "" && ct != "":
		mt = ct
	case mt == "" && isIndex:
		mt = ocispec.MediaTypeImageIndex
	case mt == "":
		mt = ocispec.MediaTypeImageManifest
	}
	wantIndex, known := manifestTypes[mt]
	if !known {
		return bad("unsupported media type %q", clip(mt))
	}
	if wantIndex != isIndex {
		return bad("media type %q does not match the document's structure", mt)
	}
	var descs []descriptor
	if isIndex {
		descs = *doc.Manifests
	} else {
		descs = append([]descriptor{*doc.Config}, *doc.Layers...)
	}
	if len(descs) > maxEntries+1 || (isIndex && len(descs) > maxEntries) {
		return bad("%d entries (at most %d)", len(descs), maxEntries)
	}
	out := checkedManifest{mediaType: mt}
	for _, d := range descs {
		if d.Size < 0 {
			return bad("negative descriptor size")
		}
		if dg, err := protocol.ParseDigest(d.Digest); err == nil {
			out.refs = append(out.refs, dg)
		}
	}
	return out, nil
}

// checkTopLevelKeys refuses a document that is not a JSON object, repeats a
// top-level key, or spells a known key with different case.
func checkTopLevelKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("malformed JSON")
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("malformed JSON")
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q", clip(key))
		}
		seen[key] = true
		for _, k := range topLevelKeys {
			if key != k && strings.EqualFold(key, k) {
				return fmt.Errorf("key %q differs from %q only in case", clip(key), k)
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return errors.New("malformed JSON")
		}
	}
	if _, err := dec.Token(); err != nil { // closing brace
		return errors.New("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
