package disk

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/storage/storagetest"
)

func TestMain(m *testing.M) {
	if runCrashChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

// testQuota is the quota the conformance suite runs with.
const testQuota = 4 << 20

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, dir string) storage.Store {
		s, err := Open(context.Background(), dir, WithQuota(testQuota), WithLogger(testLogger(t)))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}
