// Package jobs is the manager's durable job queue and its job types:
// preheat (a list of URLs, or an image reference resolved to its manifests
// and blobs, multi-arch aware, with registry credentials), delete-task and
// get-task. Jobs live in the store; a manager killed mid-job finds the job
// "running" at the next start, puts it back in the queue and resumes it,
// skipping the blobs that were already done, until MaxAttempts is reached
// and the job fails cleanly.
//
// Execution is delegated to an Executor: the component that reaches the
// seed peers of the chosen clusters and has them fetch a URL (or delete or
// look up a task). Preheat URLs are checked against the SSRF Guard at submit
// time and every connection the manager itself makes (image resolution) is
// guarded at dial time, redirects included.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dragonfly-p2p/df/manager/store"
)

// ErrInvalidArgs is wrapped by every refusal of a job's arguments.
var ErrInvalidArgs = errors.New("jobs: invalid arguments")

// MaxAttempts bounds how often a job is started (restarts included).
const MaxAttempts = 3

// Bounds on arguments.
const (
	MaxURLs      = 1000
	MaxPlatforms = 16
)

// PreheatArgs are the arguments of a preheat job: either URLs or Image.
type PreheatArgs struct {
	URLs      []string          `json:"urls,omitempty"`
	Image     string            `json:"image,omitempty"`     // e.g. registry.example.com/app:1.0
	Platforms []string          `json:"platforms,omitempty"` // os/arch[/variant]; empty = all
	Username  string            `json:"username,omitempty"`
	Password  string            `json:"password,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
}

// TaskArgs are the arguments of delete-task and get-task jobs.
type TaskArgs struct {
	TaskID string `json:"task_id,omitempty"`
	URL    string `json:"url,omitempty"`
}

// Blob is one thing a seed peer is asked to fetch.
type Blob struct {
	URL     string
	Digest  string
	Size    int64
	Headers map[string]string
}

// Executor carries jobs out on the cluster's seed peers.
type Executor interface {
	// Preheat has a seed peer of cluster fetch b; progress reports bytes done.
	Preheat(ctx context.Context, cluster string, b Blob, progress func(done int64)) error
	// DeleteTask removes a task from the cluster's peers.
	DeleteTask(ctx context.Context, cluster string, a TaskArgs) error
	// GetTask reports where a task is cached.
	GetTask(ctx context.Context, cluster string, a TaskArgs) (any, error)
}

// Resolver turns a preheat's arguments into blobs (image resolution).
type Resolver interface {
	Resolve(ctx context.Context, a PreheatArgs) ([]Blob, error)
}

// Queue is the durable job queue and its runner.
type Queue struct {
	st      *store.Store
	exec    Executor
	res     Resolver
	guard   *Guard
	log     *slog.Logger
	poll    time.Duration
	workers int
	blobs   int
	wake    chan struct{}
	mu      sync.Mutex
	active  map[uint64]bool
}

// Option configures a Queue.
type Option func(*Queue)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(q *Queue) { q.log = l } }

// WithPoll sets how often the queue looks for pending jobs without a wake-up.
func WithPoll(d time.Duration) Option { return func(q *Queue) { q.poll = d } }

// WithBlobConcurrency sets how many blobs of one preheat job run at once (default 4).
func WithBlobConcurrency(n int) Option {
	return func(q *Queue) {
		if n > 0 {
			q.blobs = n
		}
	}
}

// WithWorkers sets how many jobs run at once.
func WithWorkers(n int) Option { return func(q *Queue) { q.workers = n } }

// New returns a queue over st. res may be nil when only URL preheats are wanted.
func New(st *store.Store, exec Executor, res Resolver, guard *Guard, opts ...Option) *Queue {
	q := &Queue{st: st, exec: exec, res: res, guard: guard, log: slog.New(slog.DiscardHandler), poll: time.Second,
		workers: 2, blobs: 4, wake: make(chan struct{}, 1), active: map[uint64]bool{}}
	for _, o := range opts {
		o(q)
	}
	return q
}

func decodeStrict(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return fmt.Errorf("%w: args missing", ErrInvalidArgs)
	}
	dec := json.NewDecoder(bytesReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgs, err)
	}
	return nil
}

// Validate checks a job's arguments (including the SSRF check of URLs).
func (q *Queue) Validate(ctx context.Context, typ string, args json.RawMessage) error {
	switch typ {
	case store.JobPreheat:
		var a PreheatArgs
		if err := decodeStrict(args, &a); err != nil {
			return err
		}
		if (len(a.URLs) == 0) == (a.Image == "") {
			return fmt.Errorf("%w: give either urls or image", ErrInvalidArgs)
		}
		if len(a.URLs) > MaxURLs || len(a.Platforms) > MaxPlatforms || len(a.Headers) > 32 {
			return fmt.Errorf("%w: too many urls, platforms or headers", ErrInvalidArgs)
		}
		for _, u := range a.URLs {
			if err := q.guard.CheckURL(ctx, u); err != nil {
				return err
			}
		}
		if a.Image != "" {
			if q.res == nil {
				return fmt.Errorf("%w: image preheat not available", ErrInvalidArgs)
			}
			if err := checkImageRef(ctx, q.guard, a.Image); err != nil {
				return err
			}
		}
		return nil
	case store.JobDeleteTask, store.JobGetTask:
		var a TaskArgs
		if err := decodeStrict(args, &a); err != nil {
			return err
		}
		if (a.TaskID == "") == (a.URL == "") || len(a.TaskID) > 256 || len(a.URL) > 4096 {
			return fmt.Errorf("%w: give either task_id or url", ErrInvalidArgs)
		}
		return nil
	default:
		return fmt.Errorf("%w: unknown job type %q", ErrInvalidArgs, typ)
	}
}

// Submit validates and queues a job.
func (q *Queue) Submit(ctx context.Context, typ string, args json.RawMessage, clusters []string, by string) (store.Job, error) {
	if err := q.Validate(ctx, typ, args); err != nil {
		return store.Job{}, err
	}
	if len(clusters) == 0 {
		cs, err := q.st.Clusters()
		if err != nil {
			return store.Job{}, err
		}
		for _, c := range cs {
			clusters = append(clusters, c.Name)
		}
	}
	if len(clusters) == 0 {
		return store.Job{}, fmt.Errorf("%w: no scheduler cluster exists", ErrInvalidArgs)
	}
	j, err := q.st.CreateJob(store.Job{Type: typ, Args: args, Clusters: clusters, CreatedBy: by})
	if err != nil {
		return j, err
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return j, nil
}

// Recover puts jobs left "running" by a previous process back in the queue,
// or fails them when they have used up their attempts. Run calls it first.
func (q *Queue) Recover() error {
	running, err := q.st.Jobs(func(j *store.Job) bool { return j.State == store.JobRunning })
	if err != nil {
		return err
	}
	for _, j := range running {
		_, err := q.st.UpdateJob(j.ID, func(j *store.Job) error {
			if j.Attempts >= MaxAttempts {
				j.State, j.Error = store.JobFailed, fmt.Sprintf("interrupted %d times (manager restarts)", j.Attempts)
			} else {
				j.State = store.JobPending
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Run recovers interrupted jobs, then runs pending jobs until ctx ends.
func (q *Queue) Run(ctx context.Context) error {
	if err := q.Recover(); err != nil {
		return err
	}
	sem := make(chan struct{}, q.workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(q.poll)
	defer t.Stop()
	for {
		pending, err := q.st.Jobs(func(j *store.Job) bool { return j.State == store.JobPending })
		if err != nil {
			q.log.Error("jobs: list", "err", err)
		}
		slices.Reverse(pending) // oldest first
		for _, j := range pending {
			q.mu.Lock()
			busy := q.active[j.ID]
			q.mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				continue
			}
			q.mu.Lock()
			q.active[j.ID] = true
			q.mu.Unlock()
			wg.Go(func() {
				defer func() {
					q.mu.Lock()
					delete(q.active, j.ID)
					q.mu.Unlock()
					<-sem
					select {
					case q.wake <- struct{}{}:
					default:
					}
				}()
				q.run(ctx, j.ID)
			})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-q.wake:
		}
	}
}

func (q *Queue) run(ctx context.Context, id uint64) {
	j, err := q.st.UpdateJob(id, func(j *store.Job) error {
		if j.State != store.JobPending {
			return errSkip
		}
		j.State, j.Error = store.JobRunning, ""
		j.Attempts++
		return nil
	})
	if err != nil {
		return
	}
	var res []byte
	err = q.execute(ctx, j, &res)
	if ctx.Err() != nil {
		return // shutting down: stays "running"; Recover resumes it at the next start
	}
	_, uerr := q.st.UpdateJob(id, func(j *store.Job) error {
		if err != nil {
			j.State, j.Error = store.JobFailed, err.Error()
		} else {
			j.State, j.Result = store.JobSucceeded, res
		}
		return nil
	})
	if uerr != nil {
		q.log.Error("jobs: update", "job", id, "err", uerr)
	}
}

var errSkip = errors.New("skip")

func (q *Queue) execute(ctx context.Context, j store.Job, res *[]byte) error {
	switch j.Type {
	case store.JobPreheat:
		return q.preheat(ctx, j)
	case store.JobDeleteTask, store.JobGetTask:
		var a TaskArgs
		if err := decodeStrict(j.Args, &a); err != nil {
			return err
		}
		out := map[string]any{}
		var errs []error
		for _, c := range j.Clusters {
			if j.Type == store.JobDeleteTask {
				if err := q.exec.DeleteTask(ctx, c, a); err != nil {
					errs = append(errs, fmt.Errorf("cluster %s: %w", c, err))
				}
				continue
			}
			r, err := q.exec.GetTask(ctx, c, a)
			if err != nil {
				errs = append(errs, fmt.Errorf("cluster %s: %w", c, err))
				continue
			}
			out[c] = r
		}
		if j.Type == store.JobGetTask {
			raw, err := json.Marshal(out)
			if err != nil {
				return err
			}
			*res = raw
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%w: unknown job type %q", ErrInvalidArgs, j.Type)
}

func (q *Queue) preheat(ctx context.Context, j store.Job) error {
	var a PreheatArgs
	if err := decodeStrict(j.Args, &a); err != nil {
		return err
	}
	// Resolve once and persist the blob list, so a resumed job does the same work.
	if len(j.Progress) == 0 {
		var blobs []Blob
		if a.Image != "" {
			var err error
			if blobs, err = q.res.Resolve(ctx, a); err != nil {
				return fmt.Errorf("resolve %s: %w", a.Image, err)
			}
		} else {
			for _, u := range a.URLs {
				blobs = append(blobs, Blob{URL: u})
			}
		}
		var prog []store.BlobProgress
		for _, c := range j.Clusters {
			for _, b := range blobs {
				prog = append(prog, store.BlobProgress{Cluster: c, URL: b.URL, Digest: b.Digest, Size: b.Size, State: store.JobPending})
			}
		}
		var err error
		if j, err = q.st.UpdateJob(j.ID, func(x *store.Job) error { x.Progress = prog; return nil }); err != nil {
			return err
		}
	}
	// Blobs are preheated blobConcurrency at a time (the seed peer bounds
	// its own downloads too); progress entries are updated by index.
	var failed atomic.Int32
	var wg sync.WaitGroup
	sem := make(chan struct{}, q.blobs)
	for i, p := range j.Progress {
		if p.State == store.JobSucceeded {
			continue // done before a restart
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := q.preheatBlob(ctx, j.ID, i, p, a); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d blobs failed", n, len(j.Progress))
	}
	return nil
}

// preheatBlob runs one blob of a preheat job and records its progress;
// the error is the blob's failure (already recorded).
func (q *Queue) preheatBlob(ctx context.Context, id uint64, i int, p store.BlobProgress, a PreheatArgs) error {
	set := func(fn func(*store.BlobProgress)) {
		if _, err := q.st.UpdateJob(id, func(x *store.Job) error {
			if i < len(x.Progress) {
				fn(&x.Progress[i])
			}
			return nil
		}); err != nil {
			q.log.Error("jobs: progress", "job", id, "err", err)
		}
	}
	set(func(b *store.BlobProgress) { b.State, b.Error = store.JobRunning, "" })
	headers, err := q.blobHeaders(ctx, a)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		set(func(b *store.BlobProgress) { b.State, b.Error = store.JobFailed, err.Error() })
		return err
	}
	var last time.Time
	var latest atomic.Int64 // the final count is kept even when the throttle skipped it
	err = q.exec.Preheat(ctx, p.Cluster, Blob{URL: p.URL, Digest: p.Digest, Size: p.Size, Headers: headers}, func(done int64) {
		latest.Store(done)
		if time.Since(last) > 200*time.Millisecond {
			last = time.Now()
			set(func(b *store.BlobProgress) { b.Done = done })
		}
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err() // shutting down: the blob stays "running" and is redone after a restart
	}
	if err != nil {
		set(func(b *store.BlobProgress) { b.State, b.Error = store.JobFailed, err.Error() })
		return err
	}
	set(func(b *store.BlobProgress) {
		b.State = store.JobSucceeded
		if b.Size > 0 {
			b.Done = b.Size
		} else {
			b.Done = latest.Load() // URL of unknown size: what was fetched
		}
	})
	return nil
}

// Authorizer is implemented by resolvers that can tell which Authorization
// header the image's registry accepts (ImageResolver does).
type Authorizer interface {
	Authorization(ctx context.Context, a PreheatArgs) (string, error)
}

// blobHeaders are the headers seed peers send with a blob request: the
// job's, plus for an image the registry's Authorization (fetched for each
// blob: tokens expire) unless the job sets one itself.
func (q *Queue) blobHeaders(ctx context.Context, a PreheatArgs) (map[string]string, error) {
	az, ok := q.res.(Authorizer)
	if a.Image == "" || !ok {
		return a.Headers, nil
	}
	for k := range a.Headers {
		if strings.EqualFold(k, "Authorization") {
			return a.Headers, nil
		}
	}
	v, err := az.Authorization(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("registry authorization for %s: %w", a.Image, err)
	}
	if v == "" {
		return a.Headers, nil
	}
	h := make(map[string]string, len(a.Headers)+1)
	for k, x := range a.Headers {
		h[k] = x
	}
	h["Authorization"] = v
	return h, nil
}

// Redacted replaces what must never leave the manager in a job's arguments
// (the registry password, header values) with "[redacted]": the API shows
// jobs to every reader, and the secrets are needed only by the executor.
func Redacted(typ string, args []byte) []byte {
	if typ != store.JobPreheat || len(args) == 0 {
		return args
	}
	var a PreheatArgs
	if json.Unmarshal(args, &a) != nil {
		return nil // unreadable arguments are not shown at all
	}
	if a.Password != "" {
		a.Password = redactedValue
	}
	for k := range a.Headers {
		a.Headers[k] = redactedValue
	}
	out, err := json.Marshal(a)
	if err != nil {
		return nil
	}
	return out
}

const redactedValue = "[redacted]"
