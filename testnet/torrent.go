package testnet

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // BitTorrent v1 piece hashes are SHA-1 by definition
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoTorrent is returned by RunTorrentSwarm when aria2c or opentracker
// is not installed (Debian: apt-get install aria2 opentracker).
var ErrNoTorrent = errors.New("bittorrent baseline: aria2c and opentracker are not both installed")

// TorrentAvailable reports whether the BitTorrent baseline can run.
func TorrentAvailable() error {
	for _, bin := range []string{"aria2c", "opentracker"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%w: %w", ErrNoTorrent, err)
		}
	}
	return nil
}

// RunTorrentSwarm is the BitTorrent baseline of a swarm: an opentracker
// on 127.0.0.1, one aria2c seeder holding the file (the origin, limited to
// spec.OriginUp) and spec.Nodes aria2c leechers started at once (or
// staggered), each limited to spec.Up and spec.Down by aria2's own overall
// rate limits (aria2 cannot use our userspace shaper; its limiter is the
// closest equivalent) and seeding after they finish. Completion is the
// time to aria2's "download complete" hook; every file is then checked
// byte for byte. OriginBytes is not measured (aria2 does not report it).
func RunTorrentSwarm(ctx context.Context, dir string, spec SwarmSpec) (SwarmResult, error) {
	res := SwarmResult{Spec: spec, Bound: spec.Bound()}
	if err := TorrentAvailable(); err != nil {
		return res, err
	}
	if spec.Nodes < 1 || spec.Size < 1 {
		return res, errors.New("torrent swarm: nodes and size must be positive")
	}
	pieceLen := int(spec.PieceLength)
	if pieceLen <= 0 {
		pieceLen = 1 << 20
	}
	data := Payload(int(spec.Size), uint64(spec.Size))
	want := sha256.Sum256(data)
	seedDir := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seedDir, 0o700); err != nil {
		return res, err
	}
	if err := os.WriteFile(filepath.Join(seedDir, "swarm.bin"), data, 0o600); err != nil {
		return res, err
	}
	infoHash := torrentInfoHash("swarm.bin", pieceLen, data)
	// Debian's opentracker serves whitelisted torrents only; it chroots to
	// its directory and reads the list as nobody.
	trackerDir := filepath.Join(dir, "tracker")
	if err := os.MkdirAll(trackerDir, 0o755); err != nil { //nolint:gosec // read by opentracker as nobody
		return res, err
	}
	if err := os.Chmod(trackerDir, 0o755); err != nil { //nolint:gosec // as above
		return res, err
	}
	if err := os.WriteFile(filepath.Join(trackerDir, "whitelist"), []byte(infoHash+"\n"), 0o644); err != nil { //nolint:gosec // as above
		return res, err
	}
	hook := filepath.Join(dir, "done.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\ntouch \"$3.done\"\n"), 0o700); err != nil { //nolint:gosec // an executable hook
		return res, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		procs []*proc
	)
	start := func(label, name string, args ...string) (*proc, error) {
		p, err := startProc(runCtx, dir, label, name, args...)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		procs = append(procs, p)
		mu.Unlock()
		return p, nil
	}
	cpu := func() time.Duration {
		var total time.Duration
		for _, p := range procs {
			total += p.cpu()
		}
		return total
	}
	defer func() {
		cancel()
		for _, p := range procs {
			<-p.done
		}
	}()
	// The tracker's port is chosen before it binds it, so another process
	// may take it first: try again on another port.
	var trackerPort int
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return res, err
		}
		tracker, err := start(fmt.Sprintf("opentracker-%d", attempt), "opentracker", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-d", trackerDir, "-w", "/whitelist")
		if err != nil {
			return res, err
		}
		err = waitListening(ctx, tracker, fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			trackerPort = port
			break
		}
		if !errors.Is(err, errExited) || attempt == 3 {
			return res, err
		}
	}
	torrent := filepath.Join(dir, "swarm.torrent")
	meta := torrentFile(fmt.Sprintf("http://127.0.0.1:%d/announce", trackerPort), "swarm.bin", pieceLen, data)
	if err := os.WriteFile(torrent, meta, 0o600); err != nil {
		return res, err
	}
	aria := func(dl string, up, down int64, extra ...string) (*proc, error) { // dl: a directory of dir
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args := []string{
			"--dir=" + dl, "--listen-port=" + strconv.Itoa(port), "--enable-dht=false", "--enable-peer-exchange=false",
			"--bt-enable-lpd=false", "--seed-ratio=0.0", "--file-allocation=none", "--summary-interval=0",
			"--console-log-level=error", "--quiet=true", "--bt-tracker-interval=2", "--bt-stop-timeout=0",
			"--on-bt-download-complete=" + hook, "--allow-overwrite=true", "--auto-file-renaming=false",
			"--max-overall-upload-limit=" + strconv.FormatInt(max(up, 0), 10),
			"--max-overall-download-limit=" + strconv.FormatInt(max(down, 0), 10),
		}
		return start("aria2c-"+filepath.Base(dl), "aria2c", append(append(args, extra...), torrent)...)
	}
	if _, err := aria(seedDir, spec.OriginUp, 0, "--check-integrity=true", "--bt-seed-unverified=false"); err != nil {
		return res, err
	}

	cpu0, t0 := cpuTime(), time.Now()
	res.Completion = make([]time.Duration, spec.Nodes)
	errs := make([]error, spec.Nodes)
	var wg sync.WaitGroup
	for i := range spec.Nodes {
		wg.Go(func() {
			if d := time.Duration(i) * spec.Stagger; d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					errs[i] = ctx.Err()
					return
				}
			}
			dl := filepath.Join(dir, fmt.Sprintf("host-%02d", i))
			if err := os.MkdirAll(dl, 0o700); err != nil {
				errs[i] = err
				return
			}
			begin := time.Now()
			leecher, err := aria(dl, spec.Up, spec.Down)
			if err != nil {
				errs[i] = err
				return
			}
			file := filepath.Join(dl, "swarm.bin")
			if err := waitFile(ctx, leecher, file+".done"); err != nil {
				errs[i] = fmt.Errorf("host %d: %w", i, err)
				return
			}
			res.Completion[i] = time.Since(begin)
			got, err := os.ReadFile(file)
			if err != nil || sha256.Sum256(got) != want {
				errs[i] = fmt.Errorf("host %d: content differs (%v)", i, err)
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	cancel()
	for _, p := range procs {
		<-p.done
	}
	// this process's CPU (polling, hashing) plus the aria2c and
	// opentracker processes', all of them waited for above
	res.CPU = cpuTime() - cpu0 + cpu()
	sorted := slices.Clone(res.Completion)
	slices.Sort(sorted)
	res.P50, res.P99, res.Last = sorted[len(sorted)/2], sorted[(len(sorted)*99)/100], sorted[len(sorted)-1]
	res.Efficiency = res.Bound.Seconds() / res.Last.Seconds()
	res.OriginBytes, res.OriginRatio = -1, -1
	return res, nil
}

// torrentFile encodes a single-file BitTorrent v1 metainfo file.
func torrentFile(announce, name string, pieceLen int, data []byte) []byte {
	return bencode(map[string]any{"announce": announce, "info": torrentInfo(name, pieceLen, data)})
}

// torrentInfoHash is the info hash, in hex, of torrentFile's content.
func torrentInfoHash(name string, pieceLen int, data []byte) string {
	hash := sha1.Sum(bencode(torrentInfo(name, pieceLen, data))) //nolint:gosec // BitTorrent v1
	return hex.EncodeToString(hash[:])
}

func torrentInfo(name string, pieceLen int, data []byte) map[string]any {
	var pieces bytes.Buffer
	for off := 0; off < len(data); off += pieceLen {
		sum := sha1.Sum(data[off:min(off+pieceLen, len(data))]) //nolint:gosec // BitTorrent v1
		pieces.Write(sum[:])
	}
	return map[string]any{"length": len(data), "name": name, "piece length": pieceLen, "pieces": pieces.String()}
}

// bencode encodes strings, ints and string-keyed maps (keys sorted, as the
// format requires).
func bencode(v any) []byte {
	var b bytes.Buffer
	var enc func(any)
	enc = func(v any) {
		switch v := v.(type) {
		case string:
			fmt.Fprintf(&b, "%d:%s", len(v), v)
		case int:
			fmt.Fprintf(&b, "i%de", v)
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			b.WriteByte('d')
			for _, k := range keys {
				enc(k)
				enc(v[k])
			}
			b.WriteByte('e')
		default:
			panic(fmt.Sprintf("bencode: %T", v)) // only our own literals reach here
		}
	}
	enc(v)
	return b.Bytes()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// errExited: a process the baseline waits for ended first.
var errExited = errors.New("exited")

// proc is a baseline process whose end is watched: a process that fails
// (a port taken between freePort and its bind, a bad argument) ends the
// wait for it at once, with the end of what it printed.
type proc struct {
	name  string
	log   string // its stdout and stderr
	cmd   *exec.Cmd
	done  chan struct{} // closed when it has ended
	state error         // Wait's result
}

// startProc starts name in dir, its output in dir/label.log.
func startProc(ctx context.Context, dir, label, name string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, label+".log"), cmd: exec.CommandContext(ctx, name, args...), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child holds its own copy
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		p.state = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exitErr describes the ended process (call after done).
func (p *proc) exitErr() error {
	return fmt.Errorf("%s %w (%v): %s", p.name, errExited, p.state, strings.TrimSpace(logTail(p.log, 512)))
}

// cpu is the ended process's CPU time (0 while it runs).
func (p *proc) cpu() time.Duration {
	select {
	case <-p.done:
	default:
		return 0
	}
	if st := p.cmd.ProcessState; st != nil {
		return st.UserTime() + st.SystemTime()
	}
	return 0
}

// poll calls ready every 50 ms until it holds, p ends or ctx ends.
func poll(ctx context.Context, p *proc, ready func() bool) error {
	for !ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			if ready() {
				return nil
			}
			return p.exitErr()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func waitListening(ctx context.Context, p *proc, addr string) error {
	return poll(ctx, p, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

func waitFile(ctx context.Context, p *proc, path string) error {
	return poll(ctx, p, func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}
