package local

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EnvSubscriberToken names the token downstream services present to the
// embedded NATS server.
const EnvSubscriberToken = "BILLFOLD_NATS_SUBSCRIBER_TOKEN"

// StartEmbeddedNATS starts the embedded NATS server with JetStream storing
// under dataDir/jetstream. listen is host:port for NATS clients (port 0: a
// random one), or "" for no network listener at all. auth decides who may
// connect (billfold itself, the subscriber token, nobody else);
// maxPayload, when above nats-server's default, raises the largest message
// so that every endpoint's largest body fits in a journal entry.
func StartEmbeddedNATS(dataDir, listen string, syncAlways bool, auth server.Authentication, maxPayload int32) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "billfold",
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "jetstream"),
		SyncAlways: syncAlways,
		NoSigs:     true,
		NoLog:      true,
		DontListen: listen == "",

		CustomClientAuthentication: auth,
	}
	if maxPayload > server.MAX_PAYLOAD_SIZE {
		opts.MaxPayload = maxPayload
	}
	if listen != "" {
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("--nats-listen %q: %w", listen, err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("--nats-listen %q: bad port", listen)
		}
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS not ready after 30s (is %s in use?)", listen)
	}
	return ns, nil
}
