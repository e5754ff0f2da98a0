package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/manager/store"
	"github.com/dragonfly-p2p/df/manager/telemetry"
	"github.com/dragonfly-p2p/df/protocol/dynclient"
)

func TestSchedulerSummaryThroughAPI(t *testing.T) {
	f := newFixture(t)
	admin, guest := f.tokens[store.RoleAdmin], f.tokens[store.RoleGuest]
	f.do("POST", "/api/v1/clusters", admin, `{"name":"c1"}`)
	const sid = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"
	const hid = "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"
	started := time.Now().Add(-time.Hour).UTC()
	body := func(peerB, srcB uint64, hosts ...dynclient.HostSummary) string {
		req := dynclient.KeepaliveRequest{ID: sid, Cluster: "c1", Hostname: "sched-1", Summary: &dynclient.SchedulerSummary{
			Started: started, PeerBytes: peerB, SourceBytes: srcB, HostCount: len(hosts), TaskCount: 1, PeerCount: 1, Hosts: hosts}}
		b, _ := json.Marshal(req)
		return string(b)
	}
	h := dynclient.HostSummary{ID: hid, Hostname: "node-a", IDC: "idc-1", Location: []string{"eu", "fra"}, Type: dynclient.HostTypeNormal,
		UploadCapacity: 1e9, UploadRate: 4e8, InFlight: 3, MaxUploads: 8, Tasks: 2, TasksDone: 1, LastSeen: time.Now().UTC()}

	many := make([]dynclient.HostSummary, dynclient.MaxSummaryHosts+1)
	for i := range many {
		many[i] = h
	}
	long := h
	long.Hostname = strings.Repeat("x", 300)
	for _, tc := range []struct{ name, path, body, code string }{
		{"unknown field in summary", "/api/v1/schedulers/keepalive", strings.Replace(body(1, 1, h), `"peer_bytes"`, `"evil":1,"peer_bytes"`, 1), "bad_json"},
		{"unknown field in host", "/api/v1/schedulers/keepalive", strings.Replace(body(1, 1, h), `"hostname":"node-a"`, `"hostname":"node-a","x":1`, 1), "bad_json"},
		{"negative counter", "/api/v1/schedulers/keepalive", strings.Replace(body(1, 1, h), `"peer_bytes":1`, `"peer_bytes":-1`, 1), "bad_json"},
		{"too many hosts", "/api/v1/schedulers/keepalive", body(1, 1, many...), "invalid"},
		{"long hostname", "/api/v1/schedulers/keepalive", body(1, 1, long), "invalid"},
		{"summary from a seed peer", "/api/v1/seed-peers/keepalive", body(1, 1, h), "invalid"},
	} {
		if code, b := f.do("POST", tc.path, admin, tc.body); code != 400 || errCode(t, b) != tc.code {
			t.Errorf("%s: %d %s", tc.name, code, b)
		}
	}
	if code, b := f.do("GET", "/api/v1/hosts", guest, ""); code != 200 || !strings.Contains(string(b), `"total":0`) {
		t.Fatalf("hosts after refused summaries: %d %s", code, b)
	}
	for _, s := range []string{body(1000, 400, h), body(1600, 900, h)} {
		if code, b := f.do("POST", "/api/v1/schedulers/keepalive", admin, s); code != 200 {
			t.Fatalf("keepalive with summary: %d %s", code, b)
		}
	}
	var hosts Page[telemetry.Host]
	code, b := f.do("GET", "/api/v1/hosts?idc=idc-1&location=eu&type=normal&hostname=node", guest, "")
	if err := json.Unmarshal(b, &hosts); code != 200 || err != nil || hosts.Total != 1 {
		t.Fatalf("hosts: %d %s", code, b)
	}
	if g := hosts.Items[0]; g.ID != hid || g.Scheduler != sid || g.Cluster != "c1" || g.InFlight != 3 || g.Tasks != 2 || g.Location[1] != "fra" {
		t.Fatalf("host: %+v", g)
	}
	if code, b := f.do("GET", "/api/v1/hosts?idc=other", guest, ""); code != 200 || !strings.Contains(string(b), `"total":0`) {
		t.Fatalf("filtered hosts: %d %s", code, b)
	}
	if code, _ := f.do("GET", "/api/v1/hosts?type=super", guest, ""); code != 400 {
		t.Fatalf("bad type filter: %d", code)
	}
	var tr Traffic
	code, b = f.do("GET", "/api/v1/traffic?minutes=10", guest, "")
	if err := json.Unmarshal(b, &tr); code != 200 || err != nil {
		t.Fatalf("traffic: %d %s", code, b)
	}
	// The first summary is the baseline; the second adds its deltas.
	if len(tr.Samples) != 10 || tr.PeerBytes != 600 || tr.SourceBytes != 500 || len(tr.Schedulers) != 1 || tr.Schedulers[0].HostCount != 1 {
		t.Fatalf("traffic: %+v", tr)
	}
	for _, q := range []string{"0", "1441", "x"} {
		if code, _ := f.do("GET", "/api/v1/traffic?minutes="+q, guest, ""); code != 400 {
			t.Errorf("minutes=%s: %d", q, code)
		}
	}
	// A keepalive without a summary (an older scheduler) is still accepted.
	if code, b := f.do("POST", "/api/v1/schedulers/keepalive", admin, fmt.Sprintf(`{"id":%q,"cluster":"c1"}`, sid)); code != 200 {
		t.Fatalf("keepalive without summary: %d %s", code, b)
	}
	// Removing the scheduler removes its hosts.
	if code, _ := f.do("DELETE", "/api/v1/schedulers/"+sid, admin, ""); code != 204 {
		t.Fatalf("delete scheduler: %d", code)
	}
	if code, b := f.do("GET", "/api/v1/hosts", guest, ""); code != 200 || !strings.Contains(string(b), `"total":0`) {
		t.Fatalf("hosts after removal: %d %s", code, b)
	}
}
