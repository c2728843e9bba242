package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/netip"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/billfold/billfold/cmd/billfold/internal/local"
	"github.com/billfold/billfold/domain"
)

// Who may talk to the embedded NATS server. billfold's own connection is
// the privileged user natsUser with a password generated at every start
// and held only in memory; downstream services present
// BILLFOLD_NATS_SUBSCRIBER_TOKEN and may only follow the change feed.
// Anyone else is refused, so without the token the listener accepts no
// client at all.
const (
	natsUser = "billfold"
	// envSubscriberToken names the token downstream services present.
	envSubscriberToken = local.EnvSubscriberToken
	// minTokenLength is the shortest token billfold accepts for any
	// credential it guards a listener with.
	minTokenLength = 16
	// billfoldInboxPrefix is the reply-subject prefix of billfold's own
	// connection, so that a subscriber allowed _INBOX.> never sees the
	// answers billfold's requests get (journal reads, KV gets).
	billfoldInboxPrefix = "_BILLFOLD_INBOX"
)

// SubscriberPermissions are what the subscriber credential may do: create,
// inspect, pull from, acknowledge and delete consumers on BILLFOLD_CHANGES
// and read that stream's info; subscribe to the feed's subjects and to
// inboxes. Nothing else: no publish to billfold.journal.>, no stream or KV
// administration, no other stream's consumers. The same lists are in
// docs/nats/cluster.conf for a cluster.
func SubscriberPermissions() *server.Permissions {
	s := domain.ChangesStream
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			"$JS.API.INFO",
			"$JS.API.STREAM.INFO." + s,
			"$JS.API.CONSUMER.CREATE." + s,
			"$JS.API.CONSUMER.CREATE." + s + ".>",
			"$JS.API.CONSUMER.DURABLE.CREATE." + s + ".*",
			"$JS.API.CONSUMER.INFO." + s + ".*",
			"$JS.API.CONSUMER.NAMES." + s,
			"$JS.API.CONSUMER.LIST." + s,
			"$JS.API.CONSUMER.MSG.NEXT." + s + ".*",
			"$JS.API.CONSUMER.DELETE." + s + ".*",
			"$JS.ACK." + s + ".>",
			"$JS.FC." + s + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			"billfold.changes.>",
			"billfold.lifecycle.>",
			"_INBOX.>",
		}},
	}
}

// embeddedAuth is the embedded server's authentication: one check for
// every client, in-process or on the listener.
type embeddedAuth struct {
	password        []byte
	subscriberToken []byte
}

// newEmbeddedAuth generates billfold's password (never written anywhere)
// and takes the subscriber token, which must be minTokenLength characters
// or more when set.
func newEmbeddedAuth(subscriberToken string) (*embeddedAuth, error) {
	if subscriberToken != "" && len(subscriberToken) < minTokenLength {
		return nil, domain.Errorf(domain.CodeConfigInvalid, "%s must be %d characters or more", envSubscriberToken, minTokenLength)
	}
	pw := make([]byte, 32)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	return &embeddedAuth{password: []byte(hex.EncodeToString(pw)), subscriberToken: []byte(subscriberToken)}, nil
}

// Password is billfold's own password on the embedded server.
func (a *embeddedAuth) Password() string { return string(a.password) }

// Check implements server.Authentication.
func (a *embeddedAuth) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	switch {
	case o.Username == natsUser && subtle.ConstantTimeCompare([]byte(o.Password), a.password) == 1:
		c.RegisterUser(&server.User{Username: natsUser})
		return true
	case len(a.subscriberToken) > 0 && o.Username == "" && subtle.ConstantTimeCompare([]byte(o.Token), a.subscriberToken) == 1:
		c.RegisterUser(&server.User{Username: "subscriber", Permissions: SubscriberPermissions()})
		return true
	}
	return false
}

// checkExposure refuses a listener bound beyond loopback without the
// credentials that guard it (BILLFOLD-CONFIG-EXPOSED): the embedded NATS
// listener without a subscriber token, the admin listener without both an
// API token (reads) and an admin token (mutations).
func checkExposure(o serveOptions, natsAuth *embeddedAuth, apiToken string, adminTokens int) error {
	if o.natsURL == "" && o.natsListen != "" && !loopback(o.natsListen) && len(natsAuth.subscriberToken) == 0 {
		return domain.Errorf(domain.CodeConfigExposed, "--nats-listen %s is not a loopback address: set %s, or bind 127.0.0.1", o.natsListen, envSubscriberToken)
	}
	if !loopback(o.adminListen) && (apiToken == "" || adminTokens == 0) {
		return domain.Errorf(domain.CodeConfigExposed, "--admin-listen %s is not a loopback address: set BILLFOLD_API_TOKEN and BILLFOLD_ADMIN_TOKEN, or bind 127.0.0.1", o.adminListen)
	}
	return nil
}

// loopback says whether a listen address (host:port) binds loopback only.
// An empty host (":8081") binds every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
