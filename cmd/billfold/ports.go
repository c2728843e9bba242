package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/billfold/billfold/domain"
)

// checkPortsFree fails fast, naming the flag and the address, when a port
// serve is about to listen on is taken (BILLFOLD-CONFIG-INVALID): most
// often another billfold serve still running. Without it the embedded NATS
// server only reports a taken port as not ready after its 30 s wait, and
// the HTTP listeners only after the engine has set up. A port 0 is any
// free one and needs no check; an address bound between this check and
// the real listen still fails, later, with the same error (listenError).
func checkPortsFree(o serveOptions) error {
	ports := []struct{ flag, addr string }{{"--listen", o.listen}, {"--admin-listen", o.adminListen}}
	if o.natsURL == "" && o.natsListen != "" {
		ports = append(ports, struct{ flag, addr string }{"--nats-listen", o.natsListen})
	}
	for _, p := range ports {
		if _, port, err := net.SplitHostPort(p.addr); err == nil && port == "0" {
			continue
		}
		l, err := net.Listen("tcp", p.addr)
		if err != nil {
			return listenError(p.flag, p.addr, err)
		}
		_ = l.Close()
	}
	return nil
}

// listenError is a listener that could not open, with its flag and
// address and, for a taken port, what usually holds it.
func listenError(flag, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return domain.Wrap(domain.CodeConfigInvalid, err, fmt.Sprintf("%s %s: the port is taken (another billfold serve still running?); stop it or pick another port", flag, addr))
	}
	return domain.Wrap(domain.CodeConfigInvalid, err, fmt.Sprintf("%s %s", flag, addr))
}
