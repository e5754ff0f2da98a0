package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/dragonfly-p2p/df/protocol/units"
)

// waitSeedPeers waits until the manager lists want active seed peers.
func waitSeedPeers(ctx context.Context, m *ManagerClient, want int) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return WaitFor(wctx, 200*time.Millisecond, func() bool {
		var list struct {
			Items []struct{ State string } `json:"items"`
		}
		if err := m.Do(wctx, "GET", "/api/v1/seed-peers?state=active", nil, &list); err != nil {
			return false
		}
		return len(list.Items) >= want
	})
}

// demoPreheat has the manager preheat a URL and an image on the seed peer,
// shows the jobs' per-blob progress, then a node downloading the preheated
// URL from peers without touching the origin.
func demoPreheat(ctx context.Context, c *ProcCluster, dir string, origin *Origin, size int64, say func(string, ...any)) error {
	m := c.Manager
	seeds := 0
	for _, n := range c.Nodes {
		if n.Seed {
			seeds++
		}
	}
	if err := waitSeedPeers(ctx, m.ManagerClient, seeds); err != nil {
		return fmt.Errorf("the seed peers did not register with the manager: %w", err)
	}
	file := demoBytes(size, 7)
	origin.Put("/models/preheated.bin", file, `"preheat-v1"`)
	reg, err := NewRegistry("library/preheat:v1", max(size/4, 1<<20), 2)
	if err != nil {
		return err
	}
	defer reg.Close()
	url := origin.URL("/models/preheated.bin")
	image := reg.Host() + "/" + reg.Ref()

	run := func(what string, args map[string]any) error {
		start := time.Now()
		j, err := m.SubmitJob(ctx, "preheat", args, nil)
		if err != nil {
			return err
		}
		say("  POST /api/v1/jobs  preheat %s → job %d", what, j.ID)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if j, err = m.WaitJob(wctx, j.ID, nil); err != nil {
			return err
		}
		say("  job %d %s in %.2fs", j.ID, j.State, time.Since(start).Seconds())
		for _, p := range j.Progress {
			name := p.URL
			if p.Digest != "" {
				name = p.Digest[:19] + "…"
			}
			say("    %-9s %-24s %s", p.State, name, units.ByteSize(p.Done))
		}
		if j.State != "succeeded" {
			return fmt.Errorf("preheat job %d %s: %s", j.ID, j.State, j.Error)
		}
		return nil
	}
	say("\n▶ preheat through the manager: its seed peer fetches before anyone asks")
	if err := run(url, map[string]any{"urls": []string{url}}); err != nil {
		return err
	}
	if err := run(image, map[string]any{"image": image}); err != nil {
		return err
	}
	before := origin.BytesServed()
	last := len(c.Nodes) - 1
	var res struct {
		Bytes      int64   `json:"bytes"`
		FromPeers  int64   `json:"bytes_from_peers"`
		FromSource int64   `json:"bytes_from_source"`
		Seconds    float64 `json:"seconds"`
	}
	dst := filepath.Join(dir, "preheated.bin")
	js, err := c.Run(ctx, last, "dfget", url, "-O", dst, "-o", "json")
	if err == nil {
		err = json.Unmarshal([]byte(js), &res)
	}
	if err == nil {
		err = sameFile(dst, file)
	}
	if err != nil {
		return err
	}
	say("  then dfget on %s: %s in %.2fs, %s from peers, origin served %s more",
		c.Nodes[last].Name, units.ByteSize(res.Bytes), res.Seconds, units.ByteSize(res.FromPeers), units.ByteSize(origin.BytesServed()-before))
	return nil
}
