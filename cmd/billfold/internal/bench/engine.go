package bench

import (
	"context"
	"time"

	"github.com/billfold/billfold/ingest"
)

// EngineOptions are the settings of the engine bench starts: serve's
// flags, set by bench rather than by an operator.
type EngineOptions struct {
	DataDir, Listen, AdminListen, NATSURL, NATSListen string
	Replicas                                          int
	AppendTimeout, DeliveryRetention                  time.Duration
	LogLevel                                          string
	// Endpoints are bench's own (no config file).
	Endpoints []ingest.EndpointConfig
	// Getenv replaces os.Getenv for every setting serve reads from the
	// environment (bench sets its own admin token).
	Getenv func(string) string
	// NATSPassword is billfold's own password on the embedded NATS
	// server; bench connects with it as NATSUser.
	NATSPassword string
}

// Engine is how bench runs billfold: the binary's serve, passed in so
// that bench measures the real engine without importing its wiring.
type Engine struct {
	// Serve runs an engine with o until ctx ends.
	Serve func(ctx context.Context, o EngineOptions) error
	// NATSUser is billfold's privileged user on the embedded NATS server.
	NATSUser string
}
