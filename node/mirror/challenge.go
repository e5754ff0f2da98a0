package mirror

import (
	"strings"
)

// Limits on WWW-Authenticate parsing (the header comes from an upstream we
// do not fully trust).
const (
	maxChallengeHeader = 4096
	maxChallengeValues = 8
	maxChallenges      = 8
	maxChallengeParams = 16
)

// challenge is one parsed authentication challenge (RFC 9110 §11.6.1).
type challenge struct {
	scheme string            // lowercase: "bearer", "basic", …
	params map[string]string // lowercase keys
}

// parseChallenges parses WWW-Authenticate header values. Malformed parts
// are skipped; it never fails and its work is bounded.
func parseChallenges(values []string) []challenge {
	var out []challenge
	for i, v := range values {
		if i == maxChallengeValues {
			break
		}
		if len(v) > maxChallengeHeader {
			continue
		}
		out = append(out, parseChallengeValue(v)...)
		if len(out) >= maxChallenges {
			return out[:maxChallenges]
		}
	}
	return out
}

func parseChallengeValue(s string) []challenge {
	p := &lexer{s: s}
	var out []challenge
	for !p.end() && len(out) < maxChallenges {
		start := p.pos
		p.skip(" \t,")
		scheme := p.token()
		if scheme == "" {
			p.skipPast(',') // malformed: resynchronise on the next comma
			if p.pos == start {
				p.pos++
			}
			continue
		}
		ch := challenge{scheme: strings.ToLower(scheme), params: make(map[string]string)}
		p.skip(" \t")
		for !p.end() && len(ch.params) < maxChallengeParams {
			save := p.pos
			key := p.token()
			p.skip(" \t")
			if key == "" || p.peek() != '=' {
				p.pos = save // the next challenge (or a token68 we ignore)
				if key == "" {
					p.skipPast(',')
				}
				break
			}
			p.pos++ // '='
			p.skip(" \t")
			var val string
			var ok bool
			if p.peek() == '"' {
				val, ok = p.quoted()
			} else {
				val = p.token()
				ok = val != ""
			}
			if !ok {
				p.skipPast(',')
				break
			}
			k := strings.ToLower(key)
			if _, dup := ch.params[k]; !dup {
				ch.params[k] = val
			}
			p.skip(" \t")
			if p.peek() != ',' {
				break
			}
			p.pos++
			p.skip(" \t")
		}
		out = append(out, ch)
		if p.pos == start {
			p.pos++ // always make progress
		}
	}
	return out
}

// pick returns the Bearer challenge if any, else the Basic one.
func pick(chs []challenge) (challenge, bool) {
	for _, c := range chs {
		if c.scheme == "bearer" {
			return c, true
		}
	}
	for _, c := range chs {
		if c.scheme == "basic" {
			return c, true
		}
	}
	return challenge{}, false
}

// String re-serialises the challenge for a client (only known, printable
// parameters: realm, service, scope, error).
func (c challenge) String() string {
	var b strings.Builder
	switch c.scheme {
	case "bearer":
		b.WriteString("Bearer")
	case "basic":
		b.WriteString("Basic")
	default:
		return ""
	}
	first := true
	for _, k := range []string{"realm", "service", "scope", "error"} {
		v, ok := c.params[k]
		if !ok || !printable(v) {
			continue
		}
		if first {
			b.WriteByte(' ')
			first = false
		} else {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
		b.WriteByte('"')
	}
	return b.String()
}

// printable: visible ASCII and spaces only (safe in a header).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

type lexer struct {
	s   string
	pos int
}

func (p *lexer) end() bool { return p.pos >= len(p.s) }

func (p *lexer) peek() byte {
	if p.end() {
		return 0
	}
	return p.s[p.pos]
}

func (p *lexer) skip(chars string) {
	for !p.end() && strings.IndexByte(chars, p.s[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *lexer) skipPast(c byte) {
	for !p.end() && p.s[p.pos] != c {
		p.pos++
	}
	if !p.end() {
		p.pos++
	}
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *lexer) token() string {
	start := p.pos
	for !p.end() && isTchar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// quoted reads a quoted-string; false when unterminated or holding a
// control character.
func (p *lexer) quoted() (string, bool) {
	p.pos++ // opening quote
	var b strings.Builder
	for !p.end() {
		c := p.s[p.pos]
		p.pos++
		switch {
		case c == '"':
			return b.String(), true
		case c == '\\':
			if p.end() {
				return "", false
			}
			c = p.s[p.pos]
			p.pos++
		}
		if c < 0x20 && c != '\t' || c == 0x7f {
			return "", false
		}
		b.WriteByte(c)
	}
	return "", false
}
