package console_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/dragonfly-p2p/df/manager"
	"github.com/dragonfly-p2p/df/manager/console"
	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/node"
	nodeapi "github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/testnet"
	"github.com/dragonfly-p2p/df/testnet/shape"
)

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

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// A real origin on loopback, limited to 2 MiB/s so that the preheat
	// is visibly running for a few seconds.
	origin, err := testnet.NewShapedOrigin(shape.NewLink(shape.Spec{Up: 2 << 20}))
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	files := map[string][]byte{"/models/llm-7b.bin": testnet.Payload(12<<20, 1), "/models/tokenizer.json": testnet.Payload(1<<20+123, 2)}
	var total int64
	for p, b := range files {
		origin.Put(p, b, "")
		total += int64(len(b))
	}
	// A cluster of real nodes (none yet) and a manager joined to it, with
	// the console mounted: jobs run on the seed peers over libp2p.
	c, err := testnet.Start(ctx, t.TempDir(), 0, testnet.WithConfig(func(i int, cfg *node.Config) { cfg.Seed = i == 0 }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.StartManager(ctx, manager.WithConsole(console.Mount()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	base := m.URL()
	if m.Password == "" {
		t.Fatal("no root password printed")
	}
	pw := []string{"", m.Password}

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
			if html, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`)); err == nil {
				t.Logf("page text at failure:\n%s", html)
			}
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
	if cl, err := m.Store().Cluster("eu-west"); err != nil || len(cl.Scopes.CIDRs) != 2 || len(cl.Scopes.IDCs) != 2 || !cl.Default {
		t.Fatalf("stored cluster %+v %v", cl, err)
	}
	// A second cluster through the REST API; then a managed scheduler and
	// two nodes (node 0 a seed peer) that follow the manager and keep alive.
	if err := m.Do(ctx, "POST", "/api/v1/clusters", map[string]any{"name": "us-east", "description": "Virginia",
		"scopes": map[string]any{"idcs": []string{"iad-1"}, "location": "america|usa|virginia"}}, nil); err != nil {
		t.Fatal(err)
	}
	tok, err := m.ClusterToken(ctx, "nodes")
	if err != nil {
		t.Fatal(err)
	}
	c.UseManager(m.URL(), tok)
	if _, err := c.AddManagedScheduler(ctx, "eu-west"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.AddNode(ctx); err != nil {
			t.Fatal(err)
		}
	}
	seedID := c.Node(0).Host().ID().String()
	run("seed peer registers",
		chromedp.Navigate(base+"/nodes"),
		waitJS(`[...document.querySelectorAll('#live code')].some(e => e.title === '`+seedID+`' && e.closest('tr').querySelector('.s-active'))`),
		waitJS(`document.querySelectorAll('#live .badge.s-active').length >= 2`),
		// The managed scheduler reports the two nodes in its keepalive summary.
		waitJS(`document.querySelectorAll('#hosts tbody tr').length >= 2`),
	)
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
		// Running with bytes fetched, or already done if the seed was quick.
		waitJS(`(p => p && (p.dataset.state === 'running' && Number(p.dataset.done) > 0 || p.dataset.state === 'succeeded' || p.dataset.state === 'failed'))(document.querySelector('#progress'))`),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if st, err := chromedp.Text(chromedp.CSS(`#job-state`))(ctx, tg); err != nil || st != "running" {
				t.Logf("job state %q before the running screenshot; not taken", st)
				return err
			}
			_, err = shot("job-running")(ctx, tg)
			return err
		}),
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
	for p := range files {
		id, err := protocol.URLTask{URL: origin.URL(p)}.ID()
		if err != nil {
			t.Fatal(err)
		}
		if info, err := c.Node(0).Store().Stat(ctx, id); err != nil || !info.Complete {
			t.Fatalf("the seed peer does not hold %s complete: %+v %v", p, info, err)
		}
	}
	if origin.BytesServed() < total {
		t.Fatalf("origin served %d bytes of %d", origin.BytesServed(), total)
	}
	run("jobs page", chromedp.Navigate(base+"/jobs"), chromedp.WaitVisible(chromedp.CSS(`.badge.s-succeeded`)), shot("jobs"))

	// Node 1 downloads the preheated file: from the seed peer, which the
	// scheduler counts as peer traffic and reports to the manager.
	content, err := c.Node(1).Download(ctx, nodeapi.DownloadRequest{URL: origin.URL("/models/llm-7b.bin")})
	if err != nil {
		t.Fatal(err)
	}
	if err := content.Wait(ctx); err != nil {
		t.Fatalf("node 1 download: %v", err)
	}
	content.Release()
	run("nodes with tasks",
		chromedp.Navigate(base+"/nodes"),
		// The seed holds both preheated files, node 1 the one it downloaded.
		waitJS(`[...document.querySelectorAll('#hosts tbody tr')].filter(r => / held/.test(r.textContent) && !/\b0 held/.test(r.textContent)).length >= 2`),
		shot("nodes"),
	)

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
	run("audit page", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS(`table`)), shot("audit"))
	run("overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`svg.chart rect`)),
		waitJS(`[...document.querySelectorAll('svg.chart rect.bar.peer')].some(r => +r.getAttribute('height') > 0)`),
		shot("overview"))
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

// TestConsoleSharesTheAPILoginLimit checks that the console signs in
// through the manager's one API server: failures through the API count
// against sign-ins through the console (one budget per name, not two).
func TestConsoleSharesTheAPILoginLimit(t *testing.T) {
	cfg := manager.DefaultConfig()
	cfg.DataDir, cfg.Addr, cfg.BcryptCost = t.TempDir(), "127.0.0.1:0", 10
	m, err := manager.New(cfg, manager.WithBootstrapOutput(io.Discard), manager.WithConsole(console.Mount()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for m.Ready() != nil {
		time.Sleep(5 * time.Millisecond)
	}
	base := "http://" + m.Addr()
	for range 10 {
		resp, err := http.Post(base+"/api/v1/login", "application/json", strings.NewReader(`{"name":"root","password":"not-the-password"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.PostForm(base+"/login", url.Values{"name": {"root"}, "password": {"still-not-the-password"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "Too many failed sign-ins") {
		t.Fatalf("console sign-in after 10 API failures: %d", resp.StatusCode)
	}
}
