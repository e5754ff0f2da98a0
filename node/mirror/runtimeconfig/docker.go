package runtimeconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
)

// DockerDaemonJSON merges the mirror into an existing daemon.json (nil or
// empty: a new one): the mirror becomes the first of "registry-mirrors",
// and a plain-HTTP mirror's host:port is added to "insecure-registries".
// Other keys are kept. Docker applies registry-mirrors to Docker Hub only.
func DockerDaemonJSON(existing []byte, mirror string) ([]byte, error) {
	if mirror == "" {
		mirror = DefaultMirror
	}
	m, err := checkURL("mirror", mirror)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{}
	if len(bytes.TrimSpace(existing)) > 0 {
		if err := json.Unmarshal(existing, &cfg); err != nil {
			return nil, fmt.Errorf("%w: daemon.json is not a JSON object: %w", ErrInvalid, err)
		}
	}
	mirrors, err := stringList(cfg, "registry-mirrors")
	if err != nil {
		return nil, err
	}
	cfg["registry-mirrors"] = append([]string{m}, without(mirrors, m)...)
	u, _ := url.Parse(m)
	if u.Scheme == "http" {
		insecure, err := stringList(cfg, "insecure-registries")
		if err != nil {
			return nil, err
		}
		cfg["insecure-registries"] = append(without(insecure, u.Host), u.Host)
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// RemoveDockerMirror takes the mirror out of a daemon.json (and its
// insecure-registries entry).
func RemoveDockerMirror(existing []byte, mirror string) ([]byte, error) {
	if mirror == "" {
		mirror = DefaultMirror
	}
	m, err := checkURL("mirror", mirror)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{}
	if err := json.Unmarshal(existing, &cfg); err != nil {
		return nil, fmt.Errorf("%w: daemon.json is not a JSON object: %w", ErrInvalid, err)
	}
	for key, drop := range map[string]string{"registry-mirrors": m, "insecure-registries": mustHost(m)} {
		list, err := stringList(cfg, key)
		if err != nil {
			return nil, err
		}
		if _, ok := cfg[key]; !ok {
			continue
		}
		if rest := without(list, drop); len(rest) > 0 {
			cfg[key] = rest
		} else {
			delete(cfg, key)
		}
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func mustHost(m string) string {
	u, _ := url.Parse(m)
	return u.Host
}

func stringList(cfg map[string]any, key string) ([]string, error) {
	v, ok := cfg[key]
	if !ok || v == nil {
		return nil, nil
	}
	raw, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: daemon.json %q is not a list", ErrInvalid, key)
	}
	out := make([]string, 0, len(raw))
	for _, e := range raw {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%w: daemon.json %q holds a non-string", ErrInvalid, key)
		}
		out = append(out, s)
	}
	return out, nil
}

func without(list []string, v string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s != v && s != v+"/" {
			out = append(out, s)
		}
	}
	return out
}
