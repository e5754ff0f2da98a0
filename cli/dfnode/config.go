package dfnode

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/node/mirror"
	"github.com/dragonfly-p2p/df/node/mirror/runtimeconfig"
)

// parseRegistries turns --mirror-registry values into registries:
// "docker.io" (Docker Hub's settings), "NAME" (https://NAME) or
// "NAME=SCHEME://HOST[:PORT]".
func parseRegistries(vals []string) ([]mirror.Registry, error) {
	var out []mirror.Registry
	for _, v := range vals {
		name, target, hasTarget := strings.Cut(v, "=")
		switch {
		case name == mirror.DockerHub && !hasTarget:
			out = append(out, mirror.DockerHubRegistry())
		case !hasTarget:
			out = append(out, mirror.Registry{Name: name})
		default:
			u, err := url.Parse(target)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return nil, fmt.Errorf("--mirror-registry %q: want NAME or NAME=http(s)://HOST[:PORT]", v)
			}
			out = append(out, mirror.Registry{Name: name, Host: u.Host, Scheme: u.Scheme})
		}
	}
	return out, nil
}

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Point container runtimes at this node's registry mirror",
		Long: `config writes (containerd) or prints (Docker) the configuration that makes a
container runtime pull through this node's registry mirror (dfnode run
--mirror). The registry itself stays configured after the mirror, so pulls
still work when the node is down.`,
	}
	cmd.AddCommand(newContainerdCommand(), newDockerCommand())
	return cmd
}

func newContainerdCommand() *cobra.Command {
	var hostsDir, mirrorURL string
	var registries []string
	var remove bool
	cmd := &cobra.Command{
		Use:   "containerd",
		Short: "Write certs.d/<registry>/hosts.toml for containerd",
		Long: `Write <hosts-dir>/<registry>/hosts.toml for every --registry: the mirror with
capabilities pull and resolve and a 200 ms dial timeout, then the registry's
own server. An existing hosts.toml not written by dfnode is kept as
hosts.toml.dfnode-backup and restored by --remove.

containerd must have config_path set to the hosts directory (CRI:
plugins."io.containerd.grpc.v1.cri".registry.config_path); ctr takes
--hosts-dir.`,
		Example: `  dfnode config containerd --registry docker.io --registry ghcr.io
  dfnode config containerd --registry docker.io --remove`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(registries) == 0 {
				return clikit.UsageError(fmt.Errorf("name at least one --registry (or _default for every registry)"))
			}
			for _, r := range registries {
				if remove {
					if err := runtimeconfig.RemoveContainerdHosts(hostsDir, r); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "removed the mirror for %s\n", r)
					continue
				}
				path, err := runtimeconfig.WriteContainerdHosts(hostsDir, runtimeconfig.ContainerdHost{Registry: r, Mirror: mirrorURL})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), path)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&hostsDir, "hosts-dir", "/etc/containerd/certs.d", "containerd's hosts directory (config_path)")
	f.StringVar(&mirrorURL, "mirror", runtimeconfig.DefaultMirror, "this node's mirror URL")
	f.StringSliceVar(&registries, "registry", nil, "registry to mirror, as image references name it (repeatable)")
	f.BoolVar(&remove, "remove", false, "remove the mirror again (restores a previous hosts.toml)")
	f.BoolVar(&remove, "restore", false, "the same as --remove")
	clikit.DocumentEnv(f, EnvPrefix)
	return cmd
}

func newDockerCommand() *cobra.Command {
	var file, mirrorURL string
	cmd := &cobra.Command{
		Use:   "docker",
		Short: "Print daemon.json with this node's mirror as Docker Hub's registry mirror",
		Long: `Print /etc/docker/daemon.json (or --file) with the mirror added as the first
"registry-mirrors" entry (and to "insecure-registries" when it is plain HTTP
on loopback); other keys are kept. Docker uses registry mirrors for Docker Hub
only. Review the output, write it, then restart dockerd.`,
		Example: `  dfnode config docker > /tmp/daemon.json && sudo mv /tmp/daemon.json /etc/docker/daemon.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			existing, err := os.ReadFile(file)
			if err != nil && !os.IsNotExist(err) {
				return err
			}
			out, err := runtimeconfig.DockerDaemonJSON(existing, mirrorURL)
			if err != nil {
				return err
			}
			if !strings.HasSuffix(string(out), "\n") {
				out = append(out, '\n')
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&file, "file", "/etc/docker/daemon.json", "existing daemon.json to merge into")
	cmd.Flags().StringVar(&mirrorURL, "mirror", runtimeconfig.DefaultMirror, "this node's mirror URL")
	clikit.DocumentEnv(cmd.Flags(), EnvPrefix)
	return cmd
}
