package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/billfold/billfold/cmd/billfold/internal/bench"
)

// runBench is `billfold bench`: package bench measures an engine this
// binary's serve runs.
func runBench(args []string, stdout, stderr io.Writer) int {
	return bench.Run(args, stdout, stderr, bench.Engine{Serve: serveForBench, NATSUser: natsUser})
}

// serveForBench runs serve with the settings bench chose.
func serveForBench(ctx context.Context, e bench.EngineOptions) error {
	so := serveOptions{
		dataDir: e.DataDir, listen: e.Listen, adminListen: e.AdminListen,
		natsURL: e.NATSURL, natsListen: e.NATSListen, replicas: e.Replicas,
		appendTimeout: e.AppendTimeout, deliveryRetention: e.DeliveryRetention, logLevel: e.LogLevel,
		endpoints: e.Endpoints, getenv: e.Getenv, natsPassword: e.NATSPassword,
	}
	return serve(ctx, so, slog.New(slog.DiscardHandler))
}
