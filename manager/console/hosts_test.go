package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/manager/telemetry"
	"github.com/dragonfly-p2p/df/protocol/dynclient"
)

// apiPost posts JSON to the API with a bearer token.
func apiPost(t *testing.T, base, path, token string, body any) (int, string) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// A scheduler's keepalive summaries show on the overview (peer vs origin
// bytes) and on the nodes page (hosts with location, load and tasks).
func TestOverviewAndNodesShowSchedulerSummaries(t *testing.T) {
	hs, st := newServer(t)
	if err := st.PutCluster(store.Cluster{Name: "eu"}, true); err != nil {
		t.Fatal(err)
	}
	code, body := apiPost(t, hs.URL, "/api/v1/login", "", map[string]string{"name": "root", "password": testPW})
	var lr struct{ Token string }
	if err := json.Unmarshal([]byte(body), &lr); code != 200 || err != nil {
		t.Fatalf("login: %d %s", code, body)
	}
	b := newBrowser(t, hs.URL)
	b.login("guest")
	if _, page := b.do("GET", "/", nil, nil); !strings.Contains(page, "no traffic reported in the last 24 hours") {
		t.Fatalf("overview before any summary does not say so: %s", page)
	}
	const sid = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"
	hosts := []dynclient.HostSummary{
		{ID: "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE", Hostname: "node-fra-1", IDC: "fra-a", Location: []string{"eu", "de", "fra"},
			Type: dynclient.HostTypeNormal, UploadCapacity: 1e9, UploadRate: 25e7, InFlight: 3, MaxUploads: 16, Tasks: 7, TasksDone: 5, LastSeen: time.Now().UTC()},
		{ID: "12D3KooWJ3eCBE1ZtVP1dx7qgYBbu6T8f3yEZVSwEk6Bn5L6GJX8", Hostname: "seed-ams-1", IDC: "ams-b", Location: []string{"eu", "nl"},
			Type: dynclient.HostTypeSeed, UploadRate: 1e6, Tasks: 2, TasksDone: 2, LastSeen: time.Now().UTC()},
	}
	started := time.Now().Add(-time.Hour).UTC()
	for _, c := range [][2]uint64{{1 << 30, 1 << 20}, {4 << 30, 2 << 30}} {
		req := dynclient.KeepaliveRequest{ID: sid, Cluster: "eu", Hostname: "sched-1", Summary: &dynclient.SchedulerSummary{
			Started: started, PeerBytes: c[0], SourceBytes: c[1], HostCount: 2, TaskCount: 9, PeerCount: 9, Hosts: hosts}}
		if code, body := apiPost(t, hs.URL, dynclient.SchedulerKeepalivePath, lr.Token, req); code != 200 {
			t.Fatalf("keepalive: %d %s", code, body)
		}
	}
	_, page := b.do("GET", "/?part=live", nil, nil)
	for _, want := range []string{
		"3.0 GiB from peers", "2.0 GiB from origins", "(60 % from peers)", // deltas of the second summary
		`class="bar peer"`, "2 hosts, 9 tasks", "1 scheduler reports",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if strings.Contains(page, "no traffic reported") || strings.Contains(page, "not reported yet") {
		t.Error("overview still says traffic is not reported")
	}
	_, page = b.do("GET", "/nodes", nil, nil)
	for _, want := range []string{"Hosts <span class=\"muted\">(2)</span>", "node-fra-1", "fra-a", "eu › de › fra",
		"250.0 Mbit/s / 1.0 Gbit/s", `value="25"`, "3 / 16", "5 held, 7 total", "seed-ams-1", "unknown", "2 held"} {
		if !strings.Contains(page, want) {
			t.Errorf("nodes page lacks %q", want)
		}
	}
	_, page = b.do("GET", "/nodes?host=seed&part=live", nil, nil)
	if !strings.Contains(page, "seed-ams-1") || strings.Contains(page, "node-fra-1") || !strings.Contains(page, "host=seed") {
		t.Errorf("host filter: %s", page)
	}
	_, page = b.do("GET", "/nodes?host="+strings.Repeat("%3Cscript%3E", 3), nil, nil)
	if strings.Contains(page, "<script>") || !strings.Contains(page, "No host matches") {
		t.Errorf("filter not escaped or no empty message")
	}
}

func TestTrafficChartBuckets(t *testing.T) {
	now := time.Date(2026, 1, 2, 10, 30, 0, 0, time.UTC)
	samples := []telemetry.Sample{
		{Time: now.Add(-24 * time.Hour), PeerBytes: 1 << 40},                      // before the window
		{Time: now.Add(-5 * time.Hour), PeerBytes: 1 << 20, SourceBytes: 4 << 20}, // 05:30: bar 18
		{Time: now.Add(-time.Minute), PeerBytes: 8 << 20},                         // 10:29: bar 23
		{Time: now, PeerBytes: 8 << 20},                                           // 10:30: bar 23
	}
	c := trafficChart(now, samples)
	if len(c.Bars) != 48 || c.Max != 16<<20 || c.Empty {
		t.Fatalf("bars %d max %d empty %v", len(c.Bars), c.Max, c.Empty)
	}
	peer23, origin23, peer18, origin18 := c.Bars[46], c.Bars[47], c.Bars[36], c.Bars[37]
	if peer23.Class != "peer" || origin23.Class != "origin" || origin23.H != 0 || peer23.H <= origin18.H || origin18.H <= peer18.H || peer18.H == 0 {
		t.Fatalf("bars: %+v %+v %+v %+v", peer23, origin23, peer18, origin18)
	}
	if !strings.Contains(peer23.Title, "16 MiB from peers") && !strings.Contains(peer23.Title, "16.0 MiB from peers") {
		t.Fatalf("title %q", peer23.Title)
	}
	if c := trafficChart(now, nil); !c.Empty || len(c.Bars) != 48 {
		t.Fatalf("empty chart: %+v", c)
	}
}
