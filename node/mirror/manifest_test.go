package mirror

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const (
	testDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	ociIndex   = "application/vnd.oci.image.index.v1+json"
	ociMan     = "application/vnd.oci.image.manifest.v1+json"
)

func imageManifest(mediaType string, layers int) string {
	var ls []string
	for range layers {
		ls = append(ls, `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"`+testDigest+`","size":1}`)
	}
	mt := ""
	if mediaType != "" {
		mt = `"mediaType":"` + mediaType + `",`
	}
	return `{"schemaVersion":2,` + mt + `"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + testDigest + `","size":1},"layers":[` + strings.Join(ls, ",") + `]}`
}

func TestValidateManifest(t *testing.T) {
	index := `{"schemaVersion":2,"mediaType":"` + ociIndex + `","manifests":[{"mediaType":"` + ociMan + `","digest":"` + testDigest + `","size":1}]}`
	for _, tc := range []struct {
		name, body, ct string
		wantType       string
		ok             bool
	}{
		{"oci manifest", imageManifest(ociMan, 2), "", ociMan, true},
		{"oci manifest, matching Content-Type", imageManifest(ociMan, 2), ociMan + "; charset=utf-8", ociMan, true},
		{"docker manifest", imageManifest(mediaTypeDockerManifest, 1), mediaTypeDockerManifest, mediaTypeDockerManifest, true},
		{"no mediaType: from Content-Type", imageManifest("", 1), mediaTypeDockerManifest, mediaTypeDockerManifest, true},
		{"no mediaType, no Content-Type: OCI manifest", imageManifest("", 1), "", ociMan, true},
		{"index", index, ociIndex, ociIndex, true},
		{"index without mediaType", strings.Replace(index, `"mediaType":"`+ociIndex+`",`, "", 1), "", ociIndex, true},
		{"mediaType differs from Content-Type (H7)", imageManifest(ociMan, 1), mediaTypeDockerManifest, "", false},
		{"index type on a manifest", imageManifest(ociIndex, 1), "", "", false},
		{"manifest type on an index", strings.Replace(index, ociIndex, ociMan, 1), "", "", false},
		{"both layers and manifests (H7)", strings.Replace(imageManifest(ociMan, 1), `"layers"`, `"manifests":[],"layers"`, 1), "", "", false},
		{"duplicate key", strings.Replace(imageManifest(ociMan, 1), `"schemaVersion":2,`, `"schemaVersion":2,"schemaVersion":2,`, 1), "", "", false},
		{"case-folded key", strings.Replace(imageManifest(ociMan, 1), `"layers"`, `"Layers"`, 1), "", "", false},
		{"schema 1", strings.Replace(imageManifest(ociMan, 1), `"schemaVersion":2`, `"schemaVersion":1`, 1), "", "", false},
		{"unknown media type", imageManifest("application/vnd.example+json", 1), "", "", false},
		{"no config", `{"schemaVersion":2,"layers":[]}`, "", "", false},
		{"not an object", `[]`, "", "", false},
		{"trailing data", imageManifest(ociMan, 1) + `{}`, "", "", false},
		{"not JSON", `{"schemaVersion":`, "", "", false},
		{"negative size", strings.Replace(imageManifest(ociMan, 1), `"size":1}]`, `"size":-1}]`, 1), "", "", false},
		{"too many layers (H8)", imageManifest(ociMan, 11), "", "", false},
		{"at the layer cap", imageManifest(ociMan, 10), "", ociMan, true},
	} {
		cm, err := validateManifest([]byte(tc.body), tc.ct, 10)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if err != nil && !errors.Is(err, ErrManifestInvalid) {
			t.Errorf("%s: %v is not ErrManifestInvalid", tc.name, err)
		}
		if tc.ok && cm.mediaType != tc.wantType {
			t.Errorf("%s: media type %q, want %q", tc.name, cm.mediaType, tc.wantType)
		}
	}
	cm, err := validateManifest([]byte(imageManifest(ociMan, 3)), "", 10)
	if err != nil || len(cm.refs) != 4 {
		t.Fatalf("refs: %d %v", len(cm.refs), err)
	}
}

func TestAcceptFor(t *testing.T) {
	if got := acceptFor(nil); got != manifestAccept {
		t.Fatalf("no Accept: %q", got)
	}
	if got := acceptFor([]string{"text/html", "application/vnd.oci.image.index.v1+json;q=0.5, application/vnd.oci.image.index.v1+json"}); got != ociIndex {
		t.Fatalf("got %q", got)
	}
	if got := acceptFor([]string{"*/*"}); got != manifestAccept {
		t.Fatalf("*/*: %q", got)
	}
}

func FuzzValidateManifest(f *testing.F) {
	f.Add([]byte(imageManifest(ociMan, 1)), "")
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`), ociIndex)
	f.Add([]byte(`{"a":1,"A":2}`), "")
	f.Fuzz(func(t *testing.T, b []byte, ct string) {
		cm, err := validateManifest(b, ct, 100)
		if err != nil {
			return
		}
		if _, ok := manifestTypes[cm.mediaType]; !ok {
			t.Fatalf("accepted unknown media type %q", cm.mediaType)
		}
		if len(cm.refs) > 101 {
			t.Fatal(fmt.Sprint("too many refs: ", len(cm.refs)))
		}
	})
}
