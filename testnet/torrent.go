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
	trackerPort, err := freePort()
	if err != nil {
		return res, err
	}
	torrent := filepath.Join(dir, "swarm.torrent")
	meta, infoHash := torrentFile(fmt.Sprintf("http://127.0.0.1:%d/announce", trackerPort), "swarm.bin", pieceLen, data)
	if err := os.WriteFile(torrent, meta, 0o600); err != nil {
		return res, err
	}
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
		procs []*exec.Cmd
	)
	start := func(name string, args ...string) error {
		cmd := exec.CommandContext(runCtx, name, args...)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		mu.Lock()
		procs = append(procs, cmd)
		mu.Unlock()
		return nil
	}
	cpu := func() time.Duration {
		var total time.Duration
		for _, p := range procs {
			if p.ProcessState != nil {
				total += p.ProcessState.UserTime() + p.ProcessState.SystemTime()
			}
		}
		return total
	}
	defer func() {
		cancel()
		for _, p := range procs {
			_ = p.Wait()
		}
	}()
	if err := start("opentracker", "-i", "127.0.0.1", "-p", strconv.Itoa(trackerPort), "-P", strconv.Itoa(trackerPort), "-d", trackerDir, "-w", "/whitelist"); err != nil {
		return res, err
	}
	if err := waitListening(ctx, fmt.Sprintf("127.0.0.1:%d", trackerPort)); err != nil {
		return res, fmt.Errorf("opentracker: %w", err)
	}
	aria := func(dl string, up, down int64, extra ...string) error {
		port, err := freePort()
		if err != nil {
			return err
		}
		args := []string{
			"--dir=" + dl, "--listen-port=" + strconv.Itoa(port), "--enable-dht=false", "--enable-peer-exchange=false",
			"--bt-enable-lpd=false", "--seed-ratio=0.0", "--file-allocation=none", "--summary-interval=0",
			"--console-log-level=error", "--quiet=true", "--bt-tracker-interval=2", "--bt-stop-timeout=0",
			"--on-bt-download-complete=" + hook, "--allow-overwrite=true", "--auto-file-renaming=false",
			"--max-overall-upload-limit=" + strconv.FormatInt(max(up, 0), 10),
			"--max-overall-download-limit=" + strconv.FormatInt(max(down, 0), 10),
		}
		return start("aria2c", append(append(args, extra...), torrent)...)
	}
	if err := aria(seedDir, spec.OriginUp, 0, "--check-integrity=true", "--bt-seed-unverified=false"); err != nil {
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
			if err := aria(dl, spec.Up, spec.Down); err != nil {
				errs[i] = err
				return
			}
			file := filepath.Join(dl, "swarm.bin")
			if err := waitFile(ctx, file+".done"); err != nil {
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
		_ = p.Wait()
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

// torrentFile encodes a single-file BitTorrent v1 metainfo file and
// returns it with its info hash in hex.
func torrentFile(announce, name string, pieceLen int, data []byte) ([]byte, string) {
	var pieces bytes.Buffer
	for off := 0; off < len(data); off += pieceLen {
		sum := sha1.Sum(data[off:min(off+pieceLen, len(data))]) //nolint:gosec // BitTorrent v1
		pieces.Write(sum[:])
	}
	info := map[string]any{"length": len(data), "name": name, "piece length": pieceLen, "pieces": pieces.String()}
	hash := sha1.Sum(bencode(info)) //nolint:gosec // BitTorrent v1
	return bencode(map[string]any{"announce": announce, "info": info}), hex.EncodeToString(hash[:])
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

func waitListening(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitFile(ctx context.Context, path string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
