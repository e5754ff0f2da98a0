package service

import (
	"fmt"
	"regexp"
	"strings"
)

// AppRule is an application priority rule from the manager: downloads of
// the named application, or of a URL matching one of the patterns, get the
// priority (Dragonfly's LEVEL0–6) when their request names none.
type AppRule struct {
	Name     string
	Patterns []*regexp.Regexp
	Priority uint32
}

// Bounds on application rules (the manager enforces its own as well).
const (
	maxAppRules    = 1024
	maxAppPatterns = 64
	maxPatternLen  = 1024
)

// CompileAppRules checks and compiles rules: names, patterns that must
// compile, priorities 0..6 (0: the rule sets none). Rules are tried in
// order.
func CompileAppRules(names []string, patterns [][]string, priorities []int) ([]AppRule, error) {
	if len(names) != len(patterns) || len(names) != len(priorities) {
		return nil, fmt.Errorf("application rules: %d names, %d pattern lists, %d priorities", len(names), len(patterns), len(priorities))
	}
	if len(names) > maxAppRules {
		return nil, fmt.Errorf("application rules: %d, at most %d", len(names), maxAppRules)
	}
	out := make([]AppRule, 0, len(names))
	for i, name := range names {
		if priorities[i] < 0 || priorities[i] > 6 {
			return nil, fmt.Errorf("application %q: priority %d outside 0..6", name, priorities[i])
		}
		if len(patterns[i]) > maxAppPatterns {
			return nil, fmt.Errorf("application %q: %d URL patterns, at most %d", name, len(patterns[i]), maxAppPatterns)
		}
		r := AppRule{Name: name, Priority: uint32(priorities[i])}
		for _, p := range patterns[i] {
			if len(p) > maxPatternLen {
				return nil, fmt.Errorf("application %q: URL pattern of %d bytes, at most %d", name, len(p), maxPatternLen)
			}
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("application %q: URL pattern %q: %w", name, p, err)
			}
			r.Patterns = append(r.Patterns, re)
		}
		out = append(out, r)
	}
	return out, nil
}

// SetAppRules replaces the application rules (nil: none).
func (s *Service) SetAppRules(rules []AppRule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps = rules
}

// appPriority is the priority the rules give a download of app or url
// (0: no rule applies). A rule naming the application wins over URL
// patterns; the first matching rule counts.
func (s *Service) appPriority(app, url string) uint32 {
	if app != "" {
		for _, r := range s.apps {
			if r.Priority != 0 && strings.EqualFold(r.Name, app) {
				return r.Priority
			}
		}
	}
	if url == "" {
		return 0
	}
	for _, r := range s.apps {
		if r.Priority == 0 {
			continue
		}
		for _, re := range r.Patterns {
			if re.MatchString(url) {
				return r.Priority
			}
		}
	}
	return 0
}
