//go:build !linux

package adminsock

import (
	"errors"
	"net"
)

// peerOf is implemented on Linux only (SO_PEERCRED); elsewhere the local
// admin socket is refused rather than trusted without knowing who answers.
func peerOf(*net.UnixConn) (Peer, error) {
	return Peer{}, errors.New("peer credentials are supported on Linux only")
}
