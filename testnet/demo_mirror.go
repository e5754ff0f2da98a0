package testnet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dragonfly-p2p/df/protocol/units"
)

// pullThroughMirrors pulls the image through every mirror at once with
// go-containerregistry's client (reading every layer, which checks its
// digest) and reports registry bytes against bytes that came from peers.
func pullThroughMirrors(ctx context.Context, r *Registry, say func(string, ...any), names, mirrors []string) error {
	say("\n▶ crane pull %s through the registry mirror of all %d nodes at once (%d layers, %s)", r.ref, len(mirrors), r.layers, units.ByteSize(r.imageBytes))
	before := r.BlobBytes()
	secs := make([]float64, len(mirrors))
	errs := make([]error, len(mirrors))
	var wg sync.WaitGroup
	for i, m := range mirrors {
		wg.Go(func() {
			start := time.Now()
			if errs[i] = PullImage(ctx, m, r.ref); errs[i] != nil {
				return
			}
			secs[i] = time.Since(start).Seconds()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("pull through %s's mirror (%s): %w", names[i], mirrors[i], err)
		}
		say("  %s  mirror %s  %s in %.2fs, digests verified ✔", names[i], mirrors[i], units.ByteSize(r.imageBytes), secs[i])
	}
	served := r.BlobBytes() - before
	total := int64(len(mirrors)) * r.imageBytes
	say("  registry sent %s of layers for %d pulls (%.2f × the image; without P2P: %d ×); %s came from peers",
		units.ByteSize(served), len(mirrors), float64(served)/float64(r.imageBytes), len(mirrors), units.ByteSize(max(total-served, 0)))
	explainPerIDC(say, len(mirrors), float64(served)/float64(r.imageBytes))
	return nil
}
