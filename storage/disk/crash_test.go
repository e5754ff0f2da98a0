package disk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// The crash test re-executes the test binary as a child (selected by
// crashDirEnv, intercepted in TestMain) that writes to a store in a loop
// until the parent SIGKILLs it at a random moment.
const (
	crashDirEnv  = "DF_DISK_CRASH_DIR"
	crashSeedEnv = "DF_DISK_CRASH_SEED"
	// crashLongEnv selects the 100-iteration variant (not with -short).
	crashLongEnv = "DF_DISK_CRASH_LONG"
)

var (
	crashNamedID = testID("crash-import")
	crashURLID   = testID("crash-url")
	crashData    = sync.OnceValues(func() ([]byte, []byte) {
		return randomBytes(77, 6<<20), randomBytes(78, 4<<20) // imported, downloaded
	})
)

// runCrashChild runs the crash test's child process when selected by the
// environment; it reports whether it did (it then never returns normally).
func runCrashChild() bool {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return false
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	if err := crashChild(dir, seed); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	return true
}

// crashChild imports, downloads, completes and deletes tasks forever.
func crashChild(dir string, seed uint64) error {
	ctx := context.Background()
	s, err := Open(ctx, dir, WithLockTimeout(10*time.Second), WithFlushDelay(5*time.Millisecond),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(seed, 1))
	imported, downloaded := crashData()
	for i := uint64(0); ; i++ {
		switch rng.IntN(3) {
		case 0:
			spec := storage.ImportSpec{ID: crashNamedID, Kind: storage.KindNamed, Size: int64(len(imported)), PieceLength: 64 << 10}
			if _, err := s.Import(ctx, spec, bytes.NewReader(imported)); err != nil {
				return err
			}
			if rng.IntN(2) == 0 {
				_ = s.Delete(ctx, crashNamedID)
			}
		case 1:
			if err := crashDownload(ctx, s, rng, downloaded); err != nil {
				return err
			}
		case 2:
			data := randomBytes(seed<<20+i, (1+rng.IntN(3))<<20)
			info, err := s.Import(ctx, storage.ImportSpec{Kind: storage.KindContent, Size: int64(len(data))}, bytes.NewReader(data))
			if err != nil {
				return err
			}
			if rng.IntN(3) > 0 {
				_ = s.Delete(ctx, info.ID)
			}
		}
	}
}

// crashDownload writes the URL task's missing pieces from two goroutines
// in random order, sometimes lying about one, then completes it.
func crashDownload(ctx context.Context, s *Store, rng *rand.Rand, data []byte) error {
	layout, _ := protocol.NewLayout(int64(len(data)), protocol.MinPieceLength)
	task, err := s.Create(ctx, storage.Spec{ID: crashURLID, Kind: storage.KindURL, Layout: layout})
	if err != nil {
		return err
	}
	defer task.Close()
	var missing []uint32
	for n := range layout.PieceCount() {
		if !task.Has(n) {
			missing = append(missing, n)
		}
	}
	rng.Shuffle(len(missing), func(i, j int) { missing[i], missing[j] = missing[j], missing[i] })
	lie := len(missing) > 0 && rng.IntN(4) == 0
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < len(missing); i += 2 {
				n := missing[i]
				off, length, _ := layout.Piece(n)
				p := data[off : off+int64(length)]
				if lie && i == 0 {
					p = make([]byte, length) // accepted: no digest to check against
				}
				_, _ = task.WritePiece(ctx, n, protocol.Digest{}, bytes.NewReader(p))
			}
		})
	}
	wg.Wait()
	_, err = task.Complete(ctx, protocol.SHA256(data))
	if err != nil && !errors.Is(err, storage.ErrDigestMismatch) && !errors.Is(err, storage.ErrIncomplete) {
		return err
	}
	if err == nil && rng.IntN(2) == 0 {
		return s.Delete(ctx, crashURLID)
	}
	return nil
}

