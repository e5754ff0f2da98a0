package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/manager"
	"github.com/dragonfly-p2p/df/manager/console"
	"github.com/dragonfly-p2p/df/manager/jobs"
	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/testnet"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

// httpExecutor carries preheat out by really downloading each blob over
// HTTP from the origin, reporting bytes as they arrive and checking the
// length (and digest, when the job names one). It stands in for the seed
// peers: the console only sees the job's progress in the store.
type httpExecutor struct {
	client *http.Client
	mu     sync.Mutex
	got    map[string]string // URL -> sha256 of what was fetched
}

func (e *httpExecutor) Preheat(ctx context.Context, cluster string, b jobs.Blob, progress func(int64)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL, nil)
	if err != nil {
		return err
	}
	for k, v := range b.Headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("origin answered %s", resp.Status)
	}
	h := sha256.New()
	var done int64
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			done += int64(n)
			progress(done)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if resp.ContentLength >= 0 && done != resp.ContentLength {
		return fmt.Errorf("got %d of %d bytes", done, resp.ContentLength)
	}
	sum := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if b.Digest != "" && b.Digest != sum {
		return fmt.Errorf("digest %s, want %s", sum, b.Digest)
	}
	e.mu.Lock()
	e.got[b.URL] = sum
	e.mu.Unlock()
	return nil
}

func (e *httpExecutor) DeleteTask(context.Context, string, jobs.TaskArgs) error {
	return errors.New("the test executor only preheats")
}

func (e *httpExecutor) GetTask(context.Context, string, jobs.TaskArgs) (any, error) {
	return nil, errors.New("the test executor only preheats")
}

// into runs a and stores its value in dst.
func into(dst *string, a chromedp.Action[string]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, t)
		*dst = v
		return chromedp.Void{}, err
	}
}

// waitJS waits until the expression is true (polled by the browser).
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond))(ctx, t)
		return err
	})
}

// colorScheme makes the page see prefers-color-scheme: scheme.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
}

