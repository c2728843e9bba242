package main

import (
	"context"
	"io"
	"log/slog"
	"net"

	"github.com/billfold/billfold/cmd/billfold/internal/demo"
	"github.com/billfold/billfold/cmd/billfold/internal/gameday"
	"github.com/billfold/billfold/cmd/billfold/internal/local"
	"github.com/billfold/billfold/ingest"
)

// startLocal is the local.Starter of billfold demo and billfold gameday:
// serve on loopback with one replica and the default limits, and the
// options the command chose.
func startLocal(ctx context.Context, o local.Options, log *slog.Logger) (*local.Engine, error) {
	so := serveOptions{
		dataDir: o.DataDir, listen: o.Listen, adminListen: o.AdminListen,
		natsURL: o.NATSURL, natsListen: o.NATSListen, replicas: 1, configPath: o.ConfigPath, appendTimeout: o.AppendTimeout,
		deliveryRetention: ingest.DefaultDeliveryRetention, logLevel: o.LogLevel,
		rateLimit: ingest.DefaultRateLimit.PerSecond, rateBurst: ingest.DefaultRateLimit.Burst,
		getenv: o.Getenv,
	}
	return local.Start(ctx, func(ctx context.Context, ready func(public, admin net.Addr, natsURL string)) error {
		so.ready = ready
		return serve(ctx, so, log)
	})
}

// runDemo is `billfold demo` on this binary's serve.
func runDemo(args []string, stdout, stderr io.Writer) int {
	return demo.Run(args, stdout, stderr, startLocal)
}

// runGameday is `billfold gameday` on this binary's serve.
func runGameday(args []string, stdout, stderr io.Writer) int {
	return gameday.Run(args, stdout, stderr, startLocal)
}
