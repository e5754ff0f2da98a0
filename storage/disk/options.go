package disk

import (
	"io"
	"log/slog"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
)

// Defaults for the options below.
const (
	// DefaultGCInterval is how often Run collects garbage.
	DefaultGCInterval = 5 * time.Minute
	// DefaultLockTimeout bounds the wait for another process's lock on meta.db.
	DefaultLockTimeout = time.Second
	// DefaultFlushDelay is the longest a verified piece waits before it is
	// recorded durably.
	DefaultFlushDelay = 100 * time.Millisecond
	// DefaultFlushPieces triggers a flush as soon as this many verified pieces
	// are waiting.
	DefaultFlushPieces = 64
	// accessFlushInterval is how often changed access times are persisted.
	accessFlushInterval = 2 * time.Second
	// lowWatermarkPercent is the share of the quota a GC pass trims usage to.
	lowWatermarkPercent = 90
)

// Option configures a Store.
type Option func(*options)

type options struct {
	log           *slog.Logger
	quota         int64
	taskTTL       time.Duration
	incompleteTTL time.Duration
	gcInterval    time.Duration
	lockTimeout   time.Duration
	flushDelay    time.Duration
	flushPieces   int
	evict         func(protocol.TaskID)
	now           func() time.Time
}

func defaultOptions() options {
	return options{
		log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		gcInterval:  DefaultGCInterval,
		lockTimeout: DefaultLockTimeout,
		flushDelay:  DefaultFlushDelay,
		flushPieces: DefaultFlushPieces,
		now:         time.Now,
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithQuota limits the sum of the content lengths of all tasks; 0 (the
// default) means unlimited.
func WithQuota(bytes int64) Option {
	return func(o *options) { o.quota = max(bytes, 0) }
}

// WithTaskTTL evicts complete tasks not accessed for d; 0 (the default)
// keeps them until the quota needs their space.
func WithTaskTTL(d time.Duration) Option {
	return func(o *options) { o.taskTTL = max(d, 0) }
}

// WithIncompleteTTL evicts incomplete tasks without open handles not
// accessed for d; 0 (the default) keeps them until the quota needs their
// space.
func WithIncompleteTTL(d time.Duration) Option {
	return func(o *options) { o.incompleteTTL = max(d, 0) }
}

// WithGCInterval sets how often Run collects garbage; 0 selects
// DefaultGCInterval.
func WithGCInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.gcInterval = d
		}
	}
}

// WithLockTimeout bounds the wait for the data directory's lock; 0 selects
// DefaultLockTimeout.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lockTimeout = d
		}
	}
}

// WithFlushDelay sets the longest a verified piece waits before it is
// recorded durably; 0 selects DefaultFlushDelay.
func WithFlushDelay(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.flushDelay = d
		}
	}
}

// WithEvictHook is called (outside every lock) with the ID of each task GC
// evicts, so the node can withdraw its provider record.
func WithEvictHook(f func(protocol.TaskID)) Option {
	return func(o *options) { o.evict = f }
}

// WithClock replaces time.Now for timestamps and TTLs (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}