func TestCrashRecovery(t *testing.T) {
	iterations := 20
	if os.Getenv(crashLongEnv) != "" && !testing.Short() {
		iterations = 100
	}
	dir := filepath.Join(t.TempDir(), "store")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for i := range iterations {
		crashOnce(t, dir, seed+uint64(i), time.Duration(rng.IntN(250))*time.Millisecond)
		verifyAfterCrash(t, dir)
	}
	// Both kinds of work can be finished after all the crashes.
	s := openStore(t, dir)
	imported, downloaded := crashData()
	info, err := s.Import(context.Background(), storage.ImportSpec{ID: crashNamedID, Kind: storage.KindNamed,
		Size: int64(len(imported)), PieceLength: 64 << 10}, bytes.NewReader(imported))
	if err != nil || !info.Complete {
		t.Fatalf("import after crashes: %+v, %v", info, err)
	}
	checkContent(t, s, crashNamedID, imported)
	layout, _ := protocol.NewLayout(int64(len(downloaded)), protocol.MinPieceLength)
	task, err := s.Create(context.Background(), storage.Spec{ID: crashURLID, Kind: storage.KindURL, Layout: layout})
	if err != nil {
		t.Fatal(err)
	}
	defer task.Close()
	for n := range layout.PieceCount() {
		off, length, _ := layout.Piece(n)
		if _, err := task.WritePiece(context.Background(), n, protocol.Digest{}, bytes.NewReader(downloaded[off:off+int64(length)])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := task.Complete(context.Background(), protocol.SHA256(downloaded)); err != nil {
		// A lie recorded before a crash fails this check once; the retry
		// starts from no pieces.
		if !errors.Is(err, storage.ErrDigestMismatch) {
			t.Fatal(err)
		}
		for n := range layout.PieceCount() {
			off, length, _ := layout.Piece(n)
			if _, err := task.WritePiece(context.Background(), n, protocol.Digest{}, bytes.NewReader(downloaded[off:off+int64(length)])); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := task.Complete(context.Background(), protocol.SHA256(downloaded)); err != nil {
			t.Fatal(err)
		}
	}
}

// crashOnce runs the child until it is ready, lets it work for after, and
// kills it.
func crashOnce(t *testing.T, dir string, seed uint64, after time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSeedEnv+"="+strconv.FormatUint(seed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("child said %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case err = <-ready:
	case <-time.After(30 * time.Second):
		err = errors.New("child not ready after 30 s")
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %v; stderr: %s", err, stderr.String())
	}
	time.Sleep(after) // the random moment of the crash
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v; stderr: %s", err, stderr.String())
	}
}

// verifyAfterCrash reopens the store and checks its invariants: every
// piece recorded as verified re-hashes to its digest, every complete task
// has the right content, nothing is left in tmp.
func verifyAfterCrash(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, dir, WithLockTimeout(10*time.Second), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	if left, _ := filepath.Glob(filepath.Join(dir, tmpDir, "*")); len(left) != 0 {
		t.Fatalf("tmp not cleaned: %v", left)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	imported, downloaded := crashData()
	for _, info := range list {
		task, err := s.Open(ctx, info.ID)
		if err != nil {
			t.Fatalf("open %s: %v", info.ID.Short(), err)
		}
		ps, _ := task.Pieces(0)
		if len(ps) != int(info.VerifiedPieces) {
			t.Fatalf("task %s: %d pieces listed, %d counted", info.ID.Short(), len(ps), info.VerifiedPieces)
		}
		for _, p := range ps {
			r, _, err := task.Piece(p.Number)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, r); err != nil {
				t.Fatal(err)
			}
			if protocol.Digest(h.Sum(nil)) != p.Digest {
				t.Fatalf("task %s piece %d is recorded verified but its bytes do not match", info.ID.Short(), p.Number)
			}
		}
		if info.Complete {
			ra, err := task.ReaderAt()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(io.NewSectionReader(ra, 0, info.Layout.ContentLength))
			if err != nil || protocol.SHA256(got) != info.ContentDigest {
				t.Fatalf("complete task %s has wrong bytes (%v)", info.ID.Short(), err)
			}
			want := map[protocol.TaskID][]byte{crashNamedID: imported, crashURLID: downloaded}[info.ID]
			if info.Kind == storage.KindContent && info.ID != protocol.ContentTaskID(info.ContentDigest) ||
				want != nil && !bytes.Equal(got, want) {
				t.Fatalf("complete task %s holds other content than it should", info.ID.Short())
			}
		}
		task.Close()
	}
}
