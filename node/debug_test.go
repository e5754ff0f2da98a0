package node_test

import (
	"log/slog"
	"os"

	"github.com/dragonfly-p2p/df/testnet"
)

func debugLog() testnet.Option {
	if os.Getenv("DF_TEST_LOG") == "" {
		return func(*testnet.ClusterOptions) {}
	}
	return testnet.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})))
}

func logLevel() slog.Level {
	if os.Getenv("DF_TEST_LOG") == "info" {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