func chromiumPath() string {
	for _, p := range []string{os.Getenv("DF_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

func peerID(t *testing.T) string {
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPublicKey(pub)
	return id.String()
}

// TestConsoleEndToEnd drives the console in headless Chromium: sign in
// with the printed root password, create a cluster (after a refused
// one), start a preheat of two files from a real, rate-limited origin and
// watch the job page (htmx polling) until it says succeeded, then visit
// every page. With DF_CONSOLE_SCREENSHOTS=dir it saves a PNG of each page
// there (docs/console/ holds the committed ones).
func TestConsoleEndToEnd(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("chromium is not installed (apt-get install chromium; .ci/run installs it): the browser test cannot run")
	}
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	shots := os.Getenv("DF_CONSOLE_SCREENSHOTS")
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// A real origin on loopback, limited to 2 MiB/s so that the preheat
	// is visibly running for a few seconds.
	origin, err := testnet.NewShapedOrigin(shape.NewLink(shape.Spec{Up: 2 << 20}))
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	files := map[string][]byte{"/models/llm-7b.bin": make([]byte, 5<<20), "/models/tokenizer.json": make([]byte, 1<<20)}
	var total int64
	for p, b := range files {
		rand.Read(b)
		origin.Put(p, b, "")
		total += int64(len(b))
	}

	exe := &httpExecutor{client: &http.Client{Timeout: time.Minute}, got: map[string]string{}}
	var boot bytes.Buffer
	cfg := manager.DefaultConfig()
	cfg.DataDir, cfg.Addr, cfg.BcryptCost = t.TempDir(), "127.0.0.1:0", 10
	cfg.PreheatAllow = []string{"127.0.0.0/8"} // the origin is on loopback
	m, err := manager.New(cfg, manager.WithExecutor(exe), manager.WithBootstrapOutput(&boot), manager.WithConsole(console.Mount()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for m.Addr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("manager did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	base := "http://" + m.Addr()
	pw := regexp.MustCompile(`password (\S+)`).FindStringSubmatch(boot.String())
	if pw == nil {
		t.Fatalf("no root password printed: %q", boot.String())
	}

	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1360, 900))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser; its lifetime is bctx's
		t.Fatalf("start chromium: %v", err)
	}

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if shots == "" {
				return nil
			}
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, time.Minute)
		defer scancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			loc, _ := chromedp.Run(bctx, chromedp.Location())
			t.Fatalf("%s (at %s): %v", step, loc, err)
		}
	}
	var text, loc string

	// Anonymous: every page sends the browser to the login form.
	run("sign in",
		chromedp.Navigate(base+"/jobs"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=password]`)),
		into(&loc, chromedp.Location()),
		shot("login"),
		chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "root"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), pw[1]),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`#preheat`)), // back where it was going
	)
	if !strings.Contains(loc, "/login?next=%2Fjobs") {
		t.Fatalf("anonymous visit went to %s", loc)
	}

	// A refused cluster shows the API's message next to the kept input.
	run("refused cluster",
		chromedp.Navigate(base+"/clusters"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/clusters"] input[name=name]`), "eu-west"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/clusters"] textarea[name=cidrs]`), "10.20.0.0/16\n10.300.0.0/16"),
		chromedp.Click(chromedp.CSS(`form[action="/clusters"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash.bad`)),
		into(&text, chromedp.Text(chromedp.CSS(`.flash.bad`))),
		shot("cluster-error"),
	)
	if !strings.Contains(text, "10.300.0.0/16") {
		t.Fatalf("error shown: %q", text)
	}
	run("create cluster",
		chromedp.SetValue(chromedp.CSS(`form[action="/clusters"] textarea[name=cidrs]`), "10.20.0.0/16\n10.21.0.0/16"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/clusters"] input[name=description]`), "Dublin racks and the GPU pool"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/clusters"] textarea[name=idcs]`), "dub-a, dub-b"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/clusters"] input[name=location]`), "europe|ireland|dublin"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/clusters"] textarea[name=hostname_patterns]`), `^gpu-[0-9]+\.dub\.example\.com$`),
		chromedp.Click(chromedp.CSS(`form[action="/clusters"] input[name=default]`)),
		chromedp.Click(chromedp.CSS(`form[action="/clusters"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash.ok`)),
		into(&text, chromedp.Text(chromedp.CSS(`.flash.ok`))),
		into(&loc, chromedp.Location()),
	)
	if !strings.HasSuffix(loc, "/clusters/eu-west") || !strings.Contains(text, "created") {
		t.Fatalf("after create: %s %q", loc, text)
	}
	c, err := m.Store().Cluster("eu-west")
	if err != nil || len(c.Scopes.CIDRs) != 2 || len(c.Scopes.IDCs) != 2 || !c.Default {
		t.Fatalf("stored cluster %+v %v", c, err)
	}
	// A second cluster through the API's store, and instances that keep alive.
	if err := m.Store().PutCluster(store.Cluster{Name: "us-east", Description: "Virginia", Scopes: store.Scopes{IDCs: []string{"iad-1"}, Location: "america|usa|virginia"}}, true); err != nil {
		t.Fatal(err)
	}
	for i, in := range []struct {
		kind                    store.InstanceKind
		cluster, host, idc, loc string
	}{
		{store.KindScheduler, "eu-west", "sched-dub-1", "dub-a", "europe|ireland|dublin"},
		{store.KindScheduler, "eu-west", "sched-dub-2", "dub-b", "europe|ireland|dublin"},
		{store.KindScheduler, "us-east", "sched-iad-1", "iad-1", "america|usa|virginia"},
		{store.KindSeedPeer, "eu-west", "seed-dub-1", "dub-a", "europe|ireland|dublin"},
		{store.KindSeedPeer, "us-east", "seed-iad-1", "iad-1", "america|usa|virginia"},
	} {
		if err := m.Store().Keepalive(in.kind, store.Instance{ID: peerID(t), Cluster: in.cluster, Hostname: in.host,
			IP: fmt.Sprintf("10.20.0.%d", 10+i), IDC: in.idc, Location: in.loc}); err != nil {
			t.Fatal(err)
		}
	}
	run("cluster page", chromedp.Navigate(base+"/clusters/eu-west"), chromedp.WaitVisible(chromedp.CSS(`table`)), shot("cluster"))
	run("clusters page", chromedp.Navigate(base+"/clusters"), chromedp.WaitVisible(chromedp.CSS(`a[href="/clusters/us-east"]`)), shot("clusters"))

	// Preheat two URLs on eu-west and watch it finish on the job page.
	urls := origin.URL("/models/llm-7b.bin") + "\n" + origin.URL("/models/tokenizer.json")
	var state string
	run("start preheat",
		chromedp.Navigate(base+"/jobs"),
		chromedp.Click(chromedp.CSS(`input[name=kind][value=urls]`)),
		chromedp.SendKeys(chromedp.CSS(`textarea[name=urls]`), urls),
		chromedp.Click(chromedp.CSS(`input[name=clusters][value=eu-west]`)),
		chromedp.Click(chromedp.CSS(`#preheat button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#progress`)),
		into(&loc, chromedp.Location()),
		waitJS(`Number(document.querySelector('#progress[data-state=running]')?.dataset.done) > 1048576`),
		shot("job-running"),
	)
	if !regexp.MustCompile(`/jobs/\d+$`).MatchString(loc) {
		t.Fatalf("after submit: %s", loc)
	}
	run("preheat finishes",
		chromedp.WaitVisible(chromedp.CSS(`#progress[data-state=succeeded]`)),
		into(&state, chromedp.Text(chromedp.CSS(`#job-state`))),
		shot("job"),
	)
	if state != "succeeded" {
		t.Fatalf("job state %q", state)
	}
	js, _ := m.Store().Jobs(nil)
	if len(js) != 1 || js[0].State != store.JobSucceeded || len(js[0].Progress) != 2 {
		t.Fatalf("job %+v", js)
	}
	var done int64
	for _, b := range js[0].Progress {
		done += b.Done
	}
	if done != total || origin.BytesServed() < total || len(exe.got) != 2 {
		t.Fatalf("preheated %d bytes, origin served %d, want %d", done, origin.BytesServed(), total)
	}
	for p, b := range files {
		if sum := sha256.Sum256(b); exe.got[origin.URL(p)] != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Fatalf("%s fetched wrong bytes", p)
		}
	}
	run("jobs page", chromedp.Navigate(base+"/jobs"), chromedp.WaitVisible(chromedp.CSS(`.badge.s-succeeded`)), shot("jobs"))

	// Users, tokens, applications.
	run("create user",
		chromedp.Navigate(base+"/users"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/users"] input[name=name]`), "alice"),
		chromedp.SetValue(chromedp.CSS(`form[action="/users"] select[name=role]`), "admin"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/users"] input[name=password]`), "correct-horse-battery"),
		chromedp.Click(chromedp.CSS(`form[action="/users"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash.ok`)),
		shot("users"),
	)
	if u, err := m.Store().User("alice"); err != nil || u.Role != store.RoleAdmin {
		t.Fatalf("alice %+v %v", u, err)
	}
	var secret string
	run("create token",
		chromedp.Navigate(base+"/tokens"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/tokens"] input[name=name]`), "ci-preheat"),
		chromedp.Click(chromedp.CSS(`input[name=scopes][value=jobs]`)),
		chromedp.Click(chromedp.CSS(`form[action="/tokens"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#token-secret`)),
		into(&secret, chromedp.Text(chromedp.CSS(`#token-secret`))),
		shot("tokens"),
	)
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(secret))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the token shown does not work: %v", err)
	}
	run("create application",
		chromedp.Navigate(base+"/applications"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/applications"] input[name=name]`), "model-serving"),
		chromedp.SetValue(chromedp.CSS(`form[action="/applications"] select[name=priority]`), "5"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/applications"] textarea[name=url_patterns]`), `^http://127\.0\.0\.1:\d+/models/`),
		chromedp.Click(chromedp.CSS(`form[action="/applications"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/applications/model-serving"]`)),
		shot("applications"),
	)
	if a, err := m.Store().Application("model-serving"); err != nil || a.Priority != 5 {
		t.Fatalf("application %+v %v", a, err)
	}
	run("nodes page", chromedp.Navigate(base+"/nodes"), chromedp.WaitVisible(chromedp.CSS(`.badge.s-active`)), shot("nodes"))
	run("audit page", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS(`table`)), shot("audit"))
	run("overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`svg.chart rect`)), shot("overview"))
	run("overview dark",
		colorScheme("dark"), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`svg.chart rect`)), shot("overview-dark"),
		colorScheme("light"),
	)
	// Sign out: the pages are closed again.
	run("sign out",
		chromedp.Click(chromedp.CSS(`form.who button`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=password]`)),
		chromedp.Navigate(base+"/clusters"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=password]`)),
	)
}
