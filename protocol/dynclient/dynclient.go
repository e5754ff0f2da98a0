// Package dynclient is the node and scheduler side of the manager's dynamic
// config: it pulls its answer over HTTPS with a personal access token,
// periodically and whenever a push on the config gossipsub topic announces a
// new version, keeps the last good answer in memory and on disk, and keeps
// running on the cached answer while the manager is unreachable.
//
// A push carries only a version hint, never config: whoever can publish on
// the topic can at most cause an early (rate-limited) pull over the
// authenticated HTTP channel.
package dynclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/dragonfly-p2p/df/protocol"
)

// Topic is the gossipsub topic on which the manager announces config versions.
const Topic = protocol.Prefix + "/config/1.0.0"

// Announcement is the message published on Topic.
type Announcement struct {
	Version string `json:"version"`
}

// MaxResponseBytes bounds a config answer.
const MaxResponseBytes = 4 << 20

// ErrNoConfig is returned by Current before any config was loaded.
var ErrNoConfig = errors.New("dynclient: no config yet")

// Client keeps a config of type T fresh.
type Client[T any] struct {
	url       string
	token     string
	cachePath string
	hc        *http.Client
	interval  time.Duration
	minGap    time.Duration
	log       *slog.Logger
	trigger   chan struct{}

	mu       sync.RWMutex
	cur      T
	have     bool
	fromDisk bool
	lastPull time.Time
	onUpdate []func(T)
}

// Option configures a Client.
type Option func(*options)

type options struct {
	hc       *http.Client
	interval time.Duration
	minGap   time.Duration
	log      *slog.Logger
}

// WithHTTPClient sets the HTTP client (TLS config, timeouts).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.hc = c } }

// WithInterval sets the periodic pull interval (the fallback when pushes are lost).
func WithInterval(d time.Duration) Option { return func(o *options) { o.interval = d } }

// WithMinGap sets the minimum time between two pulls triggered by pushes.
func WithMinGap(d time.Duration) Option { return func(o *options) { o.minGap = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// New returns a client pulling url (the full dynconfig URL including its
// query) with token and caching the answer at cachePath.
func New[T any](url, token, cachePath string, opts ...Option) *Client[T] {
	o := options{hc: &http.Client{Timeout: 10 * time.Second}, interval: time.Minute, minGap: 100 * time.Millisecond, log: slog.New(slog.DiscardHandler)}
	for _, f := range opts {
		f(&o)
	}
	return &Client[T]{url: url, token: token, cachePath: cachePath, hc: o.hc, interval: o.interval, minGap: o.minGap, log: o.log, trigger: make(chan struct{}, 1)}
}

// OnUpdate registers fn, called with every newly loaded config.
func (c *Client[T]) OnUpdate(fn func(T)) {
	c.mu.Lock()
	c.onUpdate = append(c.onUpdate, fn)
	c.mu.Unlock()
}

// Current returns the last good config and whether it came from the disk
// cache (the manager has not answered since start).
func (c *Client[T]) Current() (cfg T, fromCache bool, err error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.have {
		return cfg, false, ErrNoConfig
	}
	return c.cur, c.fromDisk, nil
}

// LoadCache loads the disk cache, if any.
func (c *Client[T]) LoadCache() error {
	raw, err := os.ReadFile(c.cachePath)
	if err != nil {
		return err
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("dynclient: cache %s: %w", c.cachePath, err)
	}
	c.set(v, true)
	return nil
}

func (c *Client[T]) set(v T, fromDisk bool) {
	c.mu.Lock()
	c.cur, c.have, c.fromDisk = v, true, fromDisk
	fns := append([]func(T){}, c.onUpdate...)
	c.mu.Unlock()
	for _, fn := range fns {
		fn(v)
	}
}

// Pull fetches the config once; on success it replaces the current config
// and the disk cache. On failure the current config is kept.
func (c *Client[T]) Pull(ctx context.Context) error {
	c.mu.Lock()
	c.lastPull = time.Now()
	c.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("dynclient: pull: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("dynclient: pull: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("dynclient: pull: manager answered %s", resp.Status)
	}
	if len(raw) > MaxResponseBytes {
		return fmt.Errorf("dynclient: pull: answer larger than %d bytes", MaxResponseBytes)
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("dynclient: pull: decode: %w", err)
	}
	if err := writeAtomic(c.cachePath, raw); err != nil {
		c.log.Warn("dynclient: cannot write cache", "path", c.cachePath, "err", err)
	}
	c.set(v, false)
	return nil
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".dynconfig-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Trigger asks for an early pull (a push announced a new version).
func (c *Client[T]) Trigger() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Run loads the cache, pulls at once, then pulls every interval and on
// Trigger until ctx ends. Pull failures are logged, never fatal: the client
// keeps serving the last good config.
func (c *Client[T]) Run(ctx context.Context) error {
	if err := c.LoadCache(); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("dynclient: ignoring unreadable cache", "err", err)
	}
	if err := c.Pull(ctx); err != nil {
		c.log.Warn("dynclient: manager unreachable, running on cached config", "err", err)
	}
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.trigger:
			c.mu.RLock()
			wait := c.minGap - time.Since(c.lastPull)
			c.mu.RUnlock()
			if wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		}
		if err := c.Pull(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("dynclient: pull failed, keeping last good config", "err", err)
		}
	}
}

// Follow reads announcements from sub and triggers a pull for each one whose
// version differs from the current one (version(cur) extracts it). It
// returns when ctx ends or the subscription is cancelled.
func (c *Client[T]) Follow(ctx context.Context, sub *pubsub.Subscription, version func(T) string) error {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if len(msg.Data) > 1024 {
			continue
		}
		var a Announcement
		if json.Unmarshal(msg.Data, &a) != nil || a.Version == "" {
			continue
		}
		if cur, _, err := c.Current(); err == nil && version(cur) == a.Version {
			continue
		}
		c.Trigger()
	}
}

// Publish announces version on t (the manager side of the push).
func Publish(ctx context.Context, t *pubsub.Topic, version string) error {
	raw, err := json.Marshal(Announcement{Version: version})
	if err != nil {
		return err
	}
	return t.Publish(ctx, raw)
}
