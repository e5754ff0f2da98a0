package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The back ends RunSwarm knows.
const (
	BackendInProcess = "inprocess"
	BackendNetns     = "netns"
)

// ErrNetnsUnavailable is returned (wrapped, with the reason) when the
// network-namespace back end cannot run on this machine: it needs Linux,
// root, and iproute2's ip and tc.
var ErrNetnsUnavailable = errors.New("the netns back end cannot run here")

// NetnsAvailable reports why the namespace back end cannot run (nil: it
// can).
func NetnsAvailable() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: network namespaces are Linux only", ErrNetnsUnavailable)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: it needs root (ip netns, veth, tc); run as root or use the in-process back end", ErrNetnsUnavailable)
	}
	for _, bin := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%w: %s not found; install iproute2", ErrNetnsUnavailable, bin)
		}
	}
	return nil
}

// netnsPrefix starts the name of every namespace the back end creates:
// dft-<controller pid>-<random>-<role>. CleanupNetns removes those whose
// controller is gone.
const netnsPrefix = "dft-"

// netnsRunDir is where `ip netns add` keeps its named namespaces.
const netnsRunDir = "/var/run/netns"

// CleanupNetns deletes the namespaces (and with them every veth, bridge
// and qdisc) that netns runs whose process died (killed, crashed) left
// behind. It returns their names.
func CleanupNetns(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(netnsRunDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its run is still going
		}
		if err := run(ctx, "ip", "netns", "del", name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// run runs a command, returning its output in the error.
func run(ctx context.Context, bin string, args ...string) error {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// output runs a command and returns its stdout.
func output(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// netnsTopology is one run's network:
//
//	router namespace: bridge "bc" (core: origin .1, scheduler .2) on
//	10.213.0.0/24 and one bridge "b<g>" per IDC on 10.213.<g+1>.0/24, the
//	router itself .254 on each, forwarding between them;
//	one namespace per host, origin and scheduler, each with eth0, a veth
//	whose other end is a port of its bridge.
//
// Bandwidth: tc tbf on a host's eth0 (uplink) and on its bridge port in the
// router (downlink). IDCs: an htb on each IDC bridge device, with one class
// per other IDC (matched by source subnet) at the inter-IDC rate, so routed
// traffic from IDC h to IDC g shares one link per direction; bridged
// traffic inside an IDC never passes it. Every bridge device's classes
// count what crossed them, by source IDC.
type netnsTopology struct {
	prefix string // dft-<pid>-<random>
	idcs   int
	spaces []string // created, in order (deleted in reverse)
}

func newNetnsTopology(idcs int) (*netnsTopology, error) {
	r := make([]byte, 3)
	if _, err := rand.Read(r); err != nil {
		return nil, err
	}
	return &netnsTopology{prefix: fmt.Sprintf("%s%d-%s", netnsPrefix, os.Getpid(), hex.EncodeToString(r)), idcs: max(idcs, 1)}, nil
}

func (t *netnsTopology) router() string { return t.prefix + "-r" }

// subnet returns the /24 of IDC g (g < 0: the core).
func subnet(g int) string { return fmt.Sprintf("10.213.%d.0/24", g+1) }

func ipIn(g, host int) string { return fmt.Sprintf("10.213.%d.%d", g+1, host) }

func bridgeOf(g int) string {
	if g < 0 {
		return "bc"
	}
	return fmt.Sprintf("b%d", g)
}

// bridgeMAC is bridge g's fixed, locally administered MAC address.
func bridgeMAC(g int) string { return fmt.Sprintf("02:df:00:00:00:%02x", g+1) }

// setup creates the router namespace and its bridges.
func (t *netnsTopology) setup(ctx context.Context, interRate int64) error {
	r := t.router()
	if err := t.addNS(ctx, r); err != nil {
		return err
	}
	if err := run(ctx, "ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	for g := -1; g < t.idcs; g++ {
		br := bridgeOf(g)
		for _, args := range [][]string{
			// A fixed MAC: a bridge takes the lowest of its ports' unless
			// one was set, so adding a host's veth could change the
			// gateway's MAC under the hosts that had resolved it already;
			// their packets to other subnets (the origin, the scheduler)
			// went to the old MAC and were dropped until the ARP entry
			// expired (SYNs to the origin lost for 9–14 s in 3 of 10 runs).
			{"-n", r, "link", "add", br, "address", bridgeMAC(g), "type", "bridge"},
			{"-n", r, "addr", "add", ipIn(g, 254) + "/24", "dev", br},
			{"-n", r, "link", "set", br, "up"},
		} {
			if err := run(ctx, "ip", args...); err != nil {
				return err
			}
		}
		if err := t.classify(ctx, g, interRate); err != nil {
			return err
		}
	}
	return nil
}

// unlimitedRate stands for "no limit" in an htb class (bits per second).
const unlimitedRate = "10gbit"

// classify installs the htb that shapes and counts routed traffic into
// bridge g by source IDC: class 1:(10+h) for IDC h, 1:99 for the rest.
func (t *netnsTopology) classify(ctx context.Context, g int, interRate int64) error {
	r, br := t.router(), bridgeOf(g)
	cmds := [][]string{
		{"-n", r, "qdisc", "add", "dev", br, "root", "handle", "1:", "htb", "default", "99"},
		{"-n", r, "class", "add", "dev", br, "parent", "1:", "classid", "1:99", "htb", "rate", unlimitedRate},
	}
	for h := range t.idcs {
		if h == g {
			continue
		}
		rate := unlimitedRate
		if g >= 0 && interRate > 0 { // into another IDC: the constrained link
			rate = bits(interRate)
		}
		id := fmt.Sprintf("1:%d", 10+h)
		cmds = append(cmds,
			[]string{"-n", r, "class", "add", "dev", br, "parent", "1:", "classid", id, "htb", "rate", rate, "quantum", "60000"},
			[]string{"-n", r, "qdisc", "add", "dev", br, "parent", id, "bfifo", "limit", strconv.FormatInt(queueBytes(interRate), 10)},
			[]string{"-n", r, "filter", "add", "dev", br, "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip", "src", subnet(h), "flowid", id},
		)
	}
	for _, args := range cmds {
		if err := run(ctx, "tc", args...); err != nil {
			return err
		}
	}
	return nil
}

// bits formats bytes per second for tc.
func bits(rate int64) string { return strconv.FormatInt(rate*8, 10) + "bit" }

// queueBytes is ~100 ms of a link's rate, like the userspace shaper's queue.
func queueBytes(rate int64) int64 {
	if rate <= 0 {
		return 4 << 20
	}
	return max(64<<10, rate/10)
}

func (t *netnsTopology) addNS(ctx context.Context, name string) error {
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	t.spaces = append(t.spaces, name)
	return run(ctx, "ip", "-n", name, "link", "set", "lo", "up")
}

// endpoint creates namespace <prefix>-<role> on bridge g (g < 0: core) with
// address ip and its uplink and downlink shaped (0: unlimited).
func (t *netnsTopology) endpoint(ctx context.Context, role string, g int, ip string, up, down int64) (string, error) {
	ns, r, port := t.prefix+"-"+role, t.router(), "v"+role
	if err := t.addNS(ctx, ns); err != nil {
		return "", err
	}
	for _, args := range [][]string{
		{"-n", r, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", r, "link", "set", port, "master", bridgeOf(g), "up"},
		{"-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", "default", "via", ipIn(g, 254)},
	} {
		if err := run(ctx, "ip", args...); err != nil {
			return ns, err
		}
	}
	if err := shapeEgress(ctx, ns, "eth0", up); err != nil {
		return ns, err
	}
	return ns, shapeEgress(ctx, r, port, down)
}

// shapeEgress shapes dev's egress to rate bytes per second (tbf) and
// queues it in two classes under the tbf: small TCP packets (the ACKs and
// requests of a host's HTTP downloads) ahead of everything else. The
// userspace shaper never queues TCP ACKs (only the bytes a connection
// reads and writes are paced), so without this a host whose uplink is
// full of its QUIC uploads fetched from the origin at ~0.85 of the rate in
// namespaces and at the full rate in-process. Each class holds ~100 ms.
func shapeEgress(ctx context.Context, ns, dev string, rate int64) error {
	if rate <= 0 {
		return nil
	}
	if err := tbf(ctx, ns, dev, rate); err != nil {
		return err
	}
	limit := strconv.FormatInt(queueBytes(rate), 10)
	for _, args := range [][]string{
		{"qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "htb", "default", "2"},
		{"class", "add", "dev", dev, "parent", "10:", "classid", "10:1", "htb", "rate", "10gbit", "quantum", "60000", "prio", "0"},
		{"class", "add", "dev", dev, "parent", "10:", "classid", "10:2", "htb", "rate", "10gbit", "quantum", "60000", "prio", "1"},
		{"qdisc", "add", "dev", dev, "parent", "10:1", "bfifo", "limit", limit},
		{"qdisc", "add", "dev", dev, "parent", "10:2", "bfifo", "limit", limit},
		// IPv4, protocol TCP, total length below 128 bytes.
		{"filter", "add", "dev", dev, "parent", "10:", "protocol", "ip", "prio", "1", "u32",
			"match", "ip", "protocol", "6", "0xff", "match", "u16", "0x0000", "0xff80", "at", "2", "flowid", "10:1"},
	} {
		if err := run(ctx, "tc", append([]string{"-n", ns}, args...)...); err != nil {
			return err
		}
	}
	return nil
}

// tbf shapes dev's egress in namespace ns to rate bytes per second.
func tbf(ctx context.Context, ns, dev string, rate int64) error {
	if rate <= 0 {
		return nil
	}
	burst := max(32<<10, rate/200) // 5 ms, like the userspace bucket
	return run(ctx, "tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "handle", "1:", "tbf",
		"rate", bits(rate), "burst", strconv.FormatInt(burst, 10), "latency", "100ms")
}

// close deletes every namespace (their veths, bridges and qdiscs go with
// them). It ignores ctx's cancellation: cleanup runs after an interrupt.
func (t *netnsTopology) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	for i := len(t.spaces) - 1; i >= 0; i-- {
		if err := run(ctx, "ip", "netns", "del", t.spaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	t.spaces = nil
	return errors.Join(errs...)
}

// txBytes returns the bytes dev in ns has sent.
func txBytes(ctx context.Context, ns, dev string) (int64, error) {
	out, err := output(ctx, "ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev)
	if err != nil {
		return 0, err
	}
	var links []struct {
		Stats struct {
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -s -j link show %s in %s: unexpected output (%v)", dev, ns, err)
	}
	return links[0].Stats.TX.Bytes, nil
}

// classBytes returns the bytes each htb class of bridge g has sent, by
// class minor number.
func (t *netnsTopology) classBytes(ctx context.Context, g int) (map[int]int64, error) {
	out, err := output(ctx, "tc", "-n", t.router(), "-s", "class", "show", "dev", bridgeOf(g))
	if err != nil {
		return nil, err
	}
	return parseClassBytes(string(out))
}

// parseClassBytes reads `tc -s class show` text: "class htb 1:10 ..."
// followed by " Sent N bytes ...".
func parseClassBytes(s string) (map[int]int64, error) {
	res := map[int]int64{}
	minor := -1
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "class":
			_, m, ok := strings.Cut(f[2], ":")
			v, err := strconv.Atoi(m)
			if !ok || err != nil {
				return nil, fmt.Errorf("tc class %q: unexpected id", f[2])
			}
			minor = v
		case len(f) >= 3 && f[0] == "Sent" && minor >= 0:
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("tc class stats %q: %w", line, err)
			}
			res[minor] = n
			minor = -1
		}
	}
	return res, nil
}

// inNetns runs f on an OS thread that joined namespace ns, then moves the
// thread back. Sockets f opens stay in ns for their whole life. When the
// thread cannot move back it is discarded (left locked: it exits with the
// goroutine) — rarely, since a dying thread also sends Pdeathsig to the
// processes it started.
func inNetns(ns string, f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			ch <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join(netnsRunDir, ns))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = f()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}

// listenInNetns opens a TCP listener inside namespace ns.
func listenInNetns(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// netnsHTTPClient is an HTTP client whose connections are dialled from
// inside namespace ns (to read a node's /readyz and /metrics).
func netnsHTTPClient(ns string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := inNetns(ns, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}
