package api

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestOpenAPICoversRoutes keeps docs/openapi.yaml in step with the router.
func TestOpenAPICoversRoutes(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	seen := 0
	for _, rt := range f.srv.Routes() {
		p := strings.TrimPrefix(rt.Path, v1)
		ops, ok := doc.Paths[p]
		if !ok {
			t.Errorf("%s %s missing from openapi.yaml", rt.Method, p)
			continue
		}
		if _, ok := ops[strings.ToLower(rt.Method)]; !ok {
			t.Errorf("%s %s missing from openapi.yaml", rt.Method, p)
		}
		seen++
	}
	n := 0
	for _, ops := range doc.Paths {
		for k := range ops {
			if k != "parameters" {
				n++
			}
		}
	}
	if n != seen {
		t.Errorf("openapi.yaml describes %d operations, the router has %d", n, seen)
	}
}
