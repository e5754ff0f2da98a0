package runtimeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Defaults for containerd hosts files.
const (
	// DefaultMirror is dfnode's default mirror address.
	DefaultMirror = "http://127.0.0.1:65001"
	// DefaultDialTimeout is how long containerd waits to connect to the
	// mirror before trying the next host (containerd's default is 30 s).
	DefaultDialTimeout = 200 * time.Millisecond
	// DefaultRegistry is containerd's fallback hosts directory, used for
	// every registry without a directory of its own.
	DefaultRegistry = "_default"
	// BackupSuffix is appended to a hosts.toml this package replaced.
	BackupSuffix = ".dfnode-backup"
	marker       = "# Managed by dfnode"
)

// Errors.
var (
	// ErrInvalid: a registry name or URL that cannot be written safely.
	ErrInvalid = errors.New("runtimeconfig: invalid argument")
	// ErrBackupExists: a hosts.toml not written by dfnode is in place and
	// an older backup exists too; refusing to overwrite either.
	ErrBackupExists = errors.New("runtimeconfig: a backup of hosts.toml already exists")
)

// ContainerdHost describes one certs.d/<registry>/hosts.toml.
type ContainerdHost struct {
	// Registry is the registry as image references name it ("docker.io",
	// "registry.example.com:5000"), or "_default" for every registry.
	Registry string
	// Server is the registry's own URL, tried after the mirror. Empty: the
	// registry's https URL (https://registry-1.docker.io for docker.io);
	// none for "_default" (containerd then uses the image's registry).
	Server string
	// Mirror is dfnode's mirror URL (default http://127.0.0.1:65001).
	Mirror string
	// DialTimeout bounds connecting to the mirror (default 200 ms).
	// containerd 1.7+ honours it; older versions ignore the key.
	DialTimeout time.Duration
}

var hostRE = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[1-9][0-9]{0,4})?$|^\[[0-9a-f:.]+\](?::[1-9][0-9]{0,4})?$`)

// validRegistry accepts a lowercase host[:port] or "_default": safe as a
// directory name.
func validRegistry(r string) bool {
	return r == DefaultRegistry || (len(r) <= 255 && hostRE.MatchString(r))
}

// checkURL accepts an absolute http(s) URL without userinfo, query or
// fragment.
func checkURL(what, s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, "\"\\\n\r\t ") {
		return "", fmt.Errorf("%w: %s %q is not an http(s) URL", ErrInvalid, what, s)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func (h ContainerdHost) normalized() (ContainerdHost, error) {
	if !validRegistry(h.Registry) {
		return h, fmt.Errorf("%w: registry %q", ErrInvalid, h.Registry)
	}
	if h.Mirror == "" {
		h.Mirror = DefaultMirror
	}
	var err error
	if h.Mirror, err = checkURL("mirror", h.Mirror); err != nil {
		return h, err
	}
	if h.Server == "" && h.Registry != DefaultRegistry {
		h.Server = "https://" + h.Registry
		if h.Registry == "docker.io" {
			h.Server = "https://registry-1.docker.io"
		}
	}
	if h.Server != "" {
		if h.Server, err = checkURL("server", h.Server); err != nil {
			return h, err
		}
	}
	if h.DialTimeout <= 0 {
		h.DialTimeout = DefaultDialTimeout
	}
	return h, nil
}

// ContainerdHostsTOML renders the hosts.toml: the mirror with pull and
// resolve capabilities and a short dial timeout, then the registry itself.
// containerd adds ?ns=<registry> to the mirror's requests on its own.
func ContainerdHostsTOML(h ContainerdHost) ([]byte, error) {
	h, err := h.normalized()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s for %s: pulls go through the node's P2P mirror first.\n", marker, h.Registry)
	fmt.Fprintf(&b, "# Remove with dfnode config containerd --remove (restores any previous file).\n")
	if h.Server != "" {
		fmt.Fprintf(&b, "server = %q\n", h.Server)
	}
	fmt.Fprintf(&b, "\n[host.%q]\n", h.Mirror)
	fmt.Fprintf(&b, "  capabilities = [\"pull\", \"resolve\"]\n")
	fmt.Fprintf(&b, "  dial_timeout = %q\n", h.DialTimeout.String())
	return b.Bytes(), nil
}

// HostsPath is certs.d/<registry>/hosts.toml under certsDir.
func HostsPath(certsDir, registry string) (string, error) {
	if !validRegistry(registry) {
		return "", fmt.Errorf("%w: registry %q", ErrInvalid, registry)
	}
	return filepath.Join(certsDir, registry, "hosts.toml"), nil
}

// WriteContainerdHosts writes certsDir/<registry>/hosts.toml (directories
// 0755, file 0644, atomically). An existing file not written by dfnode is
// kept as hosts.toml.dfnode-backup first; one written by dfnode is replaced.
func WriteContainerdHosts(certsDir string, h ContainerdHost) (string, error) {
	content, err := ContainerdHostsTOML(h)
	if err != nil {
		return "", err
	}
	path, err := HostsPath(certsDir, h.Registry)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("create hosts directory: %w", err)
	}
	old, err := readRegular(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return "", err
	case !isOurs(old):
		backup := path + BackupSuffix
		if _, err := os.Lstat(backup); err == nil {
			return "", fmt.Errorf("%w: %s", ErrBackupExists, backup)
		}
		if err := os.Rename(path, backup); err != nil {
			return "", fmt.Errorf("back up %s: %w", path, err)
		}
	}
	if err := writeAtomic(path, content, 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// RemoveContainerdHosts undoes WriteContainerdHosts: it restores the backup
// if there is one, else removes the file if dfnode wrote it. A file dfnode
// did not write is left alone.
func RemoveContainerdHosts(certsDir, registry string) error {
	path, err := HostsPath(certsDir, registry)
	if err != nil {
		return err
	}
	cur, err := readRegular(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case !isOurs(cur):
		return nil // not ours: leave it
	}
	backup := path + BackupSuffix
	if _, err := os.Lstat(backup); err == nil {
		if err := os.Rename(backup, path); err != nil {
			return fmt.Errorf("restore %s: %w", backup, err)
		}
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	_ = os.Remove(filepath.Dir(path)) // only if empty
	return nil
}

func isOurs(b []byte) bool { return bytes.HasPrefix(b, []byte(marker)) }

// readRegular reads path, refusing anything but a regular file (no
// symlink games in a root-owned directory).
func readRegular(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalid, path)
	}
	if fi.Size() > 1<<20 {
		return nil, fmt.Errorf("%w: %s is larger than 1 MiB", ErrInvalid, path)
	}
	return os.ReadFile(path)
}

// writeAtomic writes a temporary file in the same directory, syncs it and
// renames it over path.
func writeAtomic(path string, content []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".dfnode-*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(content); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
