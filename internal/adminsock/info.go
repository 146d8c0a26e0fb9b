package adminsock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// InfoName is the file, in the run directory, where the server records the
// addresses it listens on.
const InfoName = "listen.json"

// Info is listen.json: what a running server really listens on, after
// binding (a ":0" port is the port the kernel gave). It is written by the
// serve lock's holder once its listeners are bound and removed when it
// stops cleanly; a server killed leaves it behind, so it describes a
// running server only while its PID holds the serve lock.
type Info struct {
	PID int `json:"pid"`
	// HTTP, HTTPS and Admin are URLs: http://host:port, https://host:port.
	HTTP  string `json:"http"`
	HTTPS string `json:"https"`
	Admin string `json:"admin"`
	// AdminSocket is the path of the local admin socket.
	AdminSocket string `json:"admin_socket"`
	// PublicURL is the base of the URLs the server writes into
	// certificates.
	PublicURL string    `json:"public_url"`
	Started   time.Time `json:"started"`
}

// WriteInfo writes listen.json in dir atomically (a temporary file, synced,
// renamed), mode 0600.
func WriteInfo(dir string, info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, InfoName+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, InfoName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", InfoName, err)
	}
	return nil
}

// ReadInfo reads listen.json in dir; os.ErrNotExist (wrapped) when no
// server has written one. Unknown members are refused.
func ReadInfo(dir string) (*Info, error) {
	b, err := os.ReadFile(filepath.Join(dir, InfoName))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var info Info
	if err := dec.Decode(&info); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, InfoName), err)
	}
	if dec.More() {
		return nil, fmt.Errorf("reading %s: trailing data", filepath.Join(dir, InfoName))
	}
	return &info, nil
}

// RemoveInfo removes listen.json from dir if it is still the one process
// pid wrote.
func RemoveInfo(dir string, pid int) error {
	info, err := ReadInfo(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil && info.PID != pid {
		return nil
	}
	err = os.Remove(filepath.Join(dir, InfoName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
